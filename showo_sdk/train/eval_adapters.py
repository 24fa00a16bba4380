"""Callables for ``evaluation``: the torch reference (a checkpoint) or the exported bundle (``Runtime``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..imageio import preprocess, to_uint8
from ..prompting import Prompting
from .evaluation import AnswerFn, GenerateFn


def reference_fns(ckpt: str | os.PathLike, steps: int = 12, guidance_scale: float = 2.0, seed: int = 0,
                  max_new_tokens: int = 8, device: str = "cpu") -> tuple[GenerateFn, AnswerFn]:
    """generate/answer through the PyTorch reference (cached T2I, KV-cache MMU, greedy answers) on ``device``."""
    import torch

    from ..model.generate import mmu_generate, t2i_generate
    from ..model.magvit_io import load_magvit
    from ..model.showo_io import load_showo
    from ..tokenizer import TextTokenizer

    model, vq = load_showo(ckpt).to(device), load_magvit(Path(ckpt) / "vq").to(device)
    cfg = model.showo_config
    tok = TextTokenizer.from_file(ckpt)
    prompting = Prompting(cfg, tok)
    gen = torch.Generator(device).manual_seed(seed)

    @torch.no_grad()
    def generate(prompts: list[str]) -> list[np.ndarray]:
        cond = torch.from_numpy(prompting.t2i(prompts))
        uncond = torch.from_numpy(prompting.t2i_null_ids(len(prompts)))
        codes = t2i_generate(model, cfg, cond, uncond, steps=steps, guidance_scale=guidance_scale, generator=gen)
        return list(to_uint8(vq.decode(codes, grid=cfg.image_grid).cpu().numpy()))

    @torch.no_grad()
    def answer(images: list[np.ndarray], questions: list[str]) -> list[str]:
        res = cfg.image_grid[0] * vq.factor
        codes = vq.encode(torch.from_numpy(np.stack([preprocess(im, res) for im in images])).to(device)).cpu().numpy()
        out = []
        for c, q in zip(codes, questions):
            ids = torch.from_numpy(prompting.mmu_ids(c[None], prompting.mmu_question_ids(q)))
            out.append(tok.decode(mmu_generate(model, cfg, ids, max_new_tokens)[0]).strip())
        return out

    return generate, answer


def runtime_fns(bundle: str | os.PathLike, steps: int = 12, guidance_scale: float = 2.0, seed: int = 0,
                max_new_tokens: int = 8) -> tuple[GenerateFn, AnswerFn]:
    """generate/answer through ``showo_sdk.Runtime`` on an exported bundle (what users ship)."""
    from ..runtime import Runtime

    rt = Runtime(bundle)
    counter = iter(range(seed, 2**62))

    def generate(prompts: list[str]) -> list[np.ndarray]:
        return rt.generate(prompts, steps=steps, guidance_scale=guidance_scale, seed=next(counter), output="numpy")

    def answer(images: list[np.ndarray], questions: list[str]) -> list[str]:
        return [rt.understand(im, q, max_new_tokens=max_new_tokens) for im, q in zip(images, questions)]

    return generate, answer
