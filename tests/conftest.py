"""Shared fixtures: one tiny Show-o (config + random weights) for the whole session.

Below them, ``tiny``: a tiny checkpoint (transformer, BPE, VQ) exported ONCE per session to an fp32
bundle, shared by tests/export, tests/runtime and tests/test_cli.py (an export costs 35-60 s here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from showo_sdk.config import ShowoConfig, TokenLayout, TransformerConfig

if TYPE_CHECKING:
    from showo_sdk.tokenizer import TextTokenizer


def tiny_config(text_vocab: int = 64, codebook: int = 32, grid=(4, 4), max_text_len: int = 8,
                layers: int = 2) -> ShowoConfig:
    layout = TokenLayout(text_vocab_size=text_vocab, codebook_size=codebook, bos_id=0)
    tcfg = TransformerConfig(vocab_size=layout.vocab_size, hidden_size=32, num_layers=layers, num_heads=4,
                             intermediate_size=64, max_position_embeddings=256)
    return ShowoConfig(layout=layout, transformer=tcfg, max_text_len=max_text_len, image_grid=grid)


@pytest.fixture(scope="session")
def tiny_cfg() -> ShowoConfig:
    return tiny_config()


@pytest.fixture(scope="session")
def tiny_model(tiny_cfg):
    torch = pytest.importorskip("torch")
    from showo_sdk.model.transformer import ShowoTransformer

    torch.manual_seed(0)
    model = ShowoTransformer(tiny_cfg.transformer).eval()
    with torch.no_grad():  # livelier logits than the default init, so argmax ties cannot happen
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.5)
    model.showo_config = tiny_cfg
    return model


# ---- one exported tiny checkpoint ---------------------------------------------------------------
# The transformer is tiny_config's shape (hidden 32, 2 layers, 4 heads) over the layout of a small
# BPE; the VQ is a tiny MAGVIT-v2 (base 16 channels, 4 norm groups, x16) whose 64 px images give the
# 4x4 token grid. The export is kept in the session's base temp directory and reused from there.
CORPUS = [
    "a red circle left of a blue square", "two green triangles", "a yellow star above a magenta square",
    "a small cyan circle", "three blue squares", "a red circle", "a blue square",
    "What color is the circle? The circle is red.", "How many objects are there? three",
    "USER: ASSISTANT: a small cyan circle below a large blue triangle", "héllo ünïcode € ✓",
] * 4
CODEBOOK_BITS = 5  # 32 codes
GRID = (4, 4)


@dataclass
class Tiny:
    """The reference side of the exported bundle: checkpoint dir, torch model, config, VQ, tokenizer."""

    checkpoint: Path
    bundle: Path
    model: object
    config: ShowoConfig
    vq: object
    tokenizer: TextTokenizer


def tiny_vq_config():
    from showo_sdk.config import VQConfig

    return VQConfig(base_channels=16, encoder_ch_mult=(1, 1, 1, 1, 1), encoder_num_res_blocks=(1,) * 5,
                    decoder_ch_mult=(1, 1, 1, 1, 1), decoder_num_res_blocks=(1,) * 5, codebook_bits=CODEBOOK_BITS,
                    resolution=64, norm_groups=4)


def tiny_parts(seed: int = 0):
    """(model, config, vq, tokenizer): random weights, lively enough that greedy argmax never ties.

    The lm_head is scaled down so that the next-token distributions are broad: seeds then matter.
    """
    import torch

    from showo_sdk.model.magvit import MagvitV2
    from showo_sdk.model.transformer import ShowoTransformer
    from showo_sdk.tokenizer import TextTokenizer

    tok = TextTokenizer.train(CORPUS, vocab_size=320)
    vq_cfg = tiny_vq_config()
    layout = tok.layout(vq_cfg.codebook_size)
    tcfg = TransformerConfig(vocab_size=layout.vocab_size, hidden_size=32, num_layers=2, num_heads=4,
                             intermediate_size=64, max_position_embeddings=256)
    config = ShowoConfig(layout=layout, transformer=tcfg, max_text_len=16, image_grid=GRID)
    torch.manual_seed(seed)
    model = ShowoTransformer(tcfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.5)
        model.showo.lm_head.weight.mul_(0.3)
    model.showo_config = config
    vq = MagvitV2(vq_cfg).eval()
    return model, config, vq, tok


def tiny_bundle(base: Path) -> Tiny:
    """Build the checkpoint and export it (fp32, TensorRT engines where possible) under ``base`` once.

    Later calls, and other processes given the same ``base``, reuse the files.
    """
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from showo_sdk.export import ExportOptions, export_checkpoint
    from showo_sdk.model import load_magvit, load_showo, save_pretrained
    from showo_sdk.tokenizer import TextTokenizer

    root = base / "showo_runtime_tiny"
    ckpt, bundle = root / "ckpt", root / "engine.plan"
    if not (bundle / "manifest.json").is_file():
        model, config, vq, tok = tiny_parts()
        save_pretrained(model, ckpt, config, tokenizer=tok, vq=vq)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and a busy 2-core box makes more spin
        try:
            export_checkpoint(ckpt, bundle, options=ExportOptions(tensorrt="auto", progress=False, force=True))
        finally:
            torch.set_num_threads(threads)
    model = load_showo(ckpt)
    return Tiny(ckpt, bundle, model, model.showo_config, load_magvit(ckpt / "vq"),
                TextTokenizer.from_file(bundle / "tokenizer.json"))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Tiny:
    """The tiny checkpoint and its fp32 bundle (see ``tiny_bundle``)."""
    return tiny_bundle(tmp_path_factory.getbasetemp())
