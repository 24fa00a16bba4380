"""Counter-based random numbers: a draw is a hash of (seed, step, row, position, stream).

No generator state, so the C++ twin (``cpp_ext/rng.h``) reproduces every draw whatever the
thread count or the order positions are visited in, and a row's draws do not depend on the batch.
"""

from __future__ import annotations

import numpy as np

STREAM_CATEGORICAL = 0  # the token draw at a masked position
STREAM_GUMBEL = 1  # the Gumbel noise added to every position's confidence

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_M52 = 2.0**-52


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _absorb(h: np.ndarray, v: np.ndarray) -> np.ndarray:
    return _mix(h ^ (v + _GOLDEN))


def _u64(v: int | np.ndarray) -> np.ndarray:
    # At least 1-D: numpy warns on overflow for scalars, while array arithmetic wraps silently.
    return np.array(v, dtype=np.uint64, ndmin=1)


def random_bits(seed: int, step: int, rows: np.ndarray, positions: np.ndarray, stream: int) -> np.ndarray:
    """64 random bits per (row, position) pair; ``rows`` and ``positions`` broadcast together."""
    h = _absorb(_mix(_u64(seed) + _GOLDEN), _u64(step))
    h = _absorb(_absorb(h, _u64(rows)), _u64(positions))
    return _absorb(h, _u64(stream))


def uniform(seed: int, step: int, rows: np.ndarray, positions: np.ndarray, stream: int) -> np.ndarray:
    """Uniform float64 in (0, 1): ((bits >> 12) + 0.5) * 2**-52, never exactly 0 or 1."""
    bits = random_bits(seed, step, rows, positions, stream)
    return ((bits >> np.uint64(12)).astype(np.float64) + 0.5) * _TWO_POW_M52
