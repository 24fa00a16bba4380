"""``t2i_prefix``: the T2I text block (cond and null prompts batched) -> its keys/values, once per prompt.

The text rows never see the image (SHOWO_SPEC.md §4), so their keys/values serve every MaskGIT
step. The mask is built in-graph from the ids: causal, and a non-PAD row never sees PAD columns
(PAD rows stay causal): ``causal & (is_pad_row | ~is_pad_col)``; positions are 0..T-1.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .common import GraphSpec, TensorSpec
from .forward import GraphForward, flat_kv
from .samples import kv_arrays, t2i_reference, t2i_sequences
from .transformer_graph import TransformerGraph


def prefix_mask(input_ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """bool (B, 1, T, T), True = may attend: text rows causal, non-PAD rows blind to PAD columns."""
    t = input_ids.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=input_ids.device).tril()  # (T, T)
    is_pad = input_ids == pad_id  # (B, T)
    return causal & (is_pad[:, None, :, None] | ~is_pad[:, None, None, :])


class _Prefix(nn.Module):
    def __init__(self, forward: GraphForward, pad_id: int):
        super().__init__()
        self.stack = forward
        self.pad_id = pad_id

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b, t = input_ids.shape  # (B, T)
        positions = torch.arange(t, device=input_ids.device).expand(b, t)
        _, presents = self.stack.run(input_ids, positions, prefix_mask(input_ids, self.pad_id))
        return flat_kv(presents)  # present.{i}.key|value (B, H, T, D)


class T2IPrefix(TransformerGraph):
    name = "t2i_prefix"

    def spec(self) -> GraphSpec:
        t = self.config.text_block_len
        return GraphSpec(
            self.name,
            inputs=(TensorSpec("input_ids", "int64", ("batch", t)),),
            outputs=self.kv("present", t),
            dims=(self.batch_dim(2),),
            notes={"positions": f"0..{t - 1} in-graph",
                   "mask": "in-graph from input_ids: causal & (is_pad_row | ~is_pad_col)"})

    def module(self) -> nn.Module:
        return _Prefix(GraphForward(self.model, self.torch_dtype), self.config.layout.pad_id)

    def _case(self, text_lens: list[int]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        t = self.config.text_block_len
        ids = t2i_sequences(self.config, self.rng(), text_lens)
        _, _, presents = t2i_reference(self.reference_model, self.config, ids)
        return {"input_ids": ids[:, :t]}, kv_arrays(presents, "present", slice(0, t))

    def example_inputs(self) -> dict[str, np.ndarray]:
        return self._case([3, 0])[0]

    def validation_cases(self) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        m = self.config.max_text_len
        # the longest text that fits, the null prompt, and one truncated to the block
        return [self._case([5]), self._case([m - 2, 0, m + 4])]
