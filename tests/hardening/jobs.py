"""Jobs run in forked children (harness.fork_call): loads of damaged checkpoints, and saves that SIGKILL themselves.

``ctx`` carries ``ckpt`` (the tiny checkpoint), ``bundle`` (its good bundle) and per job ``path``
(what to load) or ``n`` / ``suffix`` / ``into`` (which write to die before, see
harness.kill_at_write). Each job works in its own scratch directory; the test then inspects what
the job returned or what the kill left on disk.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

STAGE = {"name": "s", "steps": 3, "lr": 1e-3, "warmup": 1, "batch_t2i": 2, "batch_lm": 1, "batch_mmu": 1,
         "save_every": 1}


def _harness():
    """harness.py, loaded by path (in the fork worker it runs as __main__ under another name)."""
    import importlib.util
    import sys

    key = "showo_hardening_harness"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, Path(__file__).with_name("harness.py"))
        sys.modules[key] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[key]


def _trainer(ctx, out_dir: Path):
    import torch

    from showo_sdk.model import load_magvit
    from showo_sdk.model.showo_io import read_config
    from showo_sdk.tokenizer import TextTokenizer
    from showo_sdk.train.trainer import Example, StageConfig, Trainer

    torch.set_num_threads(1)
    ckpt = Path(ctx.ckpt)
    config, _ = read_config(ckpt)
    rng = np.random.default_rng(0)
    k, tv = config.layout.codebook_size, config.layout.text_vocab_size
    examples = [Example(codes=rng.integers(0, k, config.num_image_tokens), caption=rng.integers(1, tv, 3).tolist(),
                        class_name=[1], qa=[(rng.integers(1, tv, 2).tolist(), [int(rng.integers(1, tv))])])
                for _ in range(6)]
    trainer = Trainer(config, examples, out_dir, tokenizer=TextTokenizer.from_file(ckpt / "tokenizer.json"),
                      vq=load_magvit(ckpt / "vq"), seed=0, progress=False)
    return trainer, StageConfig(**STAGE)


def warm(ctx) -> None:
    """Parent-side warm-up: one trainer built and one step run in a throwaway directory (one thread)."""
    trainer, stage = _trainer(ctx, ctx.scratch / "run")
    trainer.run(stage, stop_after=1)


def train(ctx) -> dict[str, Any]:
    """Train to step ``ctx.stop`` in ``scratch/run`` (a copy of ``ctx.start_from`` if given), optionally dying.

    The checkpoint directory is ``run/s``; a save happens at every step (save_every=1).
    """
    run = ctx.scratch / "run"
    if getattr(ctx, "start_from", None):
        shutil.copytree(ctx.start_from, run, symlinks=True)
    trainer, stage = _trainer(ctx, run)
    ckpt = run / stage.name
    if getattr(ctx, "trace", False) or getattr(ctx, "n", None) is not None or getattr(ctx, "into", False):
        _harness().kill_at_write(ckpt, n=getattr(ctx, "n", None), into=getattr(ctx, "into", False),
                                 log=ctx.scratch / "events.jsonl")
    trainer.run(stage, stop_after=ctx.stop)
    return {"events": _events(ctx.scratch / "events.jsonl")}


def export(ctx) -> dict[str, Any]:
    """Export ``ctx.ckpt`` over the good bundle copied to ``scratch/engine.plan`` (--force), optionally dying."""
    import torch

    from showo_sdk.export import ExportOptions, export_checkpoint

    torch.set_num_threads(1)
    out = ctx.scratch / "engine.plan"
    shutil.copytree(ctx.bundle, out, symlinks=True)
    _harness().kill_at_write(out, n=getattr(ctx, "n", None), suffix=getattr(ctx, "suffix", None),
                             into=getattr(ctx, "into", False), log=ctx.scratch / "events.jsonl")
    export_checkpoint(ctx.ckpt, out, options=ExportOptions(force=True, progress=False))
    return {"events": _events(ctx.scratch / "events.jsonl")}


def _events(path: Path) -> list:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root``: two equal digests are the same checkpoint."""
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(parent: Path, name: str) -> list[str]:
    """Temp directories an interrupted atomic write left beside ``name`` (``.name.*.tmp`` / ``.old``)."""
    return sorted(p.name for p in parent.glob(f".{name}.*"))


# ---- loading damaged checkpoints ------------------------------------------------------------------
def load_showo(ctx) -> str:
    import warnings

    from showo_sdk.model import load_showo as load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an official config without its phi directory warns
        model = load(ctx.path)
    return type(model).__name__


def load_magvit(ctx) -> str:
    from showo_sdk.model import load_magvit as load

    return type(load(ctx.path)).__name__


def resume(ctx) -> str:
    """Resume the trainer from the (damaged) run directory ``ctx.path`` (stopped at step 1) for one more step."""
    trainer, stage = _trainer(ctx, Path(ctx.path))
    trainer.run(stage, stop_after=2)
    return "resumed"
