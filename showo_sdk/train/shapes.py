"""The "shapes" recipe: our own small Show-o trained on generated scenes (and a "tiny" one for tests).

Pipeline: generate records -> train a BPE tokenizer on their texts -> train the LFQ tokenizer ->
encode every image once -> three Show-o stages (class-conditional + captioning + LM, then
compositional T2I + captioning, then VQA instruction data with T2I kept) -> checkpoint with
tokenizer and VQ beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..config import ShowoConfig, TransformerConfig, VQConfig
from ..prompting import MMU_TEMPLATE
from ..tokenizer import TextTokenizer
from .data import make_split, text_corpus
from .trainer import Example, StageConfig, Trainer
from .vq_trainer import SHAPES_VQ, SHAPES_VQ_TRAIN, VQTrainConfig, train_vq


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a trained model, so one name reproduces it."""

    name: str
    image_size: int
    vq: VQConfig
    vq_train: VQTrainConfig
    text_vocab: int
    max_text_len: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_train: int
    num_heldout: int
    stages: tuple[StageConfig, ...]
    seed: int = 0
    holdout_pairs: tuple[tuple[str, str], ...] = ()

    def showo_config(self, tokenizer: TextTokenizer) -> ShowoConfig:
        layout = tokenizer.layout(self.vq.codebook_size)
        grid = self.image_size // self.vq.downsample_factor
        t = TransformerConfig(vocab_size=layout.vocab_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
                              num_heads=self.num_heads, intermediate_size=4 * self.hidden_size,
                              max_position_embeddings=256)
        return ShowoConfig(layout=layout, transformer=t, max_text_len=self.max_text_len, image_grid=(grid, grid))


def _stages(scale: int, lr: float, batch: tuple[int, int, int], amp: str = "fp32") -> tuple[StageConfig, ...]:
    """The three official stages at ``scale`` steps per unit (3 : 4 : 3), checkpointed every 100 steps."""
    t2i, lm, mmu = batch
    every = 100 if scale >= 100 else 0
    common = dict(batch_t2i=t2i, batch_lm=lm, batch_mmu=mmu, save_every=every, amp=amp)
    return (
        StageConfig(name="stage1", steps=scale * 3, lr=lr, warmup=min(100, scale), t2i_text="class",
                    mmu_kind="caption", **common),
        StageConfig(name="stage2", steps=scale * 4, lr=lr, warmup=min(50, scale), t2i_text="caption",
                    mmu_kind="mixed", **common),
        StageConfig(name="stage3", steps=scale * 3, lr=lr / 2, warmup=min(50, scale), t2i_text="caption",
                    mmu_kind="qa", **common),
    )


RECIPES: dict[str, Recipe] = {
    "shapes": Recipe(
        name="shapes", image_size=32,
        vq=SHAPES_VQ, vq_train=SHAPES_VQ_TRAIN, text_vocab=400, max_text_len=24,
        hidden_size=256, num_layers=6, num_heads=8, num_train=20000, num_heldout=600,
        stages=_stages(600, 1e-3, (20, 2, 8), amp="bf16")),
    "tiny": Recipe(
        name="tiny", image_size=32,
        vq=VQConfig(base_channels=8, encoder_ch_mult=(1, 2, 2), encoder_num_res_blocks=(1, 1, 1),
                    decoder_ch_mult=(1, 2, 2), decoder_num_res_blocks=(1, 1, 1), codebook_bits=6,
                    resolution=32, norm_groups=4),
        vq_train=VQTrainConfig(steps=3, batch_size=4, lr=1e-3, warmup=1), text_vocab=300, max_text_len=24,
        hidden_size=32, num_layers=2, num_heads=4, num_train=24, num_heldout=6,
        stages=_stages(1, 1e-3, (2, 1, 2), amp="bf16")),
}


def build_tokenizer(recipe: Recipe) -> TextTokenizer:
    """A byte-level BPE trained on the recipe's captions, questions, answers and the MMU template."""
    corpus = list(text_corpus(recipe.seed, 2000)) + [MMU_TEMPLATE.format(question="")] * 50
    return TextTokenizer.train(corpus, vocab_size=recipe.text_vocab)


def answer_text(answer: str) -> str:
    """How an answer follows the MMU template in training rows (one space after 'ASSISTANT:')."""
    return " " + answer


@torch.no_grad()
def encode_records(vq, records: Sequence[dict[str, Any]], tokenizer: TextTokenizer, batch: int = 256,
                   progress: bool = True) -> list[Example]:
    """VQ-encode every image once and tokenize every text: the Show-o trainer works on these."""
    from ..imageio import preprocess

    examples = []
    for start in tqdm(range(0, len(records), batch), desc="encode images", disable=not progress):
        chunk = records[start:start + batch]
        pixels = torch.from_numpy(np.stack([preprocess(r["image"], r["image"].shape[0]) for r in chunk]))
        codes = vq.encode(pixels).numpy()
        for rec, c in zip(chunk, codes):
            qa = [(tokenizer.encode(MMU_TEMPLATE.format(question=q)), tokenizer.encode(answer_text(a)))
                  for q, a in rec["qa"]]
            examples.append(Example(codes=c, caption=tokenizer.encode(rec["caption"]),
                                    class_name=tokenizer.encode(rec["class_name"] or rec["caption"]), qa=qa))
    return examples


def records(recipe: Recipe, split: str, n: int) -> list[dict[str, Any]]:
    return make_split(recipe.seed, n, split, recipe.image_size, recipe.holdout_pairs)


def train_recipe(recipe: Recipe, out_dir: str | os.PathLike, progress: bool = True,
                 device: str | None = None) -> Path:
    """Run the whole recipe into ``out_dir``; returns the final checkpoint (our format, with tokenizer and vq/).

    Every step is resumable: re-running after an interruption continues where it stopped. ``device``
    places the Show-o stages ("auto"/None: a GPU when there is one); the small VQ trains on the CPU.
    """
    from ..model.magvit_io import load_magvit

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    tokenizer_file = out / "tokenizer.json"
    if tokenizer_file.is_file():
        tokenizer = TextTokenizer.from_file(tokenizer_file)
    else:
        tokenizer = build_tokenizer(recipe)
        tokenizer.save(tokenizer_file)
    train_records = records(recipe, "train", recipe.num_train)
    heldout = records(recipe, "heldout", recipe.num_heldout)
    times["data_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    vq_ckpt = train_vq(recipe.vq, np.stack([r["image"] for r in train_records]), out / "vq", recipe.vq_train,
                       seed=recipe.seed, eval_images=np.stack([r["image"] for r in heldout]), progress=progress)
    vq = load_magvit(vq_ckpt)
    times["vq_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    examples = encode_records(vq, train_records, tokenizer, progress=progress)
    times["encode_s"] = time.perf_counter() - t0
    config = recipe.showo_config(tokenizer)
    trainer = Trainer(config, examples, out / "showo", tokenizer=tokenizer, vq=vq, seed=recipe.seed, progress=progress,
                      device=device)
    ckpt = None
    for stage in recipe.stages:
        t0 = time.perf_counter()
        ckpt = trainer.run(stage, init_from=ckpt)
        times[f"{stage.name}_s"] = time.perf_counter() - t0
    with open(out / "timings.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"recipe": recipe.name, **times}) + "\n")
    return ckpt
