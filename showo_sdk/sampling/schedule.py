"""Mask schedules of the MaskGIT loop, evaluated in float32 exactly as the official torch code.

The official code evaluates ``schedule(torch.tensor(r))`` on a 0-d float32 tensor and floors
``N * ratio`` in float32; the rounding matters (cosine at r = 2/3 gives 0.49999997, so
``floor(256 * ratio) = 127``, not 128). Transcendentals are taken in float64 of the float32
argument and rounded once to float32.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..errors import InputError

MAX_STEPS = 10_000
MAX_TOKENS = 1 << 24  # N must be exact in float32
SCHEDULES = ("cosine", "linear", "pow<K>", "sigmoid")

_F32 = np.float32
_RATIO_MIN = _F32(1e-6)
_POW = re.compile(r"pow(.+)")


def _check_count(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise InputError(f"{name} must be an int in [{low}, {high}]; got {value!r}")
    return int(value)


def _f32_of(fn, x: np.ndarray) -> np.ndarray:
    """Apply a float64 math function to each float32 value, rounding the result once to float32."""
    return np.array([fn(float(v)) for v in x], dtype=np.float64).astype(_F32)


def _sigmoid_f32(x: np.ndarray) -> np.ndarray:
    return _F32(1.0) / (_F32(1.0) + _f32_of(math.exp, -x))


def _pow_exponent(schedule: str) -> float | None:
    match = _POW.fullmatch(schedule)
    if match is None:
        return None
    try:
        exponent = float(match.group(1))
    except ValueError:
        exponent = math.nan
    if not math.isfinite(exponent) or exponent <= 0:
        raise InputError(f"schedule {schedule!r}: the exponent after 'pow' must be a positive number")
    return exponent


def mask_ratio_schedule(steps: int, schedule: str = "cosine") -> np.ndarray:
    """float32 (steps,) mask ratio of step s at r = (s+1)/steps, the official formula in float32."""
    steps = _check_count("steps", steps, 1, MAX_STEPS)
    if not isinstance(schedule, str):
        raise InputError(f"schedule must be a str, one of {SCHEDULES}; got {schedule!r}")
    x = (np.arange(1, steps + 1, dtype=np.float64) / steps).astype(_F32)  # (1.0*(s+1)/T) as float32
    exponent = _pow_exponent(schedule)
    if schedule == "cosine":
        return _f32_of(math.cos, x * _F32(math.pi) * _F32(0.5))
    if schedule == "linear":
        return np.clip(_F32(1.0) - x, _RATIO_MIN, _F32(1.0))
    if exponent is not None:
        e = float(_F32(exponent))
        return np.clip(_F32(1.0) - _f32_of(lambda v: math.pow(v, e), x), _RATIO_MIN, _F32(1.0))
    if schedule == "sigmoid":  # official defaults start=-3, end=3, tau=1
        v_start, v_end = _sigmoid_f32(np.array([-3.0, 3.0], dtype=_F32))
        out = _sigmoid_f32((x * _F32(6.0) + _F32(-3.0)) / _F32(1.0))
        return np.clip((v_end - out) / (v_end - v_start), _RATIO_MIN, _F32(1.0))
    raise InputError(f"unknown schedule {schedule!r}; accepted: {', '.join(SCHEDULES)} (e.g. 'pow2', 'pow0.5')")


def mask_len_schedule(num_tokens: int, steps: int, schedule: str = "cosine") -> np.ndarray:
    """int64 (steps,) raw floor(N * ratio) per step in float32, before the per-row clamp.

    The loop masks ``max(1, min(unknown - 1, table[s]))`` tokens of a row after step s.
    """
    num_tokens = _check_count("num_tokens", num_tokens, 1, MAX_TOKENS)
    ratio = mask_ratio_schedule(steps, schedule)
    return np.floor(_F32(num_tokens) * ratio).astype(np.int64)


def temperature_schedule(temperature: float, steps: int) -> np.ndarray:
    """float64 (steps,) Gumbel temperature used at step s: T0 * prod_{i<=s} (1 - r_i), compounded.

    The official loop updates ``temperature = temperature * (1.0 - ratio)`` before using it, so
    even the first step is already scaled by (1 - 1/steps) and the last step has no noise.
    """
    steps = _check_count("steps", steps, 1, MAX_STEPS)
    temps = np.empty(steps, dtype=np.float64)
    temp = float(temperature)
    for s in range(steps):
        temp = temp * (1.0 - 1.0 * (s + 1) / steps)
        temps[s] = temp
    return temps
