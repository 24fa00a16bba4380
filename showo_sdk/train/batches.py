"""Mixed training batches: T2I rows (masked image tokens, CFG condition dropout), LM rows, MMU rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..config import ShowoConfig
from ..masks import lm_attention_mask, mmu_attention_mask, t2i_attention_mask
from ..prompting import Prompting
from .masking import mask_image_tokens


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L) int64
    attention_mask: torch.Tensor  # (B, 1, L, L) bool
    labels: torch.Tensor  # (B, L) int64
    n_t2i: int
    n_lm: int
    n_mmu: int

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.numel())


class BatchBuilder:
    """Builds rows in the official layouts; all rows share the T2I length L so they stack in one batch."""

    def __init__(self, config: ShowoConfig, cond_dropout: float = 0.1):
        self.config = config
        self.prompting = Prompting(config)
        self.cond_dropout = cond_dropout

    def build(self, rng: np.random.Generator,
              t2i: Sequence[tuple[np.ndarray, Sequence[int]]] = (),
              lm: Sequence[Sequence[int]] = (),
              mmu: Sequence[tuple[np.ndarray, Sequence[int] | None, Sequence[int]]] = ()) -> Batch:
        """t2i: (codes (N,), text ids); lm: text ids; mmu: (codes (N,), prompt ids or None, text ids)."""
        cfg, lay = self.config, self.config.layout
        length = cfg.t2i_seq_len
        ids, masks, labels = [], [], []
        if t2i:
            codes = np.stack([c for c, _ in t2i]).astype(np.int64)
            texts = [[] if rng.random() < self.cond_dropout else list(t) for _, t in t2i]
            canvas = mask_image_tokens(codes, lay.codebook_size, rng)
            row_ids = self.prompting.t2i_ids(texts, canvas)
            ids.append(row_ids)
            masks.append(t2i_attention_mask(row_ids, lay))
            labels.append(self.prompting.t2i_train_labels(row_ids, codes))
        if lm:
            row_ids, row_labels = self.prompting.lm_ids(lm, length)
            ids.append(row_ids)
            masks.append(lm_attention_mask(row_ids))
            labels.append(row_labels)
        if mmu:
            codes = np.stack([c for c, _, _ in mmu]).astype(np.int64)
            has_prompt = [p is not None for _, p, _ in mmu]
            prompts = [p if p is not None else [] for _, p, _ in mmu]
            row_ids, row_labels = self.prompting.mmu_train_ids(
                codes, [list(t) for _, _, t in mmu], prompts if any(has_prompt) else None)
            ids.append(row_ids)
            masks.append(mmu_attention_mask(row_ids, lay))
            labels.append(row_labels)
        if not ids:
            raise ValueError("a batch needs at least one row")
        widths = {a.shape[1] for a in ids}
        if widths != {length}:
            raise ValueError(f"row lengths {sorted(widths)} differ from the T2I length {length}")
        return Batch(torch.from_numpy(np.concatenate(ids)), torch.from_numpy(np.concatenate(masks))[:, None],
                     torch.from_numpy(np.concatenate(labels)), len(t2i), len(lm), len(mmu))
