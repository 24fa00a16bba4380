"""Show-o's training losses (SHOWO_SPEC.md §8): mask-token prediction for T2I rows, next-token for LM/MMU."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..prompting import IGNORE_INDEX

T2I_COEFF, LM_COEFF, MMU_COEFF = 1.0, 0.1, 1.0


@dataclass
class Losses:
    total: torch.Tensor
    t2i: torch.Tensor
    lm: torch.Tensor
    mmu: torch.Tensor


def _ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean CE over labelled positions; 0 (with a graph) when a group is empty or fully ignored."""
    if labels.numel() == 0 or not (labels != IGNORE_INDEX).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)


def showo_losses(logits: torch.Tensor, labels: torch.Tensor, n_t2i: int, n_lm: int, n_mmu: int,
                 t2i_start: int) -> Losses:
    """Rows are [t2i | lm | mmu]. T2I: unshifted CE from ``t2i_start`` (<|soi|>) on; LM/MMU: shifted CE."""
    t2i = _ce(logits[:n_t2i, t2i_start:], labels[:n_t2i, t2i_start:])
    lm_rows = slice(n_t2i, n_t2i + n_lm)
    lm = _ce(logits[lm_rows, :-1], labels[lm_rows, 1:])
    mmu_rows = slice(n_t2i + n_lm, n_t2i + n_lm + n_mmu)
    mmu = _ce(logits[mmu_rows, :-1], labels[mmu_rows, 1:])
    return Losses(T2I_COEFF * t2i + LM_COEFF * lm + MMU_COEFF * mmu, t2i, lm, mmu)
