"""Omni-attention masks of SHOWO_SPEC.md §4 as booleans (True = may attend), in numpy.

Built with vectorised comparisons only (no per-row Python loops), so the same formulas can be
written as static graph ops in the exported models.
"""

from __future__ import annotations

import numpy as np

from .config import TokenLayout
from .errors import InputError


def _ids2d(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"ids must be an integer array (B, L), got {ids.dtype} with shape {ids.shape}")
    return ids


def causal_mask(length: int) -> np.ndarray:
    """(L, L) lower-triangular boolean."""
    return np.tril(np.ones((length, length), dtype=bool))


def t2i_attention_mask(ids: np.ndarray, layout: TokenLayout) -> np.ndarray:
    """T2I / inpainting / extrapolation mask (official ``rm_pad_in_image=True``) -> bool (B, L, L).

    Text rows are causal and, after the left padding, never see PAD columns; PAD rows stay causal
    over earlier PADs; rows from <|soi|> to <|eoi|> see every non-PAD column.
    """
    ids = _ids2d(ids)
    b, length = ids.shape
    pos = np.arange(length)
    is_pad = ids == layout.pad_id  # (B, L)
    soi = ids == layout.soi_id
    eoi = ids == layout.eoi_id
    in_image = (np.cumsum(soi, 1) > np.cumsum(eoi, 1)) | soi | eoi  # (B, L)
    # last PAD position per row (-1 when none)
    last_pad = np.where(is_pad.any(1), length - 1 - np.argmax(is_pad[:, ::-1], axis=1), -1)  # (B,)
    text = causal_mask(length)[None] & ~(
        (pos[None, :, None] > last_pad[:, None, None]) & (pos[None, None, :] <= last_pad[:, None, None]))
    image = np.broadcast_to(~is_pad[:, None, :], (b, length, length))  # image rows: all but PAD columns
    return np.where(in_image[:, :, None], image, text)


def mmu_attention_mask(ids: np.ndarray, layout: TokenLayout) -> np.ndarray:
    """MMU mask -> bool (B, L, L): causal, but every row sees all columns up to and including <|eoi|>."""
    ids = _ids2d(ids)
    b, length = ids.shape
    eoi = ids == layout.eoi_id
    if not eoi.any(1).all():
        raise InputError("every MMU sequence needs an <|eoi|> token")
    first_eoi = np.argmax(eoi, axis=1)  # (B,)
    pos = np.arange(length)
    prefix = pos[None, None, :] <= first_eoi[:, None, None]
    return causal_mask(length)[None] | prefix


def lm_attention_mask(ids: np.ndarray) -> np.ndarray:
    """Plain causal mask -> bool (B, L, L)."""
    ids = _ids2d(ids)
    b, length = ids.shape
    return np.broadcast_to(causal_mask(length), (b, length, length)).copy()


def additive_mask(mask: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Boolean mask -> the official additive float mask (0 where allowed, int64-min where blocked)."""
    return np.where(mask, 0.0, float(np.iinfo(np.int64).min)).astype(dtype)
