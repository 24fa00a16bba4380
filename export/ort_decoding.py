"""Greedy T2I and MMU decoding driven by the exported graphs in ONNX Runtime (numpy only).

Used by validation (token agreement against the PyTorch reference, and int8/fp16 against fp32)
and by the tests. It exercises the graphs exactly as a runtime does: prefix once, one t2i_step per
MaskGIT step with the CFG rows batched, MMU prefill then decode_step over a fixed-capacity cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from showo_sdk.config import ShowoConfig
from showo_sdk.sampling import maskgit_generate

_NP = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}


def session(path: str | os.PathLike) -> ort.InferenceSession:
    """A CPU session with warnings silenced (ORT logs every unused initializer)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _kv_dtype(sess: ort.InferenceSession) -> type:
    return next(_NP[i.type] for i in sess.get_inputs() if i.name.startswith("past_key_values."))


class OrtDecoder:
    """ONNX Runtime sessions over the four transformer graphs with greedy T2I and MMU loops."""

    def __init__(self, paths: dict[str, Path], config: ShowoConfig):
        self.config = config
        self.layout = config.layout
        self.sessions = {name: session(paths[name]) for name in ("t2i_prefix", "t2i_step", "mmu_prefill", "decode_step")}

    def run(self, name: str, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sess = self.sessions[name]
        return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))

    def t2i_codes(self, cond_ids: np.ndarray, uncond_ids: np.ndarray | None, steps: int,
                  guidance_scale: float) -> np.ndarray:
        """Greedy MaskGIT over full T2I sequences (B, L) as SHOWO_SPEC.md §3 builds them -> codes (B, N)."""
        lay, t, n = self.layout, self.config.text_block_len, self.config.num_image_tokens
        use_cfg = guidance_scale > 0
        texts = np.concatenate([cond_ids[:, :t], uncond_ids[:, :t]]) if use_cfg else cond_ids[:, :t]  # (B', T)
        presents = self.run("t2i_prefix", {"input_ids": texts})
        feed = {name.replace("present.", "past_key_values.", 1): value for name, value in presents.items()}
        feed["attention_mask"] = (texts != lay.pad_id).astype(np.int64)  # (B', T)
        canvas = cond_ids[:, t + 1:t + 1 + n] - lay.codebook_offset  # (B, N), K = [MASK]
        b = canvas.shape[0]
        soi = np.full((b, 1), lay.soi_id, dtype=np.int64)
        eoi = np.full((b, 1), lay.eoi_id, dtype=np.int64)

        def step_fn(current: np.ndarray) -> np.ndarray:
            segment = np.concatenate([soi, current + lay.codebook_offset, eoi], axis=1)  # (B, N+2)
            feed["input_ids"] = np.concatenate([segment, segment]) if use_cfg else segment
            return self.run("t2i_step", feed)["logits"]  # (B', N, K)

        return maskgit_generate(step_fn, canvas, steps, num_codes=lay.codebook_size,
                                guidance_scale=guidance_scale, greedy=True)

    def mmu_tokens(self, prompt_ids: np.ndarray, max_new_tokens: int, eot_id: int | None = None) -> list[list[int]]:
        """Greedy answers for MMU prompts (B, L): prefill, then decode_step over a cache of L + max_new_tokens."""
        eot = self.layout.eos_id if eot_id is None else eot_id
        b, length = prompt_ids.shape
        capacity = length + max_new_tokens
        out = self.run("mmu_prefill", {"input_ids": prompt_ids})
        dtype = _kv_dtype(self.sessions["decode_step"])
        cache: dict[str, np.ndarray] = {}
        for name, value in out.items():
            if name.startswith("present."):
                buf = np.zeros(value.shape[:2] + (capacity, value.shape[3]), dtype=dtype)  # (B, H, S, D)
                buf[:, :, :length] = value
                cache[name.replace("present.", "past_key_values.", 1)] = buf
        mask = np.zeros((b, capacity), dtype=np.int64)
        mask[:, :length] = 1
        answers: list[list[int]] = [[] for _ in range(b)]
        done = np.zeros(b, dtype=bool)
        nxt = out["logits"][:, -1].argmax(-1)  # (B,)
        for i in range(max_new_tokens):
            for row in np.flatnonzero(~done):
                answers[row].append(int(nxt[row]))
            done |= nxt == eot
            if done.all() or i == max_new_tokens - 1:
                break
            pos = length + i
            step = self.run("decode_step", {
                "input_ids": nxt[:, None].astype(np.int64), "position_ids": np.full((b, 1), pos, dtype=np.int64),
                "attention_mask": mask, **cache})
            for name, buf in cache.items():
                buf[:, :, pos] = step[name.replace("past_key_values.", "present.", 1)][:, :, 0]
            mask[:, pos] = 1
            nxt = step["logits"][:, -1].argmax(-1)
        return answers
