"""Training-time image-token masking: t ~ U(0,1), ratio = cos(pi/2 t), round(N*ratio) random positions."""

from __future__ import annotations

import math

import numpy as np


def mask_image_tokens(codes: np.ndarray, mask_code: int, rng: np.random.Generator,
                      min_ratio: float = 0.0) -> np.ndarray:
    """Codes (B, N) -> canvas (B, N) with ``max(1, round(N * cos(pi/2 t)))`` positions per row set to ``mask_code``."""
    b, n = codes.shape
    ratio = np.maximum(np.cos(rng.random(b) * math.pi * 0.5), min_ratio)  # (B,)
    count = np.maximum(1, np.round(n * ratio)).astype(np.int64)  # (B,)
    ranks = rng.random((b, n)).argsort(axis=1).argsort(axis=1)  # a random permutation rank per position
    return np.where(ranks < count[:, None], mask_code, codes)
