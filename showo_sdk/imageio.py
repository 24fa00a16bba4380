"""Image input/output without torch: load, preprocess as the official pipeline, and postprocess.

Preprocessing matches torchvision's ``Resize(res, BICUBIC)`` (short side, on a PIL image) +
``CenterCrop(res)`` + ``Normalize(0.5, 0.5)``; postprocessing is ``clamp((x+1)/2, 0, 1) * 255``
truncated to uint8, as upstream.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import InputError

def load_image(image, mode: str = "RGB") -> Image.Image:
    """A path, PIL image or uint8 array (H, W[, C]) -> PIL image in ``mode``, with clear errors."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"image file {path} does not exist")
        try:
            with Image.open(path) as im:
                im.load()
                return im.convert(mode)
        except Image.DecompressionBombError as exc:
            raise InputError(f"cannot read image {path}: it declares more pixels than PIL allows "
                             f"(a decompression bomb?): {exc}") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read image {path}: {exc}") from exc
    if isinstance(image, Image.Image):
        return image.convert(mode)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            if np.issubdtype(image.dtype, np.floating) and image.size and 0.0 <= image.min() and image.max() <= 1.0:
                image = (image * 255.0).round().astype(np.uint8)
            else:
                raise InputError(f"image arrays must be uint8 (0..255) or float in [0, 1], got {image.dtype}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise InputError(f"image arrays must be (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}")
        if min(image.shape[:2]) < 1:
            raise InputError(f"image is empty: shape {image.shape}")
        return Image.fromarray(image).convert(mode)
    raise InputError(f"image must be a path, a PIL.Image or a numpy array, got {type(image).__name__}")


#: The most elongated image accepted (long side : short side); resizing a 1 x 10**6 image first would need GBs.
MAX_ASPECT = 64


def resize_center_crop(image: Image.Image, resolution: int, resample=Image.Resampling.BICUBIC) -> Image.Image:
    """Resize the short side to ``resolution`` (torchvision's rounding), then center-crop a square.

    Images more elongated than :data:`MAX_ASPECT`:1 raise InputError (crop them first).
    """
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    if short < 1 or long > MAX_ASPECT * short:
        raise InputError(f"image is {w} x {h} px: more elongated than {MAX_ASPECT}:1 (or empty); crop it to the "
                         f"region of interest first")
    new_long = int(resolution * long / short)
    size = (resolution, new_long) if w <= h else (new_long, resolution)
    if size != (w, h):
        image = image.resize(size, resample)
    w, h = image.size
    top = int(round((h - resolution) / 2.0))
    left = int(round((w - resolution) / 2.0))
    return image.crop((left, top, left + resolution, top + resolution))


def preprocess(image, resolution: int) -> np.ndarray:
    """Any image -> float32 (3, res, res) in [-1, 1]."""
    im = resize_center_crop(load_image(image), resolution)
    x = np.asarray(im, dtype=np.float32) / 255.0  # (H, W, 3)
    return ((x - 0.5) / 0.5).transpose(2, 0, 1).copy()


def preprocess_mask(mask, resolution: int) -> np.ndarray:
    """Any mask image (white = regenerate) -> float32 (res, res) in [0, 1], converted to one channel."""
    im = resize_center_crop(load_image(mask, mode="L"), resolution)
    return np.asarray(im, dtype=np.float32) / 255.0


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Decoder output (B, 3, H, W) unbounded -> uint8 (B, H, W, 3), as upstream (truncation)."""
    x = np.clip((np.asarray(pixels, dtype=np.float32) + 1.0) / 2.0, 0.0, 1.0) * 255.0
    return x.transpose(0, 2, 3, 1).astype(np.uint8)
