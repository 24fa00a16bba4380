"""Sequence layouts of SHOWO_SPEC.md §3 (T2I, CFG null prompt, MMU, captioning, LM), in numpy.

Text arrives as lists of text ids (already tokenized); a ``TextTokenizer`` is optional and only
used by the string conveniences. Image parts arrive in codebook space (0..K-1, K = [MASK]).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .config import ShowoConfig
from .errors import InputError

if TYPE_CHECKING:
    from .tokenizer import TextTokenizer

IGNORE_INDEX = -100
MMU_TEMPLATE = "USER: \n{question} ASSISTANT:"


def _check_ids(ids: Sequence[int], what: str, limit: int) -> list[int]:
    out = [int(t) for t in ids]
    bad = [t for t in out if not 0 <= t < limit]
    if bad:
        raise InputError(f"{what}: ids {bad[:5]} are outside the text vocabulary [0, {limit})")
    return out


class Prompting:
    """Builds the model's input id sequences for one ``ShowoConfig``."""

    def __init__(self, config: ShowoConfig, tokenizer: TextTokenizer | None = None):
        self.config = config
        self.layout = config.layout
        self.tokenizer = tokenizer

    # ---- image parts -------------------------------------------------------------------------
    def image_ids(self, codes: np.ndarray) -> np.ndarray:
        """Codebook-space codes (B, N) with K as [MASK] -> unified ids (B, N)."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
            raise InputError(f"image codes must be an integer array (B, N), got {codes.dtype} {codes.shape}")
        k = self.layout.codebook_size
        if codes.size and (codes.min() < 0 or codes.max() > k):
            raise InputError(f"image codes must lie in [0, {k}] ({k} = [MASK]), got [{codes.min()}, {codes.max()}]")
        return codes.astype(np.int64) + self.layout.codebook_offset

    def codes_from_ids(self, ids: np.ndarray) -> np.ndarray:
        """Unified image ids -> codebook space (MASK -> K)."""
        return np.asarray(ids, dtype=np.int64) - self.layout.codebook_offset

    # ---- T2I ---------------------------------------------------------------------------------
    def t2i_text_block(self, text_ids: Sequence[int]) -> list[int]:
        """``[<|t2i|>, bos] + text + [eos]``, left-padded with [PAD] to the text block, or truncated."""
        lay = self.layout
        text = _check_ids(text_ids, "prompt", lay.text_vocab_size)
        if not text or text[0] != lay.bos_id:
            text = [lay.bos_id] + text
        temp = [lay.t2i_id] + text + [lay.eos_id]
        block = self.config.text_block_len
        if len(temp) <= block:
            return [lay.pad_id] * (block - len(temp)) + temp
        return temp[: block - 1] + [lay.eos_id]

    def t2i_block_start(self, blocks: np.ndarray) -> int:
        """First column of the text blocks (B, T) that any row needs: the columns before it are [PAD] in every row.

        No row but a PAD row ever attends to a PAD column (SHOWO_SPEC.md §4), so the keys/values of
        those leading PAD columns are never read: a prefix over ``blocks[:, start:]`` (positions
        ``start..T-1``) gives the other rows exactly the same keys/values. At least one column is kept.
        """
        real = blocks != self.layout.pad_id  # (B, T)
        firsts = np.where(real.any(axis=1), real.argmax(axis=1), blocks.shape[1] - 1)
        return int(firsts.min()) if blocks.shape[0] else 0

    def t2i_ids(self, text_ids: Sequence[Sequence[int]], image_codes: np.ndarray | None = None) -> np.ndarray:
        """Full T2I sequences (B, L): text block, <|soi|>, image part, <|eoi|>. All-[MASK] image if None."""
        if isinstance(text_ids, np.ndarray) and text_ids.ndim == 1:
            text_ids = [text_ids]
        b = len(text_ids)
        if b == 0:
            raise InputError("need at least one prompt")
        n = self.config.num_image_tokens
        if image_codes is None:
            image_codes = np.full((b, n), self.layout.codebook_size, dtype=np.int64)
        image = self.image_ids(image_codes)
        if image.shape != (b, n):
            raise InputError(f"image codes must have shape ({b}, {n}), got {image.shape}")
        blocks = np.array([self.t2i_text_block(t) for t in text_ids], dtype=np.int64)
        soi = np.full((b, 1), self.layout.soi_id, dtype=np.int64)
        eoi = np.full((b, 1), self.layout.eoi_id, dtype=np.int64)
        return np.concatenate([blocks, soi, image, eoi], axis=1)

    def t2i_null_ids(self, batch: int, image_codes: np.ndarray | None = None) -> np.ndarray:
        """The CFG null prompt: the T2I layout of the empty text (``[PAD]*126 + [<|t2i|>, bos, eos]``)."""
        return self.t2i_ids([[] for _ in range(batch)], image_codes)

    def t2i_train_labels(self, ids: np.ndarray, target_codes: np.ndarray) -> np.ndarray:
        """Labels for mask-token prediction: targets where the image part is [MASK], plus soi/eoi self-targets.

        Text-block labels are IGNORE (the official loss starts at <|soi|>).
        """
        labels = np.full_like(ids, IGNORE_INDEX)
        start = self.config.text_block_len
        n = self.config.num_image_tokens
        image = ids[:, start + 1: start + 1 + n]
        masked = image == self.layout.mask_id
        labels[:, start] = self.layout.soi_id
        labels[:, start + 1: start + 1 + n] = np.where(
            masked, np.asarray(target_codes, dtype=np.int64) + self.layout.codebook_offset, IGNORE_INDEX)
        labels[:, start + 1 + n] = self.layout.eoi_id
        return labels

    # ---- MMU ---------------------------------------------------------------------------------
    def mmu_ids(self, image_codes: np.ndarray, question_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Inference MMU prompt ``[<|mmu|>, <|soi|>] + image + [<|eoi|>, <|sot|>] + question_ids`` (B, L)."""
        image = self.image_ids(image_codes)
        b = image.shape[0]
        q = np.asarray(question_ids, dtype=np.int64)
        if q.ndim == 1:
            q = np.broadcast_to(q, (b, q.shape[0]))
        if q.ndim != 2 or q.shape[0] != b:
            raise InputError(f"question ids must be (Lq,) or ({b}, Lq), got shape {q.shape}")
        _check_ids(q.ravel().tolist(), "question", self.layout.text_vocab_size)
        lay = self.layout
        head = np.array([lay.mmu_id, lay.soi_id], dtype=np.int64)
        mid = np.array([lay.eoi_id, lay.bos_id], dtype=np.int64)
        return np.concatenate([np.broadcast_to(head, (b, 2)), image, np.broadcast_to(mid, (b, 2)), q], axis=1)

    def mmu_train_ids(self, image_codes: np.ndarray, text_ids: Sequence[Sequence[int]],
                      prompt_ids: Sequence[Sequence[int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Captioning / VQA training rows: image prefix + ``[bos] + prompt + text + [eos]``, right-padded.

        The text part is padded to max_text_len. Returns (ids, labels): labels are the text after
        <|eoi|> (PAD -> IGNORE); with ``prompt_ids`` (e.g. the VQA question template) only the answer
        and eos are labelled, so the model learns to answer, not to ask.
        """
        image = self.image_ids(image_codes)
        lay = self.layout
        width = self.config.max_text_len
        prompts = prompt_ids if prompt_ids is not None else [[] for _ in text_ids]
        if len(prompts) != len(text_ids) or len(text_ids) != image.shape[0]:
            raise InputError(f"need one text (and prompt) per image: {image.shape[0]} images, "
                             f"{len(text_ids)} texts, {len(prompts)} prompts")
        rows, label_rows = [], []
        for prompt, t in zip(prompts, text_ids):
            head = [lay.bos_id] + _check_ids(prompt, "prompt", lay.text_vocab_size)
            text = _check_ids(t, "text", lay.text_vocab_size)
            if prompt_ids is None and text and text[0] == lay.bos_id:
                text = text[1:]
            temp = head + text + [lay.eos_id]
            labels = ([IGNORE_INDEX] * len(head) if prompt_ids is not None else head) + text + [lay.eos_id]
            if len(temp) > width:
                temp, labels = temp[: width - 1] + [lay.eos_id], labels[: width - 1] + [lay.eos_id]
            pad = width - len(temp)
            rows.append(temp + [lay.pad_id] * pad)
            label_rows.append(labels + [IGNORE_INDEX] * pad)
        b = image.shape[0]
        head_ids = np.broadcast_to(np.array([lay.mmu_id, lay.soi_id], dtype=np.int64), (b, 2))
        eoi = np.full((b, 1), lay.eoi_id, dtype=np.int64)
        ids = np.concatenate([head_ids, image, eoi, np.array(rows, dtype=np.int64)], axis=1)
        labels = np.full_like(ids, IGNORE_INDEX)
        labels[:, ids.shape[1] - width:] = np.array(label_rows, dtype=np.int64)
        return ids, labels

    # ---- LM ----------------------------------------------------------------------------------
    def lm_ids(self, text_ids: Sequence[Sequence[int]], length: int) -> tuple[np.ndarray, np.ndarray]:
        """``[bos] + text + [eos]`` right-padded with [PAD] to ``length`` (truncated without eos if longer)."""
        lay = self.layout
        ids, labels = [], []
        for t in text_ids:
            text = _check_ids(t, "text", lay.text_vocab_size)
            if not text or text[0] != lay.bos_id:
                text = [lay.bos_id] + text
            temp = text + [lay.eos_id]
            if len(temp) <= length:
                pad = length - len(temp)
                ids.append(temp + [lay.pad_id] * pad)
                labels.append(temp + [IGNORE_INDEX] * pad)
            else:
                ids.append(temp[:length])
                labels.append(temp[:length])
        return np.array(ids, dtype=np.int64), np.array(labels, dtype=np.int64)

    # ---- string conveniences ------------------------------------------------------------------
    def _tok(self) -> TextTokenizer:
        if self.tokenizer is None:
            raise InputError("this Prompting has no tokenizer; pass one or use the *_ids methods")
        return self.tokenizer

    def t2i(self, prompts: Sequence[str], image_codes: np.ndarray | None = None) -> np.ndarray:
        return self.t2i_ids([self._tok().encode(p) for p in prompts], image_codes)

    def mmu_question_ids(self, question: str) -> list[int]:
        """Token ids of the official MMU template ``USER: \\n{question} ASSISTANT:``."""
        return self._tok().encode(MMU_TEMPLATE.format(question=question))
