"""``t2i_step``: the N+2 image-segment rows over the cached prefix -> codebook logits (B, N, K) only.

Run once per MaskGIT step. Image rows attend to every non-PAD prefix column (``attention_mask``,
computed once per prompt by the runtime) and to every image-segment column; positions are
T..T+N+1 in-graph. The prefix columns are those ``t2i_prefix`` computed: the text block's tail
from its first column that is not [PAD] in every row (S <= T of them). Only rows 1..N (the image tokens) reach the lm_head, and only its K codebook
rows are stored and multiplied: no full-vocabulary logits.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from showo_sdk.prompting import Prompting

from .common import GraphSpec, TensorSpec
from .forward import CodebookHead, GraphForward, pair_kv
from .samples import kv_arrays, t2i_reference, t2i_sequences
from .transformer_graph import TransformerGraph


class _Step(nn.Module):
    def __init__(self, forward: GraphForward, head: CodebookHead, block_len: int):
        super().__init__()
        self.stack = forward
        self.head = head
        self.block_len = block_len

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *past: torch.Tensor) -> torch.Tensor:
        b, length = input_ids.shape  # (B, N+2); past (B, H, S, D)
        t = self.block_len
        positions = torch.arange(t, t + length, device=input_ids.device).expand(b, length)
        past_allowed = (attention_mask != 0)[:, None, None, :]  # (B, 1, 1, S)
        hidden, _ = self.stack.run(input_ids, positions, None, pair_kv(past), past_allowed)
        return self.head(hidden[:, 1:-1])  # (B, N, K) float32


class T2IStep(TransformerGraph):
    name = "t2i_step"

    def spec(self) -> GraphSpec:
        t, n, k = self.config.text_block_len, self.config.num_image_tokens, self.config.layout.codebook_size
        return GraphSpec(
            self.name,
            inputs=(TensorSpec("input_ids", "int64", ("batch", n + 2)),
                    TensorSpec("attention_mask", "int64", ("batch", "text")),
                    *self.kv("past_key_values", "text")),
            outputs=(TensorSpec("logits", "float32", ("batch", n, k)),),
            dims=(self.batch_dim(2), self.text_dim()),
            notes={"positions": f"{t}..{t + n + 1} in-graph",
                   "input_ids": "the <|soi|> image <|eoi|> segment in unified ids",
                   "attention_mask": "1 = non-PAD prefix column (input_ids of t2i_prefix != pad_id), 0 = PAD",
                   "past_key_values": "t2i_prefix's present for the same S text columns",
                   "logits": "rows 1..N of the segment, codebook ids only (codebook space 0..K-1)"})

    def module(self) -> nn.Module:
        lay = self.config.layout
        head = CodebookHead(self.model, lay.codebook_offset, lay.codebook_size, self.torch_dtype)
        return _Step(GraphForward(self.model, self.torch_dtype, join_past=True), head, self.config.text_block_len)

    def _case(self, text_lens: list[int]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        cfg, lay = self.config, self.config.layout
        t, n = cfg.text_block_len, cfg.num_image_tokens
        ids = t2i_sequences(cfg, self.rng(), text_lens)
        start = Prompting(cfg).t2i_block_start(ids[:, :t])
        _, logits, presents = t2i_reference(self.reference_model, cfg, ids)
        inputs = {"input_ids": ids[:, t:], "attention_mask": (ids[:, start:t] != lay.pad_id).astype(np.int64),
                  **kv_arrays(presents, "past_key_values", slice(start, t))}
        expected = logits[:, t + 1:t + 1 + n, lay.codebook_offset:lay.codebook_offset + lay.codebook_size]
        return self.cast_floats(inputs), {"logits": expected.numpy()}

    def example_inputs(self) -> dict[str, np.ndarray]:
        return self._case([3, 0])[0]

    def validation_cases(self) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        m = self.config.max_text_len
        return [self._case([5]), self._case([m - 2, 0, m + 4]), self._case([2, 0, 7])]
