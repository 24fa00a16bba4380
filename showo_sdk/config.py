"""Dataclass configs (token layout, transformer, VQ tokenizer, whole model) with JSON round-trip.

Every id the SDK uses is derived here from the layout of SHOWO_SPEC.md §1: text ids, then the
special ids, then the codebook, then ``[MASK]`` last. Nothing else hard-codes an offset.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")

#: Order of the special tokens appended after the text vocabulary (official Show-o order).
SPECIAL_TOKENS: tuple[str, ...] = (
    "[PAD]", "<|soi|>", "<|eoi|>", "<|sov|>", "<|eov|>",
    "<|t2i|>", "<|mmu|>", "<|t2v|>", "<|v2v|>", "<|lvg|>",
)
MASK_TOKEN = "[MASK]"


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys with a clear message."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown keys {unknown}; accepted keys are {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        if isinstance(value, list):
            value = tuple(value)
        sub = _NESTED.get((cls.__name__, key))
        if sub is not None:
            value = _from_dict(sub, value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from exc


class _JsonMixin:
    """to_dict / from_dict / save / load shared by every config dataclass."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        return _from_dict(cls, data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{cls.__name__}: invalid JSON ({exc})") from exc
        return _from_dict(cls, data)

    def save(self, path: str | os.PathLike) -> None:
        """Write the config as JSON atomically (temp file, then rename)."""
        from .utils.atomic import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls: type[T], path: str | os.PathLike) -> T:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigError(f"cannot read config {os.fspath(path)!r}: {exc}") from exc
        return cls.from_json(text)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TokenLayout(_JsonMixin):
    """The unified vocabulary: text ids, 10 special ids, the codebook, then ``[MASK]``."""

    text_vocab_size: int = 50295  # official `llm_vocab_size`
    codebook_size: int = 8192
    bos_id: int = 50256  # <|endoftext|>: bos = eos = <|sot|> = <|eot|>
    num_special: int = len(SPECIAL_TOKENS)

    def __post_init__(self) -> None:
        if self.num_special != len(SPECIAL_TOKENS):
            raise ConfigError(f"num_special must be {len(SPECIAL_TOKENS)}, got {self.num_special}")
        if self.text_vocab_size < 1 or self.codebook_size < 2:
            raise ConfigError(
                f"text_vocab_size must be >= 1 and codebook_size >= 2, got "
                f"{self.text_vocab_size} and {self.codebook_size}")
        if not 0 <= self.bos_id < self.text_vocab_size:
            raise ConfigError(f"bos_id {self.bos_id} must be a text id in [0, {self.text_vocab_size})")

    def special_id(self, token: str) -> int:
        """Unified id of a special token by name, e.g. ``special_id('<|t2i|>')``."""
        try:
            return self.text_vocab_size + SPECIAL_TOKENS.index(token)
        except ValueError:
            raise ConfigError(f"unknown special token {token!r}; known: {SPECIAL_TOKENS}") from None

    @property
    def eos_id(self) -> int:
        return self.bos_id

    @property
    def pad_id(self) -> int:
        return self.special_id("[PAD]")

    @property
    def soi_id(self) -> int:
        return self.special_id("<|soi|>")

    @property
    def eoi_id(self) -> int:
        return self.special_id("<|eoi|>")

    @property
    def t2i_id(self) -> int:
        return self.special_id("<|t2i|>")

    @property
    def mmu_id(self) -> int:
        return self.special_id("<|mmu|>")

    @property
    def codebook_offset(self) -> int:
        """Unified id of image code 0."""
        return self.text_vocab_size + self.num_special

    @property
    def mask_id(self) -> int:
        return self.codebook_offset + self.codebook_size

    @property
    def vocab_size(self) -> int:
        return self.mask_id + 1


@dataclass(frozen=True)
class TransformerConfig(_JsonMixin):
    """phi-1.5 backbone sizes (official defaults) plus QK-Norm."""

    vocab_size: int = 58498
    hidden_size: int = 2048
    num_layers: int = 24
    num_heads: int = 32
    intermediate_size: int = 8192
    partial_rotary_factor: float = 0.5
    rope_theta: float = 10000.0
    layer_norm_eps: float = 1e-5
    max_position_embeddings: int = 2048

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"TransformerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.rotary_dim % 2 or not 0 < self.rotary_dim <= self.head_dim:
            raise ConfigError(
                f"partial_rotary_factor {self.partial_rotary_factor} gives rotary_dim {self.rotary_dim}; "
                f"it must be even and in (0, head_dim={self.head_dim}]")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.partial_rotary_factor)


@dataclass(frozen=True)
class VQConfig(_JsonMixin):
    """MAGVIT-v2 tokenizer (taming-style conv encoder/decoder + LFQ); official showlab/magvitv2 defaults."""

    in_channels: int = 3
    out_channels: int = 3
    base_channels: int = 128
    encoder_ch_mult: tuple[int, ...] = (1, 2, 2, 4, 4)
    encoder_num_res_blocks: tuple[int, ...] = (4, 3, 4, 3, 4)
    decoder_ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    decoder_num_res_blocks: tuple[int, ...] = (4, 4, 3, 4, 3)
    codebook_bits: int = 13  # z_channels; codebook size = 2 ** codebook_bits
    resolution: int = 256
    norm_groups: int = 32  # GroupNorm groups (official 32); small models use fewer

    def __post_init__(self) -> None:
        if len(self.encoder_ch_mult) != len(self.encoder_num_res_blocks):
            raise ConfigError("encoder_ch_mult and encoder_num_res_blocks must have the same length")
        if len(self.decoder_ch_mult) != len(self.decoder_num_res_blocks):
            raise ConfigError("decoder_ch_mult and decoder_num_res_blocks must have the same length")
        if not 1 <= self.codebook_bits <= 24:
            raise ConfigError(f"codebook_bits must be in [1, 24], got {self.codebook_bits}")
        if self.resolution % self.downsample_factor:
            raise ConfigError(
                f"resolution {self.resolution} is not a multiple of the downsample factor "
                f"{self.downsample_factor}")
        widths = {self.base_channels * m for m in self.encoder_ch_mult + self.decoder_ch_mult}
        if self.norm_groups < 1 or any(w % self.norm_groups for w in widths):
            raise ConfigError(
                f"norm_groups {self.norm_groups} must be >= 1 and divide every block width "
                f"{sorted(widths)} (base_channels x ch_mult)")

    @property
    def codebook_size(self) -> int:
        return 2 ** self.codebook_bits

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.encoder_ch_mult) - 1)

    @property
    def grid(self) -> int:
        """Tokens per side at the configured resolution."""
        return self.resolution // self.downsample_factor


@dataclass(frozen=True)
class ShowoConfig(_JsonMixin):
    """A whole Show-o: layout, backbone, sequence sizes. Our checkpoint format's ``config.json``."""

    layout: TokenLayout = field(default_factory=TokenLayout)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    max_text_len: int = 128  # text tokens; the T2I text block is max_text_len + 1
    image_grid: tuple[int, int] = (16, 16)  # (h, w) tokens

    def __post_init__(self) -> None:
        if self.transformer.vocab_size != self.layout.vocab_size:
            raise ConfigError(
                f"transformer.vocab_size {self.transformer.vocab_size} != layout vocab size "
                f"{self.layout.vocab_size} (text {self.layout.text_vocab_size} + {self.layout.num_special} "
                f"special + codebook {self.layout.codebook_size} + [MASK])")
        if self.max_text_len < 3:
            raise ConfigError(f"max_text_len must be >= 3, got {self.max_text_len}")
        if len(self.image_grid) != 2 or min(self.image_grid) < 1:
            raise ConfigError(f"image_grid must be (h, w) with h, w >= 1, got {self.image_grid}")
        if self.t2i_seq_len > self.transformer.max_position_embeddings:
            raise ConfigError(
                f"T2I sequence length {self.t2i_seq_len} exceeds max_position_embeddings "
                f"{self.transformer.max_position_embeddings}")

    @property
    def num_image_tokens(self) -> int:
        """N: image tokens per image."""
        return self.image_grid[0] * self.image_grid[1]

    @property
    def text_block_len(self) -> int:
        """Length of the T2I text block (129 officially): [<|t2i|>, bos] + text + [eos], padded."""
        return self.max_text_len + 1

    @property
    def t2i_seq_len(self) -> int:
        """L = text block + <|soi|> + N + <|eoi|> (387 officially)."""
        return self.text_block_len + self.num_image_tokens + 2


_NESTED: dict[tuple[str, str], type] = {
    ("ShowoConfig", "layout"): TokenLayout,
    ("ShowoConfig", "transformer"): TransformerConfig,
}
