"""Text-to-image driver: the t2i_prefix graph once per call, then the C++ MaskGIT loop calling t2i_step.

The 129 text rows never see the image (SHOWO_SPEC.md §4), so their keys/values are computed once,
for the prompts and the null prompts batched together (CFG rows 2B), and bound as the step graph's
``past_key_values`` for every step: a step writes only the (2B, N+2) image-segment ids and reads
the (2B, N, K) codebook logits. Only the block's tail from its first column that is not [PAD] in
every row is computed and attended (no row reads a PAD column's keys/values).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..config import ShowoConfig
from ..prompting import Prompting
from ..sampling import maskgit_generate
from .backends import Graphs

Progress = Callable[[int, int], object]


def _kv_names(prefix: str, num_layers: int) -> list[str]:
    return [f"{prefix}.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]


class T2IDriver:
    """MaskGIT generation over full T2I sequences, on the graphs of one Runtime."""

    def __init__(self, graphs: Graphs, config: ShowoConfig):
        self.graphs, self.config = graphs, config
        self.layout = config.layout
        self.prompting = Prompting(config)
        # format-1 bundles' graphs take the whole text block
        self.whole_block = graphs.static_size("t2i_prefix", "input_ids", 1) is not None

    def rows_per_call(self, guided: bool) -> int:
        """Prompts per graph call: CFG doubles the rows, and the graphs have a maximum batch."""
        limit = min(self.graphs.max_batch("t2i_prefix"), self.graphs.max_batch("t2i_step"))
        return max(1, limit // 2 if guided else limit)

    def generate(self, cond_ids: np.ndarray, uncond_ids: np.ndarray | None, *, steps: int, guidance_scale: float,
                 temperature: float, schedule: str, seed: int, greedy: bool, num_threads: int,
                 progress: Progress | None) -> np.ndarray:
        """Codes (B, N) in codebook space for validated sequences (B, L); uncond_ids needed when guidance > 0.

        Prompts beyond the graphs' batch run in chunks; chunk c uses seed + c, so a call is
        reproducible for a given bundle.
        """
        guided = guidance_scale > 0
        per_call = self.rows_per_call(guided)
        chunks = range(0, cond_ids.shape[0], per_call)
        out = []
        for c, start in enumerate(chunks):
            rows = slice(start, start + per_call)
            report = None
            if progress is not None:
                def report(step: int, total: int, _c: int = c) -> object:
                    return progress(_c * total + step, len(chunks) * total)
            out.append(self._generate(cond_ids[rows], uncond_ids[rows] if guided else None, steps=steps,
                                      guidance_scale=guidance_scale, temperature=temperature, schedule=schedule,
                                      seed=(seed + c) % 2**64, greedy=greedy, num_threads=num_threads,
                                      progress=report))
        return np.concatenate(out)

    def _generate(self, cond_ids: np.ndarray, uncond_ids: np.ndarray | None, *, steps: int, guidance_scale: float,
                  temperature: float, schedule: str, seed: int, greedy: bool, num_threads: int,
                  progress: Progress | None) -> np.ndarray:
        cfg, lay, mem = self.config, self.layout, self.graphs.memory
        t, n, k = cfg.text_block_len, cfg.num_image_tokens, lay.codebook_size
        tc = cfg.transformer
        b = cond_ids.shape[0]
        texts = cond_ids[:, :t]  # (R, T): prompts, then null prompts with guidance
        if uncond_ids is not None:
            texts = np.concatenate([texts, uncond_ids[:, :t]])
        if not self.whole_block:
            texts = np.ascontiguousarray(texts[:, self.prompting.t2i_block_start(texts):])  # (R, S)
        s = texts.shape[1]
        rows = texts.shape[0]
        kv_dtype = self.graphs.dtype("t2i_prefix", "present.0.key")

        # prefix: once per call, its keys/values stay where the step graph reads them
        presents = {name: mem.zeros((rows, tc.num_heads, s, tc.head_dim), kv_dtype)
                    for name in _kv_names("present", tc.num_layers)}  # (R, H, S, D) each
        self.graphs["t2i_prefix"].bind({"input_ids": mem.upload(texts)}, presents).run()

        segment = np.empty((rows, n + 2), dtype=np.int64)  # <|soi|> image <|eoi|>
        segment[:, 0], segment[:, -1] = lay.soi_id, lay.eoi_id
        segment_buf = mem.zeros(segment.shape, np.int64)
        logits = mem.zeros((rows, n, k), np.float32)  # (R, N, K)
        past = {name.replace("present.", "past_key_values.", 1): buf for name, buf in presents.items()}
        step = self.graphs["t2i_step"].bind(
            {"input_ids": segment_buf, "attention_mask": mem.upload((texts != lay.pad_id).astype(np.int64)), **past},
            {"logits": logits})

        def step_fn(canvas: np.ndarray) -> np.ndarray:  # canvas (B, N), K = [MASK]
            segment[:b, 1:-1] = canvas + lay.codebook_offset
            if rows > b:  # the null prompts see the same canvas
                segment[b:, 1:-1] = segment[:b, 1:-1]
            segment_buf.write(segment)
            step.run()
            return logits.read()

        canvas = cond_ids[:, t + 1:t + 1 + n] - lay.codebook_offset  # (B, N) codebook space
        return maskgit_generate(step_fn, np.ascontiguousarray(canvas), steps, num_codes=k,
                                guidance_scale=guidance_scale, temperature=temperature, schedule=schedule,
                                seed=seed, greedy=greedy, num_threads=num_threads, progress=progress)
