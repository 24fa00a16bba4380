"""Bit-reproducible exp and log built only from IEEE-754 double +, -, *, / and bit tricks.

numpy's SIMD exp/log and glibc's differ in the last bit; these twins of ``cpp_ext/detmath.h``
give identical bits in numpy and C++, which is what makes the sampler agree token for token.
"""

from __future__ import annotations

import math

import numpy as np

EXP_MIN = -708.0  # exp_det(x) is 0 below this, so every non-zero result is a normal double
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # 32 significant bits: n * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_SHIFTER = 6755399441055744.0  # 1.5 * 2**52: (v + S) - S rounds v to the nearest integer
_SHIFTER_BITS = np.uint64(0x4338000000000000)
_EXP_COEFFS = tuple(1.0 / math.factorial(k) for k in range(14))  # Taylor, |r| <= ln2 / 2
_LOG_COEFFS = tuple(1.0 / (2 * k + 1) for k in range(11))  # atanh series in s = f / (2 + f)
_SQRT2 = 1.4142135623730951
_MANTISSA = np.uint64(0x000FFFFFFFFFFFFF)
_ONE_BITS = np.uint64(0x3FF0000000000000)


def exp_det(x: np.ndarray) -> np.ndarray:
    """exp(x) for float64 ``x <= 709`` to ~1 ulp; 0 for ``x < EXP_MIN`` (and -inf)."""
    x = np.asarray(x, dtype=np.float64)
    xc = np.maximum(x, EXP_MIN)
    t = xc * _LOG2E + _SHIFTER
    n = t - _SHIFTER
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    p = np.full_like(r, _EXP_COEFFS[13])
    for c in _EXP_COEFFS[12::-1]:
        p = p * r + c
    scale = ((t.view(np.uint64) - _SHIFTER_BITS + np.uint64(1023)) << np.uint64(52)).view(np.float64)
    return np.where(x < EXP_MIN, 0.0, p * scale)


def log_det(x: np.ndarray) -> np.ndarray:
    """log(x) for positive normal float64 ``x`` (callers clamp to >= 1e-20) to ~1 ulp."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    bits = x.view(np.uint64)
    k = (bits >> np.uint64(52)).astype(np.int64) - 1023
    m = ((bits & _MANTISSA) | _ONE_BITS).view(np.float64)  # x = m * 2**k, m in [1, 2)
    big = m > _SQRT2
    m = np.where(big, m * 0.5, m)
    kd = (k + big).astype(np.float64)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    poly = np.full_like(z, _LOG_COEFFS[10])
    for c in _LOG_COEFFS[9::-1]:
        poly = poly * z + c
    return kd * _LN2_HI + ((s + s) * poly + kd * _LN2_LO)
