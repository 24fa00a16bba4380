"""Sample sequences for tracing and validation, and the plain reference forward they are checked against.

Sequences follow SHOWO_SPEC.md §3 exactly (built by ``showo_sdk.prompting.Prompting``) with random
text and image ids, so every graph is compared with the reference model run over whole sequences
with the masks of ``showo_sdk.masks``.
"""

from __future__ import annotations

import numpy as np
import torch

from showo_sdk.config import ShowoConfig
from showo_sdk.masks import mmu_attention_mask, t2i_attention_mask
from showo_sdk.model.transformer import ShowoTransformer
from showo_sdk.prompting import Prompting


def t2i_sequences(config: ShowoConfig, rng: np.random.Generator, text_lens: list[int],
                  mask_fraction: float = 0.5) -> np.ndarray:
    """Full T2I sequences (B, L), one per text length (0 = the CFG null prompt), image part partly [MASK]."""
    lay = config.layout
    texts = [rng.integers(0, lay.text_vocab_size, size=n).tolist() for n in text_lens]
    codes = rng.integers(0, lay.codebook_size, size=(len(text_lens), config.num_image_tokens))
    codes[rng.random(codes.shape) < mask_fraction] = lay.codebook_size  # [MASK]
    return Prompting(config).t2i_ids(texts, codes)


def mmu_sequences(config: ShowoConfig, rng: np.random.Generator, batch: int, question_len: int) -> np.ndarray:
    """MMU prompts (B, N + 4 + question_len): [<|mmu|>, <|soi|>] + image + [<|eoi|>, <|sot|>] + question."""
    lay = config.layout
    codes = rng.integers(0, lay.codebook_size, size=(batch, config.num_image_tokens))
    question = rng.integers(0, lay.text_vocab_size, size=(batch, question_len))
    return Prompting(config).mmu_ids(codes, question)


@torch.no_grad()
def reference_forward(model: ShowoTransformer, ids: np.ndarray, mask: np.ndarray,
                      ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The reference model over whole sequences: (hidden (B, L, C), logits (B, L, V), presents (B, H, L, D))."""
    hidden, presents = model.hidden_states(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)[:, None])
    return hidden, model.lm_logits(hidden), presents


def t2i_reference(model: ShowoTransformer, config: ShowoConfig, ids: np.ndarray):
    """Reference over full T2I sequences with the official omni-attention mask."""
    return reference_forward(model, ids, t2i_attention_mask(ids, config.layout))


def mmu_reference(model: ShowoTransformer, config: ShowoConfig, ids: np.ndarray):
    """Reference over full MMU sequences with the MMU mask (bidirectional up to <|eoi|>, causal after)."""
    return reference_forward(model, ids, mmu_attention_mask(ids, config.layout))


def kv_arrays(presents: list[tuple[torch.Tensor, torch.Tensor]], prefix: str, columns: slice,
              dtype: type = np.float32) -> dict[str, np.ndarray]:
    """``{prefix}.{i}.key|value`` arrays from reference presents, columns ``columns`` of the sequence axis."""
    out = {}
    for i, (k, v) in enumerate(presents):
        out[f"{prefix}.{i}.key"] = np.ascontiguousarray(k[:, :, columns].numpy().astype(dtype))
        out[f"{prefix}.{i}.value"] = np.ascontiguousarray(v[:, :, columns].numpy().astype(dtype))
    return out
