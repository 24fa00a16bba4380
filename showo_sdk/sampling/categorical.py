"""Softmax sampling of one token per logits row, defined so C++ and numpy agree bit for bit.

Per row: e_j = exp_det(l_j - max l) in float64; the row is cut into blocks of LANES values
(zero-padded) and lane w sums e_{w}, e_{LANES+w}, ... in order; P = cumsum of the lane sums,
Z = P[-1]. A draw u picks target = u * Z, the first lane with P_w > target, then walks that lane
from P_{w-1} to the first partial sum above target. This is inverse-CDF sampling over the
categories in lane order; the lane sums let C++ vectorise instead of running one long serial sum.
If rounding leaves the walk without a hit (never seen, measure ~1e-16), the argmax is taken.
The selected probability is e_j / Z. Greedy: j = first argmax, p = e_j / Z.
"""

from __future__ import annotations

import numpy as np

from .detmath import exp_det

LANES = 16
_CHUNK_ROWS = 128  # bounds the float64 temporaries to ~_CHUNK_ROWS * K * 8 bytes each


def _sample_chunk(logits: np.ndarray, u: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    m_rows, k = logits.shape
    blocks = -(-k // LANES)
    argmax = logits.argmax(axis=1)
    x = logits.astype(np.float64) - logits.max(axis=1).astype(np.float64)[:, None]
    e = np.zeros((m_rows, blocks * LANES), dtype=np.float64)
    e[:, :k] = exp_det(x)
    lanes = e.reshape(m_rows, blocks, LANES)
    acc = np.zeros((m_rows, LANES), dtype=np.float64)
    for b in range(blocks):  # sequential per lane: the order C++ adds in
        acc += lanes[:, b, :]
    prefix = np.cumsum(acc, axis=1)
    total = prefix[:, -1]
    rows = np.arange(m_rows)
    if u is None:
        index = argmax
    else:
        target = u * total
        lane = np.minimum((prefix <= target[:, None]).sum(axis=1), LANES - 1)
        base = np.where(lane > 0, prefix[rows, np.maximum(lane - 1, 0)], 0.0)
        walk = np.cumsum(np.concatenate([base[:, None], lanes[rows, :, lane]], axis=1), axis=1)[:, 1:]
        block = (walk <= target[:, None]).sum(axis=1)
        index = np.where(block < blocks, block * LANES + lane, argmax)
    return index.astype(np.int64), e[rows, index] / total


def sample_rows(logits: np.ndarray, u: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Sample one index per row of finite float32 logits (M, K) with uniforms u (M,), or greedy if None.

    Returns (index int64 (M,), probability of the chosen index float64 (M,)).
    """
    index = np.empty(logits.shape[0], dtype=np.int64)
    prob = np.empty(logits.shape[0], dtype=np.float64)
    for start in range(0, logits.shape[0], _CHUNK_ROWS):
        stop = start + _CHUNK_ROWS
        index[start:stop], prob[start:stop] = _sample_chunk(
            logits[start:stop], None if u is None else u[start:stop]
        )
    return index, prob
