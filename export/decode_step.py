"""``decode_step``: one new token over a fixed-capacity KV cache -> its logits and its key/value only.

gpt-fast style: the runtime owns cache buffers (B, H, S, D) of capacity S and writes each step's
``present.{i}.key|value`` (B, H, 1, D) at the token's slot itself, so nothing re-concatenates the
cache. ``attention_mask`` (B, S) marks the valid cache columns (1); the token attends to those and
to itself. ``position_ids`` continue the prompt's positions (left padding keeps them per row).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from showo_sdk.runtime.bundle import KV_CACHE

from .common import Dim, GraphSpec, TensorSpec
from .forward import GraphForward, flat_kv, pair_kv
from .samples import mmu_reference, mmu_sequences
from .transformer_graph import TransformerGraph


class _Decode(nn.Module):
    def __init__(self, forward: GraphForward):
        super().__init__()
        self.stack = forward

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor, attention_mask: torch.Tensor,
                *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        past_allowed = (attention_mask != 0)[:, None, None, :]  # (B, 1, 1, S)
        hidden, presents = self.stack.run(input_ids, position_ids, None, pair_kv(past), past_allowed)
        return (self.stack.logits(hidden), *flat_kv(presents))  # (B, 1, V), (B, H, 1, D) ...


class DecodeStep(TransformerGraph):
    name = "decode_step"

    def spec(self) -> GraphSpec:
        cfg = self.config
        max_len = cfg.transformer.max_position_embeddings
        capacity = min(cfg.num_image_tokens + 4 + 128, max_len)  # MMU prompt + a 100-token answer
        return GraphSpec(
            self.name,
            inputs=(TensorSpec("input_ids", "int64", ("batch", 1)),
                    TensorSpec("position_ids", "int64", ("batch", 1)),
                    TensorSpec("attention_mask", "int64", ("batch", "past_len")),
                    *self.kv("past_key_values", "past_len")),
            outputs=(TensorSpec("logits", "float32", ("batch", 1, cfg.layout.vocab_size)), *self.kv("present", 1)),
            dims=(self.batch_dim(1), Dim("past_len", 1, capacity, max_len)),
            notes={"kv_cache": KV_CACHE,
                   "attention_mask": "1 = valid cache column; the new token also sees itself",
                   "present": "the new token's key/value only: write it into the cache at its slot"})

    def module(self) -> nn.Module:
        return _Decode(GraphForward(self.model, self.torch_dtype))

    def _case(self, batch: int, question_len: int, before: int, after: int,
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """A prompt placed at cache columns [before, before+L), garbage elsewhere, then one more token."""
        rng = self.rng()
        prompt = mmu_sequences(self.config, rng, batch, question_len)
        b, length = prompt.shape
        token = rng.integers(0, self.config.layout.text_vocab_size, size=(b, 1))
        _, logits, presents = mmu_reference(self.reference_model, self.config, np.concatenate([prompt, token], 1))
        capacity = before + length + after
        mask = np.zeros((b, capacity), dtype=np.int64)
        mask[:, before:before + length] = 1
        inputs = {"input_ids": token, "position_ids": np.full((b, 1), length, dtype=np.int64), "attention_mask": mask}
        expected = {"logits": logits[:, -1:].numpy()}
        for i, (k, v) in enumerate(presents):
            for name, t in (("key", k), ("value", v)):
                cache = rng.normal(0, 10, size=(b, self.num_heads, capacity, self.head_dim)).astype(np.float32)
                cache[:, :, before:before + length] = t[:, :, :length].numpy()
                inputs[f"past_key_values.{i}.{name}"] = cache
                expected[f"present.{i}.{name}"] = t[:, :, length:].numpy()
        return self.cast_floats(inputs), expected

    def example_inputs(self) -> dict[str, np.ndarray]:
        return self._case(2, 3, 0, 2)[0]

    def validation_cases(self) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        return [self._case(1, 7, 0, 1), self._case(3, 2, 3, 5)]
