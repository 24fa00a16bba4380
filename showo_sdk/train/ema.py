"""Exponential moving average of a model's weights over a stage's steps.

Generative models often sample better from an average of their recent weights than from the last
step's, so a stage can end on its EMA (``StageConfig.ema_decay``); on the shapes recipe the gain was
within the evaluation's noise (README), so it is off there. The average is saved beside the
raw weights in every mid-stage checkpoint (``ema.safetensors``), so a resumed stage ends on the same
average as an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError

EMA_FILE = "ema.safetensors"


class WeightEMA:
    """``shadow = decay * shadow + (1 - decay) * weights`` after every optimizer step, from the stage's start."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.params = dict(model.named_parameters())
        self.shadow = {name: p.detach().clone() for name, p in self.params.items()}

    @torch.no_grad()
    def update(self) -> None:
        for name, p in self.params.items():
            self.shadow[name].lerp_(p.detach(), 1.0 - self.decay)

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Put the average into the model's parameters (the stage then ends on it)."""
        for name, p in self.params.items():
            p.copy_(self.shadow[name])

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in self.shadow.items()}, str(Path(directory) / EMA_FILE))

    def load(self, directory: Path) -> None:
        """Restore a saved average; CheckpointError naming the file if it is missing, damaged or another model's."""
        from safetensors.torch import load_file

        path = Path(directory) / EMA_FILE
        if not path.is_file():
            raise CheckpointError(f"missing {path}: cannot resume a stage with ema_decay without its weight average")
        try:
            tensors = load_file(str(path))
        except Exception as exc:  # SafetensorError, OSError: truncated or corrupt
            raise CheckpointError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
        if set(tensors) != set(self.shadow):
            missing, extra = sorted(set(self.shadow) - set(tensors)), sorted(set(tensors) - set(self.shadow))
            raise CheckpointError(f"{path} does not match the model: missing {missing[:3]}, unexpected {extra[:3]}")
        for name, value in tensors.items():
            if value.shape != self.shadow[name].shape or value.dtype != self.shadow[name].dtype:
                raise CheckpointError(f"{path}: {name} is {value.dtype} {tuple(value.shape)}, the model's is "
                                      f"{self.shadow[name].dtype} {tuple(self.shadow[name].shape)}")
        for name, value in tensors.items():
            self.shadow[name].copy_(value)
