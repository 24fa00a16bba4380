"""Understanding driver: mmu_prefill once, then decode_step over a fixed-capacity KV cache, plus streaming text.

The cache buffers (B, H, S, D) are allocated once per call with S = prompt + max_new_tokens - 1
(the last token is never fed back) and bound to decode_step once; each step the graph returns only
the new token's key/value, which is written in place at its slot, and one mask column is opened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..config import ShowoConfig
from .backends import Graphs

Picker = Callable[[np.ndarray], np.ndarray]  # (B, V) float32 logits -> (B,) int64 ids


def _kv_names(prefix: str, num_layers: int) -> list[str]:
    return [f"{prefix}.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]


def picker(greedy: bool, top_k: int | None, temperature: float, seed: int) -> Picker:
    """Next-token choice as upstream: argmax, or softmax(logits / temperature) over the top_k, sampled.

    Sampling draws from a PCG64 generator seeded with ``seed``: one uniform per row and step.
    """
    if greedy:
        return lambda logits: logits.argmax(axis=-1).astype(np.int64)
    rng = np.random.Generator(np.random.PCG64(seed))

    def pick(logits: np.ndarray) -> np.ndarray:
        x = logits.astype(np.float64) / temperature  # (B, V)
        if top_k is not None and top_k < x.shape[-1]:
            kth = np.partition(x, -top_k, axis=-1)[:, -top_k][:, None]
            x = np.where(x < kth, -np.inf, x)
        p = np.exp(x - x.max(axis=-1, keepdims=True))
        cdf = np.cumsum(p, axis=-1)
        u = (1.0 - rng.random(x.shape[0]))[:, None] * cdf[:, -1:]  # in (0, total]
        return (cdf < u).sum(axis=-1).astype(np.int64)  # first index whose cdf reaches u: p > 0 there

    return pick


class MMUDriver:
    """Token generation for MMU prompts on the graphs of one Runtime."""

    def __init__(self, graphs: Graphs, config: ShowoConfig):
        self.graphs, self.config = graphs, config

    def rows_per_call(self) -> int:
        return min(self.graphs.max_batch("mmu_prefill"), self.graphs.max_batch("decode_step"))

    def steps(self, prompt_ids: np.ndarray, max_new_tokens: int, pick: Picker) -> Iterator[np.ndarray]:
        """Yield the next ids (B,) of every row, ``max_new_tokens`` times (stop early by closing the iterator)."""
        mem, tc = self.graphs.memory, self.config.transformer
        b, length = prompt_ids.shape
        h, d, v = tc.num_heads, tc.head_dim, self.config.layout.vocab_size
        kv_dtype = self.graphs.dtype("mmu_prefill", "present.0.key")

        logits = mem.zeros((b, 1, v), np.float32)  # (B, 1, V)
        prompt_kv = {name: mem.zeros((b, h, length, d), kv_dtype) for name in _kv_names("present", tc.num_layers)}
        self.graphs["mmu_prefill"].bind({"input_ids": mem.upload(prompt_ids)}, {"logits": logits, **prompt_kv}).run()
        token = pick(logits.read()[:, 0])
        yield token
        if max_new_tokens == 1:
            return

        capacity = length + max_new_tokens - 1
        cache = {}
        for name, buf in prompt_kv.items():
            cache[name.replace("present.", "past_key_values.", 1)] = slot = mem.zeros((b, h, capacity, d), kv_dtype)
            mem.copy_rows(slot, buf, 0)  # (B, H, S, D)
        del prompt_kv
        mask = np.zeros((b, capacity), dtype=np.int64)  # 1 = valid cache column
        mask[:, :length] = 1
        ids, positions, mask_buf = mem.zeros((b, 1), np.int64), mem.zeros((b, 1), np.int64), mem.upload(mask)
        new_kv = {name: mem.zeros((b, h, 1, d), kv_dtype) for name in _kv_names("present", tc.num_layers)}
        step = self.graphs["decode_step"].bind(
            {"input_ids": ids, "position_ids": positions, "attention_mask": mask_buf, **cache},
            {"logits": logits, **new_kv})
        for i in range(1, max_new_tokens):
            pos = length + i - 1  # position and cache slot of the token fed now
            ids.write(token[:, None])
            positions.write(np.full((b, 1), pos, dtype=np.int64))
            step.run()
            token = pick(logits.read()[:, 0])
            if i < max_new_tokens - 1:  # the cache is read again: store this token's key/value at its slot
                for name, buf in new_kv.items():
                    mem.copy_rows(cache[name.replace("present.", "past_key_values.", 1)], buf, pos)
                mask[:, pos] = 1
                mask_buf.write(mask)
            yield token

    def generate(self, prompt_ids: np.ndarray, max_new_tokens: int, eot_id: int, pick: Picker,
                 ) -> Iterator[list[int | None]]:
        """Per step, the new id of each row, or None for rows that already ended with ``eot_id``."""
        done = np.zeros(prompt_ids.shape[0], dtype=bool)
        tokens = self.steps(prompt_ids, max_new_tokens, pick)
        try:
            for token in tokens:
                yield [None if stop else int(t) for t, stop in zip(token, done)]
                done |= token == eot_id
                if done.all():
                    return
        finally:
            tokens.close()

    def answers(self, prompt_ids: np.ndarray, max_new_tokens: int, eot_id: int, pick: Picker) -> list[list[int]]:
        """Each row's ids, ending with ``eot_id`` (included) or after ``max_new_tokens``: one batch, one call."""
        out: list[list[int]] = [[] for _ in range(prompt_ids.shape[0])]
        for step in self.generate(prompt_ids, max_new_tokens, eot_id, pick):
            for row, token in zip(out, step):
                if token is not None:
                    row.append(token)
        return out


class TextStream:
    """Incremental detokenization: text pieces whose concatenation is the stripped answer.

    A piece is released only when the decoded text does not end inside a multi-byte character
    (the decoder shows an incomplete UTF-8 sequence as U+FFFD), leading whitespace is dropped and
    trailing whitespace is held until more text follows, so ``''.join(pieces) == answer.strip()``.
    """

    def __init__(self, decode: Callable[[list[int]], str]):
        self._decode = decode
        self._ids: list[int] = []
        self._sent = ""

    def _piece(self, text: str) -> str:
        if not text.startswith(self._sent):  # a decoder that rewrites earlier text: wait for the end
            return ""
        piece = text[len(self._sent):]
        self._sent = text
        return piece

    def push(self, token: int) -> str:
        self._ids.append(token)
        text = self._decode(self._ids).lstrip()
        if text.endswith("\ufffd"):
            return ""
        return self._piece(text.rstrip())

    def finish(self) -> str:
        return self._piece(self._decode(self._ids).strip())
