"""Session fixtures of the runtime tests: one tiny checkpoint (random weights) exported ONCE to a bundle.

The transformer is tests/conftest.py's tiny shape (hidden 32, 2 layers, 4 heads) over the layout of
a small BPE; the VQ is a tiny MAGVIT-v2 (base 16 channels, 4 norm groups, x16) whose 64 px images
give the 4x4 token grid. ``tiny_bundle`` is also used by tests/test_cli.py (loaded by path), so it
keeps its export in the session's base temp directory and reuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from showo_sdk.config import ShowoConfig, TransformerConfig, VQConfig
from showo_sdk.tokenizer import TextTokenizer

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


def tiny_vq_config() -> VQConfig:
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
    """Build the checkpoint and export it under ``base`` once per session; later calls reuse the files."""
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from showo_sdk.export import ExportOptions, export_checkpoint
    from showo_sdk.model import load_magvit, load_showo, save_pretrained

    root = base / "showo_runtime_tiny"
    ckpt, bundle = root / "ckpt", root / "engine.plan"
    if not (bundle / "manifest.json").is_file():
        model, config, vq, tok = tiny_parts()
        save_pretrained(model, ckpt, config, tokenizer=tok, vq=vq)
        export_checkpoint(ckpt, bundle, options=ExportOptions(progress=False, force=True))
    model = load_showo(ckpt)
    return Tiny(ckpt, bundle, model, model.showo_config, load_magvit(ckpt / "vq"),
                TextTokenizer.from_file(bundle / "tokenizer.json"))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Tiny:
    return tiny_bundle(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def rt(tiny):
    """One ORT CPU Runtime shared by the tests (as an application would share it)."""
    from showo_sdk import Runtime

    return Runtime(tiny.bundle, backend="ort-cpu", num_threads=2)


@pytest.fixture(scope="session")
def picture() -> np.ndarray:
    """A 64x64 RGB test picture: a red disc on black, and a blue square."""
    img = np.zeros((64, 64, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:64, :64]
    img[(yy - 32) ** 2 + (xx - 18) ** 2 < 100] = (255, 0, 0)
    img[22:42, 36:56] = (0, 0, 255)
    return img
