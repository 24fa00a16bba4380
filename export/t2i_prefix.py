"""``t2i_prefix``: the T2I text block (cond and null prompts batched) -> its keys/values, once per prompt.

The text rows never see the image (SHOWO_SPEC.md §4), so their keys/values serve every MaskGIT
step. The graph takes the block's tail from its first column that is not [PAD] in every row
(``Prompting.t2i_block_start``): no row but a PAD row ever attends to a PAD column, so the leading
PAD columns' keys/values are never read and need not be computed (a short prompt is ~20 of 129 rows
at Show-o's size). Positions are T-S..T-1 for S given columns; the mask is built in-graph from the
ids: causal, and a non-PAD row never sees PAD columns (PAD rows stay causal):
``causal & (is_pad_row | ~is_pad_col)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from showo_sdk.prompting import Prompting

from .common import GraphSpec, TensorSpec
from .forward import GraphForward, flat_kv
from .samples import kv_arrays, t2i_reference, t2i_sequences
from .transformer_graph import TransformerGraph


def prefix_mask(input_ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """bool (B, 1, S, S), True = may attend: text rows causal, non-PAD rows blind to PAD columns."""
    s = input_ids.shape[1]
    causal = torch.ones(s, s, dtype=torch.bool, device=input_ids.device).tril()  # (S, S)
    is_pad = input_ids == pad_id  # (B, S)
    return causal & (is_pad[:, None, :, None] | ~is_pad[:, None, None, :])


class _Prefix(nn.Module):
    def __init__(self, forward: GraphForward, pad_id: int, block_len: int):
        super().__init__()
        self.stack = forward
        self.pad_id = pad_id
        self.block_len = block_len

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b, s = input_ids.shape  # (B, S): the last S columns of the text block
        positions = torch.arange(self.block_len - s, self.block_len, device=input_ids.device).expand(b, s)
        _, presents = self.stack.run(input_ids, positions, prefix_mask(input_ids, self.pad_id))
        return flat_kv(presents)  # present.{i}.key|value (B, H, S, D)


class T2IPrefix(TransformerGraph):
    name = "t2i_prefix"

    def spec(self) -> GraphSpec:
        t = self.config.text_block_len
        return GraphSpec(
            self.name,
            inputs=(TensorSpec("input_ids", "int64", ("batch", "text")),),
            outputs=self.kv("present", "text"),
            dims=(self.batch_dim(2), self.text_dim()),
            notes={"input_ids": f"the text block's last S columns (S <= {t}), from its first column that is not "
                                f"[PAD] in every row (Prompting.t2i_block_start)",
                   "positions": f"{t}-S..{t - 1} in-graph",
                   "mask": "in-graph from input_ids: causal & (is_pad_row | ~is_pad_col)",
                   "present": "keys/values of the given columns; PAD rows' entries are never read"})

    def module(self) -> nn.Module:
        return _Prefix(GraphForward(self.model, self.torch_dtype), self.config.layout.pad_id,
                       self.config.text_block_len)

    def _case(self, text_lens: list[int]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Inputs from the block's first needed column; expected keys/values NaN (not compared) on PAD rows."""
        t, pad = self.config.text_block_len, self.config.layout.pad_id
        ids = t2i_sequences(self.config, self.rng(), text_lens)
        start = Prompting(self.config).t2i_block_start(ids[:, :t])
        _, _, presents = t2i_reference(self.reference_model, self.config, ids)
        expected = kv_arrays(presents, "present", slice(start, t))
        pad_rows = (ids[:, start:t] == pad)[:, None, :, None]  # (B, 1, S, 1)
        return {"input_ids": ids[:, start:t]}, {k: np.where(pad_rows, np.nan, v) for k, v in expected.items()}

    def example_inputs(self) -> dict[str, np.ndarray]:
        return self._case([3, 0])[0]

    def validation_cases(self) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        m = self.config.max_text_len
        # a short prompt alone, a short prompt with the null prompt, and the longest / truncated ones (whole block)
        return [self._case([5]), self._case([m - 2, 0, m + 4]), self._case([2, 0, 7])]
