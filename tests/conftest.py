"""Shared fixtures: one tiny Show-o (config + random weights) for the whole session."""

from __future__ import annotations

import pytest

from showo_sdk.config import ShowoConfig, TokenLayout, TransformerConfig


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
