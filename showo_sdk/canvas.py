"""Partly known token canvases for inpainting and extrapolation (SHOWO_SPEC.md §5), in numpy.

Canvases are codebook-space codes with K standing for [MASK]. Shared by the torch reference and
the runtime so both build exactly the same inputs.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

DIRECTIONS = ("left", "right", "up", "down")


def _cubic_weights(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys cubic-convolution weights (as torch's bicubic, A = -0.75) for taps at -1, 0, 1, 2."""
    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


def _resize_axis(x: np.ndarray, out: int, axis: int) -> np.ndarray:
    size = x.shape[axis]
    scale = size / out
    src = (np.arange(out) + 0.5) * scale - 0.5  # align_corners=False
    base = np.floor(src).astype(np.int64)
    w = _cubic_weights((src - base).astype(np.float32))  # (out, 4)
    idx = np.clip(base[:, None] + np.arange(-1, 3)[None], 0, size - 1)  # (out, 4)
    taken = np.take(x, idx, axis=axis)  # axis expands to (out, 4)
    shape = [1] * taken.ndim
    shape[axis], shape[axis + 1] = out, 4
    return (taken * w.reshape(shape)).sum(axis=axis + 1)


def bicubic_resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of a (..., H, W) float array like ``F.interpolate(mode='bicubic')`` (no antialias)."""
    x = np.asarray(x, dtype=np.float32)
    return _resize_axis(_resize_axis(x, size[0], x.ndim - 2), size[1], x.ndim - 1).astype(np.float32)


def mask_to_grid(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """A [0, 1] float mask (H, W), white = regenerate -> bool (h, w) token mask: bicubic to the grid, >= 0.5."""
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim != 2:
        raise InputError(f"mask must be a single-channel (H, W) array, got shape {mask.shape}")
    return bicubic_resize(mask, grid) >= 0.5


def inpaint_canvas(codes: np.ndarray, token_mask: np.ndarray, num_codes: int) -> np.ndarray:
    """Codes (B, N) with the positions of ``token_mask`` ((h, w) or (B, h, w), True = regenerate) set to MASK."""
    codes = np.asarray(codes, dtype=np.int64)
    m = np.asarray(token_mask, dtype=bool)
    flat = m.reshape(1 if m.ndim == 2 else m.shape[0], -1)
    if flat.shape[1] != codes.shape[1]:
        raise InputError(f"token mask has {flat.shape[1]} cells but the image has {codes.shape[1]} tokens")
    flat = np.broadcast_to(flat, codes.shape)
    return np.where(flat, num_codes, codes)


def _keep(grid: tuple[int, int], direction: str, offset: int) -> int:
    if direction not in DIRECTIONS:
        raise InputError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    side = grid[1] if direction in ("left", "right") else grid[0]
    keep = side // 2 - offset
    if not 1 <= keep <= side - 1:
        raise InputError(f"offset {offset} out of range for a {side}-token side: need "
                         f"{side // 2 - side + 1} <= offset <= {side // 2 - 1}")
    return keep


def extrapolate_canvas(codes: np.ndarray, grid: tuple[int, int], direction: str, offset: int,
                       num_codes: int) -> np.ndarray:
    """The (B, h*w) canvas to generate: the kept strip of the image moved to the far side, MASK elsewhere."""
    h, w = grid
    keep = _keep(grid, direction, offset)
    img = np.asarray(codes, dtype=np.int64).reshape(-1, h, w)
    canvas = np.full_like(img, num_codes)
    if direction == "left":
        canvas[:, :, w - keep:] = img[:, :, :keep]
    elif direction == "right":
        canvas[:, :, :keep] = img[:, :, w - keep:]
    elif direction == "up":
        canvas[:, h - keep:, :] = img[:, :keep, :]
    else:
        canvas[:, :keep, :] = img[:, h - keep:, :]
    return canvas.reshape(img.shape[0], -1)


def merge_extrapolation(generated: np.ndarray, codes: np.ndarray, grid: tuple[int, int], direction: str,
                        offset: int) -> np.ndarray:
    """Join generated (B, h*w) and original codes into the wider/taller (B, h', w') result.

    ``down`` appends below the original's remaining rows (the upstream script joins the wrong half).
    """
    h, w = grid
    keep = _keep(grid, direction, offset)
    gen = np.asarray(generated, dtype=np.int64).reshape(-1, h, w)
    img = np.asarray(codes, dtype=np.int64).reshape(-1, h, w)
    if direction == "left":
        return np.concatenate([gen, img[:, :, keep:]], axis=2)
    if direction == "right":
        return np.concatenate([img[:, :, :w - keep], gen], axis=2)
    if direction == "up":
        return np.concatenate([gen, img[:, keep:, :]], axis=1)
    return np.concatenate([img[:, :h - keep, :], gen], axis=1)
