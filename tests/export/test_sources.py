"""What the exporter loads: an official showlab-layout checkpoint with --llm-config / --tokenizer / --vq."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from showo_sdk.errors import CheckpointError
from showo_sdk.export.sources import load_sources


@pytest.fixture
def official(tiny, tmp_path):
    """The tiny model in the official layout: Showo config.json + pytorch_model.safetensors; phi dir aside."""
    ckpt_dir, model, config, tok = tiny.checkpoint, tiny.model, tiny.config, tiny.tokenizer
    lay, tc = config.layout, config.transformer
    ckpt = tmp_path / "show-o"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({
        "_class_name": "Showo", "codebook_size": lay.codebook_size, "llm_vocab_size": lay.text_vocab_size,
        "vocab_size": lay.vocab_size, "num_vq_tokens": config.num_image_tokens, "mask_token_id": lay.mask_id,
        "llm_model_path": "microsoft/phi-1_5", "load_from_showo": False, "w_clip_vit": False}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt / "pytorch_model.safetensors"))
    phi = tmp_path / "phi-1_5"
    phi.mkdir()
    (phi / "config.json").write_text(json.dumps({
        "hidden_size": tc.hidden_size, "num_hidden_layers": tc.num_layers, "num_attention_heads": tc.num_heads,
        "intermediate_size": tc.intermediate_size, "partial_rotary_factor": tc.partial_rotary_factor,
        "max_position_embeddings": tc.max_position_embeddings, "qk_layernorm": True, "bos_token_id": lay.bos_id}))
    tok.save(phi / "tokenizer.json")
    return ckpt, phi, ckpt_dir / "vq"


def test_official_layout_loads_with_flags(official, tiny):
    ckpt, phi, vq = official
    sources = load_sources(ckpt, llm_config=phi, vq=vq)  # tokenizer found in the --llm-config directory
    assert sources.checkpoint_layout == "official"
    assert sources.tokenizer_path == phi / "tokenizer.json"
    assert sources.config.layout == tiny.config.layout and sources.config.transformer == tiny.config.transformer
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        torch.testing.assert_close(sources.model(ids), tiny.model(ids))


def test_official_layout_without_vq_says_which_flag(official):
    ckpt, phi, _ = official
    with pytest.raises(CheckpointError, match="--vq DIR"):
        load_sources(ckpt, llm_config=phi)


def test_explicit_tokenizer_file(official):
    ckpt, phi, vq = official
    sources = load_sources(ckpt, llm_config=phi, tokenizer=phi / "tokenizer.json", vq=vq)
    assert sources.tokenizer.text_vocab_size == sources.config.layout.text_vocab_size


def test_vq_codebook_mismatch(tiny, tmp_path):
    from showo_sdk.model.magvit import MagvitV2
    from showo_sdk.model.magvit_io import save_pretrained

    cfg = tiny.vq.config
    other = MagvitV2(type(cfg)(**{**cfg.to_dict(), "codebook_bits": 6}))
    save_pretrained(other, tmp_path / "vq6")
    with pytest.raises(CheckpointError, match="64 codes but .* expects a codebook of 32"):
        load_sources(tiny.checkpoint, vq=tmp_path / "vq6")
