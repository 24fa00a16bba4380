"""The MaskGIT re-masking loop in plain numpy: the readable definition the C++ loop must match.

One step (SHOWO_SPEC.md §5): mix guided logits in float32, sample masked positions, score every
position by log p (+ temp * Gumbel), re-mask the lowest ``max(1, min(unknown - 1, table[s]))``
of each row. Known positions get p = FLT_MAX, so they are never re-masked.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import InputError
from .categorical import sample_rows
from .detmath import log_det
from .rng import STREAM_CATEGORICAL, STREAM_GUMBEL, uniform
from .validate import LoopPlan, check_logits, plan_generation

FLT_MAX = float(np.finfo(np.float32).max)
_P_MIN = 1e-20


def guided_logits(logits: np.ndarray, batch: int, guidance_scale: float) -> np.ndarray:
    """(1 + g) * cond - g * uncond in float32, the official CFG mix; the logits as-is when g == 0."""
    if guidance_scale == 0:
        return logits
    with np.errstate(over="ignore", invalid="ignore"):
        return np.float32(1.0 + guidance_scale) * logits[:batch] - np.float32(guidance_scale) * logits[batch:]


def gumbel(u: np.ndarray) -> np.ndarray:
    """-log(-log(u)) with the official clamps at 1e-20, in float64."""
    return -log_det(np.maximum(-log_det(np.maximum(u, _P_MIN)), _P_MIN))


def remask_counts(canvas: np.ndarray, mask_token: int, table_value: int) -> np.ndarray:
    """int64 (B,) tokens to re-mask per row: max(1, min(unknown - 1, table[s]))."""
    unknown = (canvas == mask_token).sum(axis=1)
    return np.maximum(1, np.minimum(unknown - 1, table_value))


def _remask(conf: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """bool (B, N): conf < the counts[b]-th smallest conf of its row (everything if counts >= N)."""
    n = conf.shape[1]
    cutoff = np.array([np.partition(row, c)[c] if c < n else np.inf for row, c in zip(conf, counts)])
    return conf < cutoff[:, None]


def _step(logits: np.ndarray, canvas: np.ndarray, plan: LoopPlan, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples (B, N) int64 and confidence (B, N) float64 for one step."""
    batch, n = canvas.shape
    k = plan.num_codes
    mixed = guided_logits(logits, batch, plan.guidance_scale)
    rows, cols = np.nonzero(canvas == k)
    masked = mixed[rows, cols]  # (M, K)
    if not np.isfinite(masked).all():
        raise InputError(
            f"step {step}: guided logits overflow float32 (guidance_scale={plan.guidance_scale}); "
            "use a smaller guidance_scale or smaller logits"
        )
    u = None if plan.greedy else uniform(plan.seed, step, rows, cols, STREAM_CATEGORICAL)
    index, prob = sample_rows(masked, u)
    samples = canvas.copy()
    samples[rows, cols] = index
    p = np.full((batch, n), FLT_MAX)
    p[rows, cols] = prob
    conf = log_det(np.maximum(p, _P_MIN))
    if not plan.greedy:
        noise = gumbel(uniform(plan.seed, step, np.arange(batch)[:, None], np.arange(n)[None, :], STREAM_GUMBEL))
        conf = conf + plan.temperatures[step] * noise
    return samples, conf


def maskgit_generate_reference(
    step_fn: Callable[[np.ndarray], np.ndarray],
    canvas: np.ndarray,
    steps: int,
    *,
    num_codes: int,
    guidance_scale: float = 0.0,
    temperature: float = 1.0,
    schedule: str = "cosine",
    seed: int = 0,
    greedy: bool = False,
    num_threads: int = 0,
    progress: Callable[[int, int], object] | None = None,
) -> np.ndarray:
    """numpy twin of :func:`maskgit_generate`: same arguments, same codes token for token.

    ``num_threads`` is validated and ignored. Returns int64 (B, N) codes in [0, num_codes).
    """
    plan = plan_generation(step_fn, canvas, steps, num_codes, guidance_scale, temperature, schedule, seed,
                           greedy, num_threads, progress)
    current = plan.canvas
    batch, n = current.shape
    samples = current
    for step in range(len(plan.mask_lens)):
        logits = check_logits(step_fn(current.copy()), step, batch, n, plan.num_codes, plan.guidance_scale > 0)
        samples, conf = _step(logits, current, plan, step)
        counts = remask_counts(current, plan.num_codes, int(plan.mask_lens[step]))
        current = np.where(_remask(conf, counts), plan.num_codes, samples)
        if progress is not None:
            progress(step, len(plan.mask_lens))
    return samples
