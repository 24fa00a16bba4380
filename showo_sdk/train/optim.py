"""AdamW with no decay on biases and norms, cosine LR with warmup, and pickle-free optimizer state files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices and embeddings; not biases nor LayerNorm/GroupNorm weights (1-d tensors)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.dim() < 2 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.01,
                   betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas)


def cosine_lr(step: int, total: int, warmup: int, base_lr: float, min_ratio: float = 0.1) -> float:
    """Linear warmup to ``base_lr``, then cosine decay to ``min_ratio * base_lr`` at ``total``."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def save_optimizer(opt: torch.optim.Optimizer, directory: Path) -> None:
    """Tensors to ``optimizer.safetensors``, the rest (hyper-parameters, steps) to ``optimizer.json``."""
    from safetensors.torch import save_file

    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = float(value)
    save_file(tensors, str(directory / "optimizer.safetensors"))
    (directory / "optimizer.json").write_text(json.dumps({"param_groups": sd["param_groups"], "scalars": scalars}))


def load_optimizer(opt: torch.optim.Optimizer, directory: Path) -> None:
    """Restore ``save_optimizer``'s files into ``opt``; CheckpointError naming the file if they are damaged.

    Every state tensor is checked against its parameter's shape before anything is loaded, so a
    mis-shaped file fails here rather than inside a later ``optimizer.step``.
    """
    from safetensors.torch import load_file

    from ..errors import CheckpointError

    directory = Path(directory)
    tensor_path, meta_path = directory / "optimizer.safetensors", directory / "optimizer.json"
    if not tensor_path.is_file():
        raise CheckpointError(f"missing {tensor_path}")
    try:
        tensors = load_file(str(tensor_path))
    except Exception as exc:  # SafetensorError, OSError, ...: a truncated or corrupt file
        raise CheckpointError(f"cannot read {tensor_path}: {type(exc).__name__}: {exc}") from exc
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"missing {meta_path}") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"cannot read {meta_path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("param_groups"), list) \
            or not isinstance(meta.get("scalars"), dict):
        raise CheckpointError(f"{meta_path}: expected an object with 'param_groups' (list) and 'scalars' (object)")

    params = [p for group in opt.param_groups for p in group["params"]]

    def split(key: str, source: Path) -> tuple[int, str]:
        idx, _, name = key.partition(".")
        if not idx.isdigit() or not name or int(idx) >= len(params):
            raise CheckpointError(f"{source}: unexpected entry {key!r:.80} (the optimizer has {len(params)} parameters)")
        return int(idx), name

    state: dict[int, dict] = {}
    bad = []
    for key, value in tensors.items():
        idx, name = split(key, tensor_path)
        if tuple(value.shape) != tuple(params[idx].shape) or not value.is_floating_point():
            bad.append(f"{key}: {tuple(value.shape)} {value.dtype} vs parameter {tuple(params[idx].shape)}")
        state.setdefault(idx, {})[name] = value
    if bad:
        more = f" (+{len(bad) - 10} more)" if len(bad) > 10 else ""
        raise CheckpointError(f"{tensor_path}: {len(bad)} state tensors do not match their parameters: {bad[:10]}{more}")
    for key, value in meta["scalars"].items():
        idx, name = split(key, meta_path)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CheckpointError(f"{meta_path}: scalar {key!r:.80} is not a number")
        state.setdefault(idx, {})[name] = torch.tensor(float(value))
    try:
        groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
        opt.load_state_dict({"state": state, "param_groups": groups})
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise CheckpointError(f"{meta_path}: does not fit this optimizer: {type(exc).__name__}: {exc}") from exc
