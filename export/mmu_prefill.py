"""``mmu_prefill``: an MMU prompt -> next-token logits of its last position and the prompt's keys/values.

The MMU mask is built in-graph: causal, except that every row sees all columns up to and including
the first ``<|eoi|>`` found in the ids (the image prefix is bidirectional); without an ``<|eoi|>``
it is plain causal (a language-model prompt). Positions 0..L-1. Only the last row reaches the
lm_head: the logits are (B, 1, V), not (B, L, V).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .common import Dim, GraphSpec, TensorSpec
from .forward import GraphForward, flat_kv
from .samples import kv_arrays, mmu_reference, mmu_sequences
from .transformer_graph import TransformerGraph


def mmu_mask(input_ids: torch.Tensor, eoi_id: int) -> torch.Tensor:
    """bool (B, 1, L, L), True = may attend: causal | column <= first <|eoi|>."""
    length = input_ids.shape[1]
    pos = torch.arange(length, device=input_ids.device)
    causal = pos[:, None] >= pos[None, :]  # (L, L)
    first_eoi = torch.argmax((input_ids == eoi_id).to(torch.float32), dim=1)  # (B,), 0 when absent
    prefix = pos[None, None, None, :] <= first_eoi[:, None, None, None]  # (B, 1, 1, L)
    return causal | prefix


class _Prefill(nn.Module):
    def __init__(self, forward: GraphForward, eoi_id: int):
        super().__init__()
        self.stack = forward
        self.eoi_id = eoi_id

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b, length = input_ids.shape  # (B, L)
        positions = torch.arange(length, device=input_ids.device).expand(b, length)
        hidden, presents = self.stack.run(input_ids, positions, mmu_mask(input_ids, self.eoi_id))
        return (self.stack.logits(hidden[:, -1:]), *flat_kv(presents))  # (B, 1, V), (B, H, L, D) ...


class MMUPrefill(TransformerGraph):
    name = "mmu_prefill"

    def spec(self) -> GraphSpec:
        cfg = self.config
        v = cfg.layout.vocab_size
        max_len = cfg.transformer.max_position_embeddings
        prompt = cfg.num_image_tokens + 4 + 16  # a typical MMU prompt with a short question
        return GraphSpec(
            self.name,
            inputs=(TensorSpec("input_ids", "int64", ("batch", "seq_len")),),
            outputs=(TensorSpec("logits", "float32", ("batch", 1, v)), *self.kv("present", "seq_len")),
            dims=(self.batch_dim(1), Dim("seq_len", 1, min(prompt, max_len), max_len)),
            notes={"positions": "0..L-1 in-graph",
                   "mask": "in-graph: causal | column <= first <|eoi|> (plain causal without <|eoi|>)",
                   "logits": "last position only"})

    def module(self) -> nn.Module:
        return _Prefill(GraphForward(self.model, self.torch_dtype), self.config.layout.eoi_id)

    def _case(self, batch: int, question_len: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        ids = mmu_sequences(self.config, self.rng(), batch, question_len)
        _, logits, presents = mmu_reference(self.reference_model, self.config, ids)
        return {"input_ids": ids}, {"logits": logits[:, -1:].numpy(), **kv_arrays(presents, "present", slice(None))}

    def example_inputs(self) -> dict[str, np.ndarray]:
        return self._case(2, 3)[0]

    def validation_cases(self) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        return [self._case(1, 7), self._case(3, 1)]
