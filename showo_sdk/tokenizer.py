"""Text tokenizer: a ``tokenizers`` BPE (phi-1.5's tokenizer.json, or our own) plus Show-o's special tokens.

The special tokens ([PAD], <|soi|> ... <|lvg|>, then [MASK]) are appended in the official order
right after the text vocabulary, so their ids match ``TokenLayout``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .config import SPECIAL_TOKENS, TokenLayout
from .errors import ConfigError, InputError


class TextTokenizer:
    """Wraps ``tokenizers.Tokenizer``; ``encode`` gives text ids only (no bos/eos: prompting adds them)."""

    def __init__(self, tokenizer, bos_token: str = "<|endoftext|>"):
        from tokenizers import AddedToken

        self._tok = tokenizer
        bos = tokenizer.token_to_id(bos_token)
        if bos is None:
            raise ConfigError(f"tokenizer has no bos/eos token {bos_token!r}")
        self.bos_id = bos
        existing = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        if all(i is None for i in existing):
            self.text_vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
            tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
        elif None in existing:
            raise ConfigError("tokenizer has only some of Show-o's special tokens; expected all or none")
        else:
            self.text_vocab_size = existing[0]
        got = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        want = list(range(self.text_vocab_size, self.text_vocab_size + len(SPECIAL_TOKENS)))
        if got != want:
            raise ConfigError(f"special token ids {got} are not contiguous after the text vocabulary ({want})")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TextTokenizer:
        """Load a ``tokenizer.json`` (or a directory holding one)."""
        from tokenizers import Tokenizer

        p = Path(path)
        if p.is_dir():
            p = p / "tokenizer.json"
        if not p.is_file():
            raise ConfigError(f"no tokenizer file at {p}; pass a tokenizer.json or a directory holding one")
        try:
            return cls(Tokenizer.from_file(str(p)))
        except Exception as exc:  # tokenizers raises plain Exception subclasses
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"cannot read tokenizer {p}: {exc}") from exc

    @classmethod
    def train(cls, corpus: Iterable[str], vocab_size: int = 512) -> TextTokenizer:
        """Train a small byte-level BPE on ``corpus`` (for our own model); bos/eos is ``<|endoftext|>``."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(corpus, trainer)
        return cls(tok)

    def layout(self, codebook_size: int) -> TokenLayout:
        """The unified-vocabulary layout this tokenizer implies for a codebook of ``codebook_size``."""
        return TokenLayout(text_vocab_size=self.text_vocab_size, codebook_size=codebook_size, bos_id=self.bos_id)

    def check_layout(self, layout: TokenLayout) -> None:
        """Refuse a tokenizer whose vocabulary does not match a model's layout."""
        if (layout.text_vocab_size, layout.bos_id) != (self.text_vocab_size, self.bos_id):
            raise ConfigError(
                f"tokenizer has text vocabulary {self.text_vocab_size} (bos {self.bos_id}) but the model expects "
                f"{layout.text_vocab_size} (bos {layout.bos_id}); use the tokenizer the checkpoint was trained with")

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise InputError(f"text must be a str, got {type(text).__name__}")
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def save(self, path: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` atomically (with the special tokens included)."""
        from .utils.atomic import atomic_write_text

        atomic_write_text(path, self._tok.to_str())

    def to_str(self) -> str:
        return self._tok.to_str()

