"""Argument and step-output checks shared by the C++ wrapper and the numpy reference.

Both paths refuse the same inputs with the same InputError messages, before any work is done.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .schedule import MAX_STEPS, mask_len_schedule, temperature_schedule

MAX_CODES = 1 << 20  # Show-o's codebook has 8192 codes; 2**20 leaves room without gigabyte scratch rows
MAX_SCALE = 1e6  # guidance_scale and temperature: anything larger only overflows float32 logits
MAX_THREADS = 1024
MAX_POSITIONS = 1 << 24  # B * N: the canvas cells (the C++ loop keeps a few int64/float64 per cell)
MAX_LOGITS = 1 << 32  # rows * N * K float32 logits of one step (rows = 2B when guided): 16 GiB


@dataclass(frozen=True)
class LoopPlan:
    """Validated inputs of one generation: the start canvas (a private copy) and per-step tables."""

    canvas: np.ndarray  # int64 (B, N), C-contiguous, values in [0, K]
    mask_lens: np.ndarray  # int64 (steps,) raw schedule, before the per-row clamp
    temperatures: np.ndarray  # float64 (steps,) compounded Gumbel temperature of each step
    num_codes: int
    guidance_scale: float
    seed: int
    greedy: bool
    num_threads: int


def _int_in(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise InputError(f"{name} must be an int in [{low}, {high}]; got {value!r}")
    return int(value)


def _float_in(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a real number in [{low}, {high:g}]; got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and low <= value <= high):
        raise InputError(f"{name} must be finite and in [{low}, {high:g}]; got {value!r}")
    return value


def plan_generation(
    step_fn: object, canvas: object, steps: object, num_codes: object, guidance_scale: object,
    temperature: object, schedule: object, seed: object, greedy: object, num_threads: object,
    progress: object,
) -> LoopPlan:
    """Check every argument of maskgit_generate(_reference) and build the per-step tables."""
    if not callable(step_fn):
        raise InputError(f"step_fn must be callable (canvas -> logits); got {type(step_fn).__name__}")
    if progress is not None and not callable(progress):
        raise InputError(f"progress must be None or callable (step, steps); got {type(progress).__name__}")
    if not isinstance(greedy, (bool, np.bool_)):
        raise InputError(f"greedy must be a bool; got {greedy!r}")
    steps = _int_in("steps", steps, 1, MAX_STEPS)
    k = _int_in("num_codes", num_codes, 1, MAX_CODES)
    guidance = _float_in("guidance_scale", guidance_scale, 0.0, MAX_SCALE)
    temp = _float_in("temperature", temperature, 0.0, MAX_SCALE)
    seed = _int_in("seed", seed, 0, 2**64 - 1)
    num_threads = _int_in("num_threads", num_threads, 0, MAX_THREADS)
    if not isinstance(canvas, np.ndarray):
        raise InputError(f"canvas must be a numpy int64 array (B, N); got {type(canvas).__name__}")
    if canvas.dtype != np.int64:
        raise InputError(f"canvas must have dtype int64; got {canvas.dtype}")
    if canvas.ndim != 2 or canvas.shape[0] < 1 or canvas.shape[1] < 1:
        raise InputError(f"canvas must have shape (B, N) with B, N >= 1; got {canvas.shape}")
    batch, n = canvas.shape
    if batch * n > MAX_POSITIONS:
        raise InputError(f"canvas must have at most {MAX_POSITIONS} cells (B * N); got shape {canvas.shape}")
    rows = 2 * batch if guidance > 0 else batch
    if rows * n * k > MAX_LOGITS:
        raise InputError(
            f"step_fn's logits ({rows}, {n}, {k}) would hold {rows * n * k} float32 values; "
            f"at most {MAX_LOGITS} (rows * N * num_codes) are supported"
        )
    if canvas.min() < 0 or canvas.max() > k:
        raise InputError(
            f"canvas values must be codes in [0, {k - 1}] or the MASK sentinel {k} (= num_codes); "
            f"got values in [{canvas.min()}, {canvas.max()}]"
        )
    return LoopPlan(
        canvas=np.array(canvas, dtype=np.int64, order="C", copy=True),  # non-contiguous input is copied
        mask_lens=mask_len_schedule(canvas.shape[1], steps, schedule),
        temperatures=temperature_schedule(temp, steps),
        num_codes=k, guidance_scale=guidance, seed=seed, greedy=bool(greedy), num_threads=num_threads,
    )


def check_logits(logits: object, step: int, batch: int, num_tokens: int, num_codes: int, guided: bool) -> np.ndarray:
    """Return step_fn's output if it is finite float32 (rows, N, K) logits, else raise InputError."""
    rows = 2 * batch if guided else batch
    expected = (rows, num_tokens, num_codes)
    what = "(2B, N, K): conditional rows then unconditional rows" if guided else "(B, N, K)"
    if not isinstance(logits, np.ndarray):
        raise InputError(f"step {step}: step_fn must return a numpy float32 array {what}; got {type(logits).__name__}")
    if logits.dtype != np.float32:
        raise InputError(f"step {step}: step_fn must return float32 logits; got dtype {logits.dtype}")
    if logits.shape != expected:
        raise InputError(f"step {step}: step_fn returned logits of shape {logits.shape}; expected {expected} {what}")
    if not np.isfinite(logits).all():
        raise InputError(f"step {step}: step_fn returned non-finite logits (NaN or Inf); logits must be finite")
    return np.ascontiguousarray(logits)
