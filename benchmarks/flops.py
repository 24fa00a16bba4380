"""FLOPs of Show-o's work, counted from a ShowoConfig: the T2I prefix, one MaskGIT step, the official
recompute, MMU prefill and decode, and the VQ decoder.

Convention: 2*m*n*k per matrix product (linear layers, attention scores and attention-weighted
values, lm_head); bias adds, LayerNorms, GELU, RoPE, softmax and the embedding gather are not
counted (together < 1% of the total at phi-1.5 width). Attention is counted over every column a
graph actually multiplies, masked or not (the official code and our graphs compute the full
score matrix and mask it afterwards).

SHOWO_SPEC.md §9 quotes a rule of thumb, "2 x params x L" (params include the 0.12 B embedding,
which is a gather, not a product) plus attention: :func:`spec_forward_estimate`. At L = 387 it
gives 1.150 TFLOP; the matmul count is 1.057 TFLOP, the difference being the embedding's
2*V*d*L = 92.7 GFLOP.
Run ``python benchmarks/flops.py`` for the figures of the official phi-1.5 configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from showo_sdk.config import ShowoConfig, TransformerConfig, VQConfig


@dataclass(frozen=True)
class Flops:
    """FLOPs of one piece of work, split into linear layers, attention and lm_head."""

    linear: float = 0.0
    attention: float = 0.0
    head: float = 0.0

    @property
    def total(self) -> float:
        return self.linear + self.attention + self.head

    def __add__(self, other: Flops) -> Flops:
        return Flops(self.linear + other.linear, self.attention + other.attention, self.head + other.head)

    def __mul__(self, k: float) -> Flops:
        return Flops(self.linear * k, self.attention * k, self.head * k)

    __rmul__ = __mul__

    def to_json(self) -> dict[str, float]:
        return {"linear": self.linear, "attention": self.attention, "head": self.head, "total": self.total}


def param_count(tc: TransformerConfig) -> int:
    """Parameters of the transformer (embedding, layers, final LayerNorm, lm_head with bias)."""
    d, m, hd, v = tc.hidden_size, tc.intermediate_size, tc.head_dim, tc.vocab_size
    attn = 4 * (d * d + d) + 2 * (2 * hd)  # q, k, v, dense (+bias); q/k LayerNorms over head_dim
    mlp = d * m + m + m * d + d
    layer = attn + mlp + 2 * d  # + input LayerNorm
    return v * d + tc.num_layers * layer + 2 * d + (d * v + v)


def rows_flops(tc: TransformerConfig, rows: int, columns: int) -> Flops:
    """The layer stack over ``rows`` new rows, each attending over ``columns`` columns (no lm_head)."""
    d, m = tc.hidden_size, tc.intermediate_size
    linear = 2.0 * rows * (4 * d * d + 2 * d * m)  # q, k, v, dense; fc1, fc2
    attention = 4.0 * rows * columns * d  # q k^T and p v, all heads
    return Flops(linear * tc.num_layers, attention * tc.num_layers, 0.0)


def head_flops(tc: TransformerConfig, rows: int, vocab: int | None = None) -> Flops:
    """lm_head over ``rows`` rows and ``vocab`` ids (default: the whole vocabulary)."""
    return Flops(0.0, 0.0, 2.0 * rows * tc.hidden_size * (tc.vocab_size if vocab is None else vocab))


def forward_flops(cfg: ShowoConfig, length: int, batch: int = 1, logits_rows: int | None = None) -> Flops:
    """One full forward of ``batch`` sequences of ``length``: full attention matrix, full-vocab logits
    for ``logits_rows`` rows per sequence (default: every row, as ``model(ids)`` computes)."""
    tc = cfg.transformer
    rows = length if logits_rows is None else logits_rows
    return (rows_flops(tc, length, length) + head_flops(tc, rows)) * batch


def official_forward(cfg: ShowoConfig, batch: int = 1) -> Flops:
    """One official T2I forward over the whole sequence (L = 131 + N), full-vocabulary logits on every row."""
    return forward_flops(cfg, cfg.t2i_seq_len, batch)


def spec_forward_estimate(cfg: ShowoConfig, length: int | None = None) -> float:
    """SHOWO_SPEC.md §9's rule of thumb for one forward: 2 x params x L, plus the attention products."""
    length = cfg.t2i_seq_len if length is None else length
    tc = cfg.transformer
    return 2.0 * param_count(tc) * length + rows_flops(tc, length, length).attention


def t2i_rows(cfg: ShowoConfig, batch: int, guidance: bool) -> int:
    """Rows per transformer call: the prompts, doubled by the CFG null prompts."""
    return batch * (2 if guidance else 1)


def t2i_prefix(cfg: ShowoConfig, batch: int = 1, guidance: bool = True, columns: int | None = None) -> Flops:
    """The text block's ``columns`` last columns (default: all T; the Runtime computes the tail from the first
    column that is not [PAD] in every row), causal, full scores computed, for every row, once per image.

    The graph outputs only the KV cache, so its last layer computes just the key and value
    projections (no query, scores, dense or MLP): counted that way.
    """
    tc, t = cfg.transformer, cfg.text_block_len if columns is None else columns
    d, layers = tc.hidden_size, tc.num_layers
    full = rows_flops(tc, t, t) * ((layers - 1) / layers)
    last = Flops(2.0 * t * 2 * d * d, 0.0, 0.0)
    return (full + last) * t2i_rows(cfg, batch, guidance)


def t2i_step(cfg: ShowoConfig, batch: int = 1, guidance: bool = True, columns: int | None = None) -> Flops:
    """One cached MaskGIT step: N+2 image rows over ``columns`` (default T) text + N + 2 columns,
    codebook-sliced lm_head on N rows."""
    n, k = cfg.num_image_tokens, cfg.layout.codebook_size
    t = cfg.text_block_len if columns is None else columns
    one = rows_flops(cfg.transformer, n + 2, t + n + 2) + head_flops(cfg.transformer, n, k)
    return one * t2i_rows(cfg, batch, guidance)


def t2i_official_step(cfg: ShowoConfig, batch: int = 1, guidance: bool = True) -> Flops:
    """One official MaskGIT step: the whole sequence recomputed, full-vocabulary logits on every row."""
    return official_forward(cfg, t2i_rows(cfg, batch, guidance))


def t2i_image(cfg: ShowoConfig, steps: int, batch: int = 1, guidance: bool = True, official: bool = False,
              columns: int | None = None) -> Flops:
    """All transformer FLOPs of generating ``batch`` images in ``steps`` steps (VQ decode not included);
    ``columns``: text columns the cached way computes (default all T)."""
    if official:
        return t2i_official_step(cfg, batch, guidance) * steps
    return t2i_prefix(cfg, batch, guidance, columns) + t2i_step(cfg, batch, guidance, columns) * steps


def mmu_prefill(cfg: ShowoConfig, prompt_len: int, batch: int = 1) -> Flops:
    """The MMU prompt (full L x L scores computed), lm_head on the last row only (the exported graph)."""
    return forward_flops(cfg, prompt_len, batch, logits_rows=1)


def mmu_decode_step(cfg: ShowoConfig, past_len: int, batch: int = 1) -> Flops:
    """One new token over ``past_len`` cached columns (+ itself), full-vocabulary logits."""
    tc = cfg.transformer
    return (rows_flops(tc, 1, past_len + 1) + head_flops(tc, 1)) * batch


def mmu_answer(cfg: ShowoConfig, prompt_len: int, new_tokens: int, capacity: int | None = None,
               official: bool = False, batch: int = 1) -> Flops:
    """FLOPs of ``new_tokens`` answer tokens after a prompt of ``prompt_len``.

    Official: one full forward (full-vocab logits on every row) per token over the growing
    sequence. Cached: prefill, then ``new_tokens - 1`` decode steps; with ``capacity`` (the runtime's
    fixed cache of prompt + new_tokens - 1 slots) every step reads the whole capacity, else only
    the columns filled so far (the torch KV cache).
    """
    if official:
        total = Flops()
        for i in range(new_tokens):
            total = total + forward_flops(cfg, prompt_len + i, batch)
        return total
    total = mmu_prefill(cfg, prompt_len, batch)
    for i in range(1, new_tokens):
        past = capacity if capacity is not None else prompt_len + i - 1
        total = total + mmu_decode_step(cfg, past, batch)
    return total


def vq_decode(vq: VQConfig, grid: tuple[int, int], batch: int = 1) -> float:
    """Convolution and attention FLOPs of the MAGVIT-v2 decoder for one (h, w) grid, counted by torch's
    FlopCounterMode on meta tensors (no weights are allocated)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from showo_sdk.model.magvit import MagvitV2

    with torch.device("meta"):
        model = MagvitV2(vq).eval()
        codes = torch.zeros((batch, grid[0], grid[1]), dtype=torch.int64)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.decode_grid(codes)
    return float(counter.get_total_flops())


def summary(cfg: ShowoConfig, steps: int = 18, batch: int = 1, guidance: bool = True) -> dict[str, object]:
    """The figures benchmarks record next to their timings."""
    return {
        "params": param_count(cfg.transformer),
        "t2i_seq_len": cfg.t2i_seq_len,
        "official_forward_one_row": official_forward(cfg).to_json(),
        "spec_forward_estimate": spec_forward_estimate(cfg),
        "t2i_prefix": t2i_prefix(cfg, batch, guidance).to_json(),
        "t2i_step": t2i_step(cfg, batch, guidance).to_json(),
        "t2i_official_step": t2i_official_step(cfg, batch, guidance).to_json(),
        "t2i_image_cached": t2i_image(cfg, steps, batch, guidance).to_json(),
        "t2i_image_official": t2i_image(cfg, steps, batch, guidance, official=True).to_json(),
        "steps": steps, "batch": batch, "guidance": guidance,
    }


def main() -> None:
    cfg = ShowoConfig()
    g = 1e9
    print(f"phi-1.5 Show-o: {param_count(cfg.transformer):,} parameters, L = {cfg.t2i_seq_len}")
    print(f"official forward (one row of CFG): {official_forward(cfg).total / g:,.1f} GFLOP matmul; "
          f"spec rule of thumb 2*P*L + attention: {spec_forward_estimate(cfg) / g:,.1f} GFLOP")
    print(f"T2I prefix (cond + null): {t2i_prefix(cfg).total / g:,.1f} GFLOP")
    print(f"T2I cached step (cond + null): {t2i_step(cfg).total / g:,.1f} GFLOP; "
          f"official step: {t2i_official_step(cfg).total / g:,.1f} GFLOP")
    for steps in (18, 50):
        c, o = t2i_image(cfg, steps), t2i_image(cfg, steps, official=True)
        print(f"one image, T={steps}: cached {c.total / 1e12:.2f} TFLOP, official {o.total / 1e12:.2f} TFLOP "
              f"(ratio {o.total / c.total:.2f})")
    print(f"MAGVIT-v2 decode 16x16: {vq_decode(VQConfig(), (16, 16)) / g:,.1f} GFLOP")


if __name__ == "__main__":
    main()
