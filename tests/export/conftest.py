"""Session fixtures for the exporter tests: one tiny checkpoint (transformer, tokenizer, VQ) and its bundles.

Sizes keep the whole tests/export run to a few minutes on 2 CPU cores: hidden 64, 2 layers,
4 heads, a ~300-token BPE, a 64-code VQ (6 bits) on a 4x4 grid, text block 17.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from showo_sdk.config import ShowoConfig, TransformerConfig, VQConfig  # noqa: E402
from showo_sdk.model.magvit import MagvitV2  # noqa: E402
from showo_sdk.model.showo_io import save_pretrained  # noqa: E402
from showo_sdk.model.transformer import ShowoTransformer  # noqa: E402
from showo_sdk.tokenizer import TextTokenizer  # noqa: E402

CORPUS = [
    "a red circle left of a blue square", "two green triangles", "a yellow star above a purple square",
    "What color is the circle? The circle is red.", "How many shapes are there? There are three shapes.",
    "Describe the image. USER: ASSISTANT: a small orange circle below a large blue triangle",
] * 4


def tiny_vq_config() -> VQConfig:
    return VQConfig(base_channels=8, encoder_ch_mult=(1, 1, 2, 2, 2), encoder_num_res_blocks=(1,) * 5,
                    decoder_ch_mult=(1, 1, 2, 2, 2), decoder_num_res_blocks=(1,) * 5, codebook_bits=6,
                    resolution=64, norm_groups=4)


def tiny_parts(seed: int = 0) -> tuple[ShowoTransformer, ShowoConfig, MagvitV2, TextTokenizer]:
    """A random tiny Show-o whose layout matches a BPE trained on CORPUS, and a 64-code VQ."""
    tok = TextTokenizer.train(CORPUS, vocab_size=300)
    vq_cfg = tiny_vq_config()
    layout = tok.layout(vq_cfg.codebook_size)
    tcfg = TransformerConfig(vocab_size=layout.vocab_size, hidden_size=64, num_layers=2, num_heads=4,
                             intermediate_size=128, max_position_embeddings=256)
    config = ShowoConfig(layout=layout, transformer=tcfg, max_text_len=16, image_grid=(4, 4))
    torch.manual_seed(seed)
    model = ShowoTransformer(tcfg).eval()
    with torch.no_grad():  # livelier logits than the default init, so greedy argmax ties cannot happen
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    vq = MagvitV2(vq_cfg).eval()
    return model, config, vq, tok


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(checkpoint dir in our format, model, config, vq, tokenizer)."""
    model, config, vq, tok = tiny_parts()
    ckpt = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_pretrained(model, ckpt, config, tokenizer=tok, vq=vq)
    return ckpt, model, config, vq, tok


@contextlib.contextmanager
def one_torch_thread():
    """Tiny tensors run far faster on one thread, and a loaded 2-core machine makes extra threads spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _single_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def bundle_fp32(tiny, tmp_path_factory) -> Path:
    """The fp32 bundle, exported through the Python API (TensorRT engines too where TensorRT and a GPU exist)."""
    from showo_sdk.export import ExportOptions, export_checkpoint

    out = tmp_path_factory.mktemp("bundle_fp32") / "engine.plan"
    with one_torch_thread():
        export_checkpoint(tiny[0], out, options=ExportOptions(tensorrt="auto", progress=False))
    return out


@pytest.fixture(scope="session")
def bundle_int8(tiny, tmp_path_factory) -> tuple[Path, str]:
    """The int8 bundle, exported through the CLI entry point (in-process), and the table it printed."""
    from showo_sdk.export.cli import main

    out = tmp_path_factory.mktemp("bundle_int8") / "engine.plan"
    stdout = io.StringIO()
    with one_torch_thread(), contextlib.redirect_stdout(stdout):
        code = main([str(tiny[0]), "--out", str(out), "--precision", "int8", "--quiet"])
    assert code == 0, stdout.getvalue()
    return out, stdout.getvalue()
