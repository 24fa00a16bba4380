"""Tokenizer evaluation: PSNR of uint8 images and held-out reconstruction through the public VQ path.

A reconstruction goes exactly the way a generated or understood image goes at inference: uint8
pixels -> ``(x/255 - 0.5)/0.5`` -> ``encode`` (hard LFQ codes) -> ``decode`` -> the official
postprocess ``clamp((x+1)/2, 0, 1) * 255`` truncated to uint8 (``imageio.to_uint8``). So the
figure measured here is what a user sees, rounding included.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from ..imageio import to_uint8
from ..model.magvit import MagvitV2

#: Per-image PSNR ceiling used when averaging, so one pixel-perfect image cannot make the mean inf.
PSNR_CAP_DB = 100.0


def as_uint8_images(images: Iterable[np.ndarray] | np.ndarray) -> np.ndarray:
    """An array (N, H, W, 3) or an iterable of (H, W, 3) uint8 RGB images -> one (N, H, W, 3) uint8 array."""
    arr = images if isinstance(images, np.ndarray) else np.stack([np.asarray(im) for im in images])
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 1:
        raise InputError(f"images must be N >= 1 uint8 RGB arrays (H, W, 3), got {arr.dtype} {arr.shape}")
    return arr


def to_pixels(batch: Tensor) -> Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [-1, 1], the official ``Normalize(0.5, 0.5)``."""
    x = batch.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    return (x - 0.5) / 0.5


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays of one shape, 10 log10(255^2 / MSE) over all elements; inf if equal."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != np.uint8 or b.dtype != np.uint8 or a.shape != b.shape:
        raise InputError(f"psnr needs two uint8 arrays of one shape, got {a.dtype} {a.shape} and {b.dtype} {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0 ** 2 / mse)


@torch.no_grad()
def reconstruct(vq: MagvitV2, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (B, H, W, 3) -> (uint8 reconstructions (B, H, W, 3), int64 codes (B, h*w))."""
    codes = vq.encode(to_pixels(torch.from_numpy(images)))
    h, w = images.shape[1] // vq.factor, images.shape[2] // vq.factor
    recon = vq.decode(codes, grid=(h, w))
    return to_uint8(recon.numpy()), codes.numpy()


def evaluate_vq(vq: MagvitV2, images: Iterable[np.ndarray] | np.ndarray, batch_size: int = 64) -> dict[str, float]:
    """Reconstruct ``images`` (uint8 (H, W, 3)) through encode -> decode -> uint8 and score them.

    Returns ``psnr_db`` (mean of per-image PSNRs, each capped at PSNR_CAP_DB: the usual tokenizer
    figure), ``psnr_pooled_db`` (PSNR of the MSE pooled over every pixel), ``codebook_usage``
    (fraction of the 2^bits codes that occur), ``codes_used`` and ``n`` (images scored).
    The model is put in eval mode and left there.
    """
    arr = as_uint8_images(images)
    vq.eval()
    per_image, sq_err, seen = [], 0.0, np.zeros(vq.quantize.codebook_size, dtype=bool)
    for start in range(0, len(arr), batch_size):
        batch = arr[start:start + batch_size]
        recon, codes = reconstruct(vq, batch)
        seen[np.unique(codes)] = True
        for a, b in zip(batch, recon):
            per_image.append(min(psnr(a, b), PSNR_CAP_DB))
        sq_err += float(np.sum((batch.astype(np.float64) - recon.astype(np.float64)) ** 2))
    pooled_mse = sq_err / arr.size
    pooled = math.inf if pooled_mse == 0.0 else 10.0 * math.log10(255.0 ** 2 / pooled_mse)
    return {"psnr_db": float(np.mean(per_image)), "psnr_pooled_db": pooled,
            "codebook_usage": float(seen.mean()), "codes_used": int(seen.sum()), "n": len(arr)}
