"""Load and save MAGVIT-v2 checkpoints: the official showlab/magvitv2 layout and ours.

Official: a diffusers-style ``config.json`` (``{"_class_name": "MAGVITv2", "_version": ...}``; the
official class takes no architecture arguments, so it always means the default VQConfig) plus
``pytorch_model.safetensors`` / ``model.safetensors`` / ``pytorch_model.bin``. Ours: ``config.json`` =
``{"format": "showo-sdk-vq", "version": 1, "vq": VQConfig}`` plus ``model.safetensors``. Pickled
``.bin`` files are only read with ``torch.load(weights_only=True)``, which refuses code objects.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..config import VQConfig
from ..errors import CheckpointError, ConfigError
from ..utils.atomic import atomic_dir
from .magvit import MagvitV2, lfq_buffers

FORMAT = "showo-sdk-vq"
VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
OFFICIAL_CLASS = "MAGVITv2"
#: Weight files of the official layout, in the order they are looked for.
OFFICIAL_WEIGHTS = ("pytorch_model.safetensors", "model.safetensors", "pytorch_model.bin")

# Official sub-module arguments that would change the weights, with the values the released
# MAGVITv2 hard-codes. A config.json setting one of them to anything else describes another model.
_OFFICIAL_ARCH: dict[str, tuple[Any, ...]] = {
    "ch": (128,),
    "ch_mult": ([1, 2, 2, 4, 4], [1, 1, 2, 2, 4]),  # encoder, decoder
    "num_res_blocks": ([4, 3, 4, 3, 4], [4, 4, 3, 4, 3]),
    "attn_resolutions": ([5],),
    "in_ch": (3,),
    "out_ch": (3,),
    "z_channels": (13,),
    "codebook_dim": (13,),
    "num_codebook_entry": (-1, 8192),
    "double_z": (False,),
}
_LIST_LIMIT = 10


def load_magvit(path: str | os.PathLike, device: str | torch.device = "cpu") -> MagvitV2:
    """Load a MAGVIT-v2 tokenizer directory (official or ours) as an fp32 model in eval mode."""
    root = Path(path)
    if not root.is_dir():
        raise CheckpointError(
            f"MAGVIT-v2 checkpoint {os.fspath(root)!r} is not a directory; expected a directory with "
            f"{CONFIG_NAME} and weights ({WEIGHTS_NAME} or one of {list(OFFICIAL_WEIGHTS)})")
    cfg, candidates = read_config(root / CONFIG_NAME)
    weights = next((root / name for name in candidates if (root / name).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{os.fspath(root)!r} has no weights file; expected one of {list(candidates)}")
    state = read_state_dict(weights)
    with torch.device("meta"):
        model = MagvitV2(cfg)
    state = _checked_state(model, state, weights)
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device).eval()


def save_pretrained(model: MagvitV2, path: str | os.PathLike, overwrite: bool = False) -> None:
    """Write ``config.json`` and ``model.safetensors`` into a temp dir, then rename it onto ``path``."""
    config = {"format": FORMAT, "version": VERSION, "vq": model.config.to_dict()}
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_dir(path, overwrite=overwrite) as tmp:
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})


def read_config(file: Path) -> tuple[VQConfig, tuple[str, ...]]:
    """Parse ``config.json`` of either layout -> (VQConfig, weight file names to look for)."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"missing {os.fspath(file)!r}: a MAGVIT-v2 checkpoint needs {CONFIG_NAME}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {os.fspath(file)!r} as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{os.fspath(file)!r} must hold a JSON object, got {type(data).__name__}")
    if "format" in data:
        return _ours_config(data, file), (WEIGHTS_NAME,)
    if "_class_name" in data:
        return official_config(data, file), OFFICIAL_WEIGHTS
    raise CheckpointError(
        f"{os.fspath(file)!r} is neither our format (\"format\": \"{FORMAT}\") nor an official showlab "
        f"config (\"_class_name\": \"{OFFICIAL_CLASS}\"); keys: {sorted(data)}")


def official_config(data: Mapping[str, Any], file: Path | None = None) -> VQConfig:
    """Map an official diffusers-style config to VQConfig (the official model's shape is fixed).

    ``_``-prefixed keys are metadata, ``resolution`` is carried over, keys that would change the
    architecture are refused unless they hold the official value; other keys are ignored.
    """
    where = os.fspath(file) if file is not None else "official config"
    if data.get("_class_name") != OFFICIAL_CLASS:
        raise CheckpointError(f"{where}: _class_name {data.get('_class_name')!r} is not {OFFICIAL_CLASS!r}")
    bad = [f"{k}={v!r} (official: {' or '.join(map(repr, _OFFICIAL_ARCH[k]))})"
           for k, v in data.items() if k in _OFFICIAL_ARCH and v not in _OFFICIAL_ARCH[k]]
    if bad:
        raise CheckpointError(f"{where}: {', '.join(bad)} would change the official MAGVITv2 architecture")
    try:
        return VQConfig(resolution=int(data.get("resolution", VQConfig.resolution)))
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: {exc}") from exc


def _ours_config(data: Mapping[str, Any], file: Path) -> VQConfig:
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise CheckpointError(
            f"{os.fspath(file)!r}: format {data.get('format')!r} version {data.get('version')!r} is not "
            f"{FORMAT!r} version {VERSION}; re-save it with this SDK")
    try:
        return VQConfig.from_dict(data.get("vq"))
    except ConfigError as exc:
        raise CheckpointError(f"{os.fspath(file)!r}: bad \"vq\" section: {exc}") from exc


def read_state_dict(file: Path) -> dict[str, Tensor]:
    """Read a ``.safetensors`` or pickled ``.bin`` state dict on CPU; pickles with code are refused."""
    try:
        if file.suffix == ".safetensors":
            state = load_file(str(file), device="cpu")
        else:
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, corrupt archive and I/O errors all mean "unusable file"
        raise CheckpointError(
            f"cannot read weights {os.fspath(file)!r} (pickles are loaded with weights_only=True, which "
            f"refuses anything but tensors and plain containers): {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{os.fspath(file)!r} is not a flat state dict of tensors")
    return dict(state)


def _listing(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    more = f" ... ({len(items)} in all)" if len(items) > _LIST_LIMIT else f" ({len(items)})"
    return f"{title}: {shown}{more}"


def _checked_state(model: MagvitV2, state: dict[str, Tensor], file: Path) -> dict[str, Tensor]:
    """Match ``state`` against ``model``'s keys and shapes, check the LFQ buffers, cast floats to fp32."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
             for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    sections = (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong))
    problems = [_listing(title, items) for title, items in sections if items]
    if problems:
        raise CheckpointError(
            f"{os.fspath(file)!r} does not fit the configured MAGVIT-v2: " + "; ".join(problems))
    bits = model.config.codebook_bits
    for key, want in zip(("quantize.embedding", "quantize.power_vals"), lfq_buffers(bits)):
        if not torch.equal(state[key].to(want.dtype), want):
            raise CheckpointError(
                f"{os.fspath(file)!r}: {key} does not hold the {bits}-bit LFQ constants "
                "(channel 0 = most significant bit)")
    return {k: v.to(expected[k].dtype) for k, v in state.items()}
