"""Load and save Show-o transformer checkpoints: the official showlab layout and our own format.

Official (diffusers style): ``config.json`` with ``_class_name: "Showo"`` + ``pytorch_model.safetensors``
(or ``pytorch_model.bin``, read with ``torch.load(weights_only=True)``); the backbone sizes come
from phi-1.5's ``config.json`` (``--llm-config``). Ours: ``config.json`` {"format": "showo-sdk", ...}
+ ``model.safetensors`` (+ ``tokenizer.json``, optional ``vq/``).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..config import ShowoConfig, TokenLayout, TransformerConfig
from ..errors import CheckpointError, ConfigError
from ..utils.atomic import atomic_dir
from .transformer import ShowoTransformer

FORMAT = "showo-sdk"
FORMAT_VERSION = 1
WEIGHT_FILES = ("pytorch_model.safetensors", "model.safetensors", "pytorch_model.bin")

# phi config.json key -> TransformerConfig field
_PHI_KEYS = {
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "intermediate_size": "intermediate_size",
    "partial_rotary_factor": "partial_rotary_factor",
    "rope_theta": "rope_theta",
    "layer_norm_eps": "layer_norm_eps",
    "max_position_embeddings": "max_position_embeddings",
}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"missing {path}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc


def read_state_dict(directory: Path, names: tuple[str, ...] = WEIGHT_FILES) -> dict[str, torch.Tensor]:
    """Tensors from the first weight file present: safetensors, else a .bin read with weights_only=True."""
    for name in names:
        path = directory / name
        if not path.is_file():
            continue
        if name.endswith(".safetensors"):
            from safetensors.torch import load_file

            try:
                return load_file(str(path))
            except Exception as exc:
                raise CheckpointError(f"cannot read {path}: {exc}") from exc
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # the unpickler refuses anything but tensors and plain containers
            raise CheckpointError(
                f"refused to load {path}: not a plain state dict of tensors ({type(exc).__name__}: {exc}); "
                f"convert it to safetensors") from exc
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{path} does not hold a flat dict of tensors")
        return state
    raise CheckpointError(f"no weights in {directory}: expected one of {', '.join(names)}")


def check_state_dict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Raise CheckpointError listing missing, unexpected and mis-shaped tensors."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                    for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape))
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" (+{len(items) - 10} more)" if len(items) > 10 else ""
            problems.append(f"{len(items)} {label}: {items[:10]}{more}")
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))


def _official_config(directory: Path, cfg: dict[str, Any], llm_config: str | os.PathLike | None) -> ShowoConfig:
    if cfg.get("w_clip_vit"):
        raise CheckpointError(f"{directory}: CLIP-ViT variants (w_clip_vit=true) are not supported yet")
    try:
        text_vocab = int(cfg["llm_vocab_size"])
        codebook = int(cfg.get("codebook_size", 8192))
        vocab = int(cfg["vocab_size"])
        n = int(cfg.get("num_vq_tokens", 256))
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{directory / 'config.json'}: missing or bad key {exc}") from exc
    phi_dir = Path(llm_config) if llm_config is not None else Path(str(cfg.get("llm_model_path", "")))
    fields: dict[str, Any] = {}
    bos = 50256  # phi-1.5's <|endoftext|>
    if (phi_dir / "config.json").is_file():
        phi = _read_json(phi_dir / "config.json")
        fields = {ours: phi[theirs] for theirs, ours in _PHI_KEYS.items() if theirs in phi}
        bos = int(phi.get("bos_token_id", bos))
        if not phi.get("qk_layernorm", True):
            raise CheckpointError(f"{phi_dir / 'config.json'}: Show-o needs qk_layernorm=true")
    elif llm_config is not None:
        raise CheckpointError(f"--llm-config {phi_dir}: no config.json there (pass phi-1.5's directory)")
    else:
        warnings.warn(f"phi config {phi_dir} not found locally: assuming phi-1.5 sizes (pass llm_config to override)",
                      stacklevel=3)
    grid = int(round(n ** 0.5))
    if grid * grid != n:
        raise CheckpointError(f"num_vq_tokens {n} is not a square grid")
    try:
        layout = TokenLayout(text_vocab_size=text_vocab, codebook_size=codebook, bos_id=bos)
        transformer = TransformerConfig(vocab_size=vocab, **fields)
    except ConfigError as exc:
        raise CheckpointError(f"{directory}: {exc}") from exc
    if layout.vocab_size != vocab:
        raise CheckpointError(
            f"{directory / 'config.json'}: vocab_size {vocab} != llm_vocab_size {text_vocab} + 10 special + "
            f"codebook {codebook} + [MASK] = {layout.vocab_size}")
    if "mask_token_id" in cfg and int(cfg["mask_token_id"]) != layout.mask_id:
        raise CheckpointError(f"mask_token_id {cfg['mask_token_id']} != vocab_size - 1 = {layout.mask_id}")
    return ShowoConfig(layout=layout, transformer=transformer, image_grid=(grid, grid))


def read_config(path: str | os.PathLike, llm_config: str | os.PathLike | None = None) -> tuple[ShowoConfig, str]:
    """The ShowoConfig of a checkpoint directory and its layout name ("official" or "showo-sdk")."""
    directory = Path(path)
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint directory {directory} does not exist")
    cfg_path = directory / "config.json"
    cfg = _read_json(cfg_path)
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{cfg_path}: expected a JSON object, got {type(cfg).__name__}")
    if cfg.get("format") == FORMAT:
        version = cfg.get("version", 0)
        if isinstance(version, float) and version.is_integer():
            version = int(version)
        if isinstance(version, bool) or not isinstance(version, int):
            raise CheckpointError(f"{cfg_path}: 'version' must be an integer, got {version!r:.80}")
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{directory}: checkpoint format version {version} is newer than this SDK reads "
                f"({FORMAT_VERSION}); upgrade showo-sdk")
        model = cfg.get("model")
        if not isinstance(model, dict):
            raise CheckpointError(f"{cfg_path}: missing or invalid 'model' section (expected an object)")
        try:
            return ShowoConfig.from_dict(model), FORMAT
        except CheckpointError:
            raise
        except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{cfg_path}: invalid 'model' section: {type(exc).__name__}: {exc}") from exc
    if cfg.get("_class_name") == "Showo":
        return _official_config(directory, cfg, llm_config), "official"
    raise CheckpointError(
        f"{directory / 'config.json'} is neither an official Show-o config (_class_name 'Showo') nor a "
        f"showo-sdk checkpoint (format '{FORMAT}')")


def load_showo(path: str | os.PathLike, llm_config: str | os.PathLike | None = None,
               device: str | torch.device = "cpu") -> ShowoTransformer:
    """Load a Show-o transformer (official layout or ours) in eval mode, fp32.

    The returned module carries ``showo_config`` (ShowoConfig) and ``checkpoint_layout``.
    """
    directory = Path(path)
    config, layout_name = read_config(directory, llm_config)
    state = read_state_dict(directory)
    with torch.device("meta"):
        model = ShowoTransformer(config.transformer)
    check_state_dict(model, state, directory)
    model.load_state_dict({k: v.float() for k, v in state.items()}, assign=True)
    model.showo_config = config
    model.checkpoint_layout = layout_name
    return model.to(device).eval()


def save_pretrained(model: ShowoTransformer, path: str | os.PathLike, config: ShowoConfig,
                    tokenizer=None, vq=None, overwrite: bool = True,
                    extra: Callable[[Path], None] | None = None) -> None:
    """Write our format atomically (the directory appears complete or not at all), with the VQ in ``vq/``.

    ``extra(tmp_dir)`` may add files (e.g. optimizer state) inside the same atomic write.
    """
    from safetensors.torch import save_file

    if config.transformer != model.config:
        raise CheckpointError("config.transformer does not match the model's TransformerConfig")
    with atomic_dir(path, overwrite=overwrite) as tmp:
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))
        meta = {"format": FORMAT, "version": FORMAT_VERSION, "model": config.to_dict()}
        (tmp / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if tokenizer is not None:
            tokenizer.save(tmp / "tokenizer.json")
        if vq is not None:
            from .magvit_io import save_pretrained as save_vq

            save_vq(vq, tmp / "vq")
        if extra is not None:
            extra(tmp)
