"""The FLOP counter of benchmarks/flops.py: hand-computed figures for a tiny config, torch's own
FlopCounterMode on the reference model, and SHOWO_SPEC.md §9's figures for phi-1.5 Show-o."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from showo_sdk.config import ShowoConfig, TokenLayout, TransformerConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import flops  # noqa: E402


def tiny() -> ShowoConfig:
    """d=8, 2 heads (head_dim 4), MLP 16, 2 layers, V = 20 + 10 + 4 + 1 = 35, T = 5, N = 4, L = 11."""
    layout = TokenLayout(text_vocab_size=20, codebook_size=4, bos_id=0)
    tc = TransformerConfig(vocab_size=layout.vocab_size, hidden_size=8, num_layers=2, num_heads=2,
                           intermediate_size=16, max_position_embeddings=64)
    return ShowoConfig(layout=layout, transformer=tc, max_text_len=4, image_grid=(2, 2))


def test_tiny_by_hand():
    cfg = tiny()
    assert (cfg.text_block_len, cfg.num_image_tokens, cfg.t2i_seq_len, cfg.layout.vocab_size) == (5, 4, 11, 35)
    # per layer and row: linear 2*(4*8*8 + 2*8*16) = 1024; attention 4*cols*8 = 32*cols
    f = flops.official_forward(cfg)
    assert (f.linear, f.attention, f.head) == (2 * 1024 * 11, 2 * 32 * 11 * 11, 2 * 11 * 8 * 35)
    assert f.total == 36432
    # the prefix: layer 1 in full, layer 2 only its key and value projections (2 * 2*8*8 per row)
    assert flops.t2i_prefix(cfg).total == 2 * (1024 * 5 + 32 * 5 * 5 + 256 * 5) == 14400
    step = flops.t2i_step(cfg)  # 2 CFG rows x (6 rows over 11 columns + codebook head on 4 rows)
    assert (step.linear, step.attention, step.head) == (2 * 2 * 1024 * 6, 2 * 2 * 32 * 6 * 11, 2 * 2 * 4 * 8 * 4)
    assert step.total == 33536
    assert flops.t2i_image(cfg, 3).total == 14400 + 3 * 33536
    assert flops.t2i_image(cfg, 3, official=True).total == 3 * 2 * 36432
    assert flops.t2i_image(cfg, 3, guidance=False).total == (14400 + 3 * 33536) / 2
    # the Runtime's prefix over the block's last 3 columns, and steps attending over those 3 text columns
    assert flops.t2i_prefix(cfg, columns=3).total == 2 * (1024 * 3 + 32 * 3 * 3 + 256 * 3)
    assert flops.t2i_step(cfg, columns=3).attention == 2 * 2 * 32 * 6 * 9
    assert flops.t2i_image(cfg, 3, columns=3).total == (flops.t2i_prefix(cfg, columns=3).total
                                                         + 3 * flops.t2i_step(cfg, columns=3).total)
    assert flops.mmu_prefill(cfg, 7).total == 2 * 1024 * 7 + 2 * 32 * 49 + 2 * 8 * 35 == 18032
    assert flops.mmu_decode_step(cfg, 7).total == 2 * 1024 + 2 * 32 * 8 + 2 * 8 * 35 == 3120
    assert flops.mmu_answer(cfg, 7, 3).total == 18032 + 3120 + (2 * 1024 + 2 * 32 * 9 + 560)
    assert flops.mmu_answer(cfg, 7, 3, capacity=9).total == 18032 + 2 * (2 * 1024 + 2 * 32 * 10 + 560)
    assert flops.mmu_answer(cfg, 7, 2, official=True).total == sum(
        flops.forward_flops(cfg, n).total for n in (7, 8))
    # params: layer = 4*(64+8) + 2*(4+4) + (8*16+16+16*8+8) + 2*8 = 600; embed 280, final LN 16, head 315
    assert flops.param_count(cfg.transformer) == 280 + 2 * 600 + 16 + 315 == 1811


def test_matches_torch_flop_counter():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    from showo_sdk.model.transformer import ShowoTransformer

    cfg = tiny()
    model = ShowoTransformer(cfg.transformer).eval()
    assert sum(p.numel() for p in model.parameters()) == flops.param_count(cfg.transformer)
    ids = torch.zeros((1, cfg.t2i_seq_len), dtype=torch.int64)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(ids)
    assert counter.get_total_flops() == flops.official_forward(cfg).total

    t, k = cfg.text_block_len, cfg.layout.codebook_size
    off = cfg.layout.codebook_offset
    with torch.no_grad():
        _, past = model.hidden_states(ids[:, :t])
        counter = FlopCounterMode(display=False)
        with counter:
            hidden, _ = model.hidden_states(ids[:, t:], past_key_values=past)
            model.lm_logits(hidden[:, 1:-1], vocab=slice(off, off + k))
    assert 2 * counter.get_total_flops() == flops.t2i_step(cfg).total  # x2: cond + null rows


def test_phi_figures_of_the_spec():
    cfg = ShowoConfig()
    assert flops.param_count(cfg.transformer) == 1_448_176_770  # SHOWO_SPEC.md §2
    assert flops.head_flops(cfg.transformer, 1).total == pytest.approx(0.24e9, rel=0.01)  # §9: lm_head per token
    # §9: one forward ~ 2 x 1.448e9 x L ~ 1.15 TFLOP at L = 387 (the rule counts the embedding as a product)
    assert flops.spec_forward_estimate(cfg) == pytest.approx(1.15e12, rel=0.02)
    exact = flops.official_forward(cfg).total
    embedding_as_matmul = 2.0 * cfg.layout.vocab_size * cfg.transformer.hidden_size * cfg.t2i_seq_len
    assert exact == pytest.approx(1.057e12, rel=0.005)
    assert exact + embedding_as_matmul == pytest.approx(1.15e12, rel=0.02)
    # §9: a 512 px image (N = 1024, L = 1155) at T = 50 with CFG, recomputed officially: ~360 TFLOP
    big = ShowoConfig(image_grid=(32, 32))
    assert big.t2i_seq_len == 1155
    assert 2 * 50 * flops.spec_forward_estimate(big) == pytest.approx(360e12, rel=0.03)
    assert flops.t2i_image(big, 50, official=True).total == pytest.approx(
        100 * (flops.spec_forward_estimate(big) - 2.0 * big.layout.vocab_size * 2048 * 1155), rel=0.01)
    # caching the prefix saves the text rows and most of the lm_head: official / cached ~ 1.6 at T = 18
    ratio = flops.t2i_image(cfg, 18, official=True).total / flops.t2i_image(cfg, 18).total
    assert 1.5 < ratio < 1.7
