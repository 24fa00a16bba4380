"""Find and load what an export needs: transformer checkpoint, text tokenizer, VQ tokenizer, with clear errors.

A checkpoint is the official showlab layout (``--llm-config`` for phi-1.5's config, ``--tokenizer``
for its tokenizer.json) or ours (``tokenizer.json`` and ``vq/`` inside). Every problem raises a
CheckpointError or ConfigError naming the path and the flag that fixes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from showo_sdk.config import ShowoConfig
from showo_sdk.errors import CheckpointError, ConfigError
from showo_sdk.model.magvit import MagvitV2
from showo_sdk.model.magvit_io import load_magvit
from showo_sdk.model.showo_io import load_showo
from showo_sdk.model.transformer import ShowoTransformer
from showo_sdk.tokenizer import TextTokenizer

TOKENIZER_FILE = "tokenizer.json"
VQ_SUBDIR = "vq"


@dataclass
class Sources:
    """Loaded inputs of an export, with where each came from (recorded in the manifest)."""

    model: ShowoTransformer
    config: ShowoConfig
    vq: MagvitV2
    tokenizer: TextTokenizer
    checkpoint: Path
    checkpoint_layout: str
    tokenizer_path: Path
    vq_path: Path

    def describe(self) -> dict[str, str]:
        return {"checkpoint": str(self.checkpoint), "layout": self.checkpoint_layout,
                "tokenizer": str(self.tokenizer_path), "vq": str(self.vq_path)}


def _find_tokenizer(ckpt: Path, tokenizer: str | os.PathLike | None, llm_config: str | os.PathLike | None) -> Path:
    if tokenizer is not None:
        path = Path(tokenizer)
        path = path / TOKENIZER_FILE if path.is_dir() else path
        if not path.is_file():
            raise CheckpointError(f"--tokenizer {tokenizer}: no {TOKENIZER_FILE} there")
        return path
    for directory in (ckpt, Path(llm_config) if llm_config is not None else None):
        if directory is not None and (directory / TOKENIZER_FILE).is_file():
            return directory / TOKENIZER_FILE
    raise CheckpointError(
        f"no {TOKENIZER_FILE} in {ckpt}" + (f" or {llm_config}" if llm_config else "") +
        f": pass --tokenizer DIR (for an official checkpoint, phi-1.5's directory holding {TOKENIZER_FILE})")


def _find_vq(ckpt: Path, vq: str | os.PathLike | None) -> Path:
    if vq is not None:
        path = Path(vq)
        if not path.is_dir():
            raise CheckpointError(f"--vq {vq}: not a directory (pass the MAGVIT-v2 checkpoint directory)")
        return path
    if (ckpt / VQ_SUBDIR).is_dir():
        return ckpt / VQ_SUBDIR
    raise CheckpointError(
        f"no VQ tokenizer: {ckpt} has no {VQ_SUBDIR}/ directory; pass --vq DIR "
        f"(showlab/magvitv2 layout or ours)")


def load_sources(checkpoint: str | os.PathLike, llm_config: str | os.PathLike | None = None,
                 tokenizer: str | os.PathLike | None = None, vq: str | os.PathLike | None = None) -> Sources:
    """Load and cross-check the transformer, the text tokenizer and the VQ tokenizer of one export."""
    ckpt = Path(checkpoint)
    if not ckpt.is_dir():
        raise CheckpointError(f"checkpoint directory {ckpt} does not exist (or is not a directory)")
    tokenizer_path = _find_tokenizer(ckpt, tokenizer, llm_config)
    vq_path = _find_vq(ckpt, vq)
    model = load_showo(ckpt, llm_config=llm_config)
    config: ShowoConfig = model.showo_config
    text = TextTokenizer.from_file(tokenizer_path)
    try:
        text.check_layout(config.layout)
    except ConfigError as exc:
        raise ConfigError(f"{tokenizer_path} does not match {ckpt}: {exc}") from None
    magvit = load_magvit(vq_path)
    if magvit.config.codebook_size != config.layout.codebook_size:
        raise CheckpointError(
            f"VQ tokenizer {vq_path} has {magvit.config.codebook_size} codes but {ckpt} expects a codebook of "
            f"{config.layout.codebook_size}; pass the VQ the checkpoint was trained with (--vq DIR)")
    return Sources(model=model, config=config, vq=magvit, tokenizer=text, checkpoint=ckpt,
                   checkpoint_layout=getattr(model, "checkpoint_layout", "unknown"), tokenizer_path=tokenizer_path,
                   vq_path=vq_path)
