"""Ship a trained checkpoint inside the package: weights only (no optimizer state), optionally fp16.

fp16 storage halves the wheel; loaders cast to fp32, so the shipped model *is* the rounded one and
every evaluation of it is made after the rounding.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from ..utils.atomic import atomic_dir

KEEP = ("config.json", "tokenizer.json")


def ship_checkpoint(src: str | os.PathLike, dest: str | os.PathLike, dtype: str = "float16") -> None:
    """Copy ``src`` (our format, with ``vq/``) to ``dest`` atomically, weights cast to ``dtype``."""
    from safetensors.torch import load_file, save_file

    src, cast = Path(src), getattr(torch, dtype)
    with atomic_dir(dest, overwrite=True) as tmp:
        for name in KEEP:
            shutil.copy2(src / name, tmp / name)
        save_file({k: v.to(cast) for k, v in load_file(str(src / "model.safetensors")).items()},
                  str(tmp / "model.safetensors"))
        (tmp / "vq").mkdir()
        shutil.copy2(src / "vq" / "config.json", tmp / "vq" / "config.json")
        save_file({k: (v.to(cast) if v.is_floating_point() else v)
                   for k, v in load_file(str(src / "vq" / "model.safetensors")).items()},
                  str(tmp / "vq" / "model.safetensors"))
