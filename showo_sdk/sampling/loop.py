"""maskgit_generate: the C++ MaskGIT loop (``showo_sdk._maskgit``), numpy reference as fallback.

When the extension is not built, importing this module warns once (RuntimeWarning) and
maskgit_generate runs :func:`maskgit_generate_reference`, which gives the same codes, slower.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from ..errors import InputError
from .reference import maskgit_generate_reference
from .validate import plan_generation

try:
    from .. import _maskgit
except ImportError as exc:  # a source checkout without `pip install -e .`, or a failed build
    _maskgit = None
    warnings.warn(
        f"showo_sdk._maskgit (the C++ MaskGIT loop) is not available ({exc}); maskgit_generate falls back "
        "to the numpy reference (same codes, much slower). Build it with `pip install -e .` in the repository.",
        RuntimeWarning,
        stacklevel=2,
    )

HAVE_EXTENSION = _maskgit is not None


def _contiguous(step_fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], object]:
    """Wrap step_fn so a non-C-contiguous ndarray it returns is copied; anything else passes as-is."""

    def call(canvas: np.ndarray) -> object:
        logits = step_fn(canvas)
        if isinstance(logits, np.ndarray) and not logits.flags.c_contiguous:
            return np.ascontiguousarray(logits)
        return logits

    return call


def maskgit_generate(
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
    """Run the official T2I MaskGIT loop (SHOWO_SPEC.md §5) and return int64 (B, N) codes in [0, K).

    canvas: int64 (B, N) in codebook space; num_codes (= K) is the MASK sentinel, codes < K are
    known (inpainting) and kept. It is copied, never modified; any memory layout is accepted.
    step_fn(canvas) is called once per step with the current canvas and returns float32 logits
    (B, N, K), or (2B, N, K) when guidance_scale > 0 (conditional rows, then unconditional).
    Non-contiguous float32 logits are copied; any other dtype, a wrong shape, NaN or Inf raises
    InputError naming the step. Exceptions raised by step_fn or progress propagate unchanged.
    seed (0 <= seed < 2**64) fixes every draw whatever num_threads (0 = all cores); greedy takes
    the argmax and adds no Gumbel noise. progress(step, steps) is called after each 0-based step.
    As in the official loop, at least one token per row is re-masked after each step, even a
    known one when the canvas holds no MASK at all.
    """
    plan = plan_generation(step_fn, canvas, steps, num_codes, guidance_scale, temperature, schedule, seed,
                           greedy, num_threads, progress)
    if _maskgit is None:
        return maskgit_generate_reference(
            step_fn, plan.canvas, steps, num_codes=num_codes, guidance_scale=guidance_scale,
            temperature=temperature, schedule=schedule, seed=seed, greedy=greedy, num_threads=num_threads,
            progress=progress,
        )
    try:
        return _maskgit.generate(
            _contiguous(step_fn), plan.canvas, plan.mask_lens, plan.temperatures, num_codes=plan.num_codes,
            guidance_scale=plan.guidance_scale, seed=plan.seed, greedy=plan.greedy,
            num_threads=plan.num_threads, progress=progress,
        )
    except _maskgit.InvalidArgument as exc:
        raise InputError(str(exc)) from None
