"""Argument checks shared by every Runtime method: each bad value raises InputError naming it and the accepted range.

Everything a caller passes is checked here, before any graph runs, so a bad argument never
surfaces as an ONNX Runtime or TensorRT error halfway through a generation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..canvas import DIRECTIONS
from ..config import ShowoConfig
from ..errors import InputError
from ..imageio import load_image
from ..sampling.schedule import mask_ratio_schedule

#: T2I steps: the official range is 16..50; far beyond a few hundred only burns time.
MAX_STEPS = 1000
#: guidance_scale and temperature: anything larger only overflows float32 logits.
MAX_SCALE = 1e6
MAX_SEED = 2**64 - 1
OUTPUTS = ("pil", "numpy", "codes")
#: Prompts per ``Runtime.generate`` call: larger batches must be split by the caller.
MAX_PROMPTS = 1024
_REPR_LIMIT = 80


def describe(value: Any) -> str:
    """A short one-line description of a bad value for an error message: arrays by dtype and shape."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__
        return f"a {type(value).__name__}"
    text = " ".join(text.split())
    return text if len(text) <= _REPR_LIMIT else f"{text[:_REPR_LIMIT - 3]}... ({type(value).__name__})"


def int_in(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise InputError(f"{name} must be an int in [{low}, {high}]; got {describe(value)}")
    return int(value)


def real_in(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a real number in [{low:g}, {high:g}]; got {describe(value)}")
    out = float(value)
    if not (math.isfinite(out) and low <= out <= high):
        raise InputError(f"{name} must be finite and in [{low:g}, {high:g}]; got {describe(value)}")
    return out


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def steps(value: Any) -> int:
    return int_in("steps", value, 1, MAX_STEPS)


def guidance_scale(value: Any) -> float:
    return real_in("guidance_scale", value, 0.0, MAX_SCALE)


def temperature(value: Any, sampling: bool = True) -> float:
    """T2I: >= 0 (0 = no Gumbel noise in the confidence); MMU sampling: > 0."""
    out = real_in("temperature", value, 0.0, MAX_SCALE)
    if sampling and out == 0.0:
        raise InputError("temperature must be > 0 when sampling (use greedy=True for argmax decoding); got 0")
    return out


def schedule(value: Any) -> str:
    if not isinstance(value, str):
        raise InputError(f"schedule must be a str ('cosine', 'linear', 'pow<K>', 'sigmoid'); got {value!r}")
    mask_ratio_schedule(1, value)  # raises InputError naming the accepted schedules
    return value


def seed(value: Any) -> int | None:
    if value is None:
        return None
    return int_in("seed", value, 0, MAX_SEED)


def output(value: Any) -> str:
    if value not in OUTPUTS:
        raise InputError(f"output must be one of {OUTPUTS}; got {value!r}")
    return value


def progress(value: Any) -> bool | Callable[[int, int], object]:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if value is None:
        return False
    if callable(value):
        return value
    raise InputError(f"progress must be True, False or a callable (step, steps); got {value!r}")


def num_threads(value: Any) -> int | None:
    if value is None:
        return None
    return int_in("num_threads", value, 1, 1024)


def max_new_tokens(value: Any, prompt_len: int, config: ShowoConfig) -> int:
    """At least 1, and the prompt plus the answer must fit the model's positions."""
    limit = config.transformer.max_position_embeddings - prompt_len + 1
    if limit < 1:
        raise InputError(f"the prompt is {prompt_len} tokens, longer than the model's "
                         f"{config.transformer.max_position_embeddings} positions; ask a shorter question")
    return int_in("max_new_tokens", value, 1, limit)


def top_k(value: Any) -> int | None:
    if value is None:
        return None
    return int_in("top_k", value, 1, 1 << 31)


def direction(value: Any) -> str:
    if value not in DIRECTIONS:
        raise InputError(f"direction must be one of {DIRECTIONS}; got {value!r}")
    return value


def offset(value: Any, config: ShowoConfig, side_of: str) -> int:
    """Extrapolation offset: the kept strip of ``side // 2 - offset`` tokens must be in [1, side - 1]."""
    h, w = config.image_grid
    side = w if side_of in ("left", "right") else h
    return int_in("offset", value, side // 2 - side + 1, side // 2 - 1)


def prompts(value: Any) -> tuple[list[str], bool]:
    """A str or a non-empty list of at most :data:`MAX_PROMPTS` str, none empty -> (prompts, was_a_list)."""
    if isinstance(value, str):
        items, batch = [value], False
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        if len(value) > MAX_PROMPTS:
            raise InputError(f"prompt list has {len(value)} prompts; at most {MAX_PROMPTS} per call (split larger "
                             f"batches into several calls)")
        items, batch = list(value), True
        if not items:
            raise InputError("prompt list is empty; pass a str or a list of at least one str")
    else:
        raise InputError(f"prompt must be a str or a list of str; got {type(value).__name__}")
    for i, p in enumerate(items):
        where = f"prompt[{i}]" if batch else "prompt"
        if not isinstance(p, str):
            raise InputError(f"{where} must be a str; got {type(p).__name__}")
        if not p.strip():
            raise InputError(f"{where} is empty; describe the image to generate (the empty prompt is the model's "
                             f"unconditional null prompt, used by guidance)")
    return items, batch


def question(value: Any) -> str:
    if not isinstance(value, str):
        raise InputError(f"question must be a str; got {type(value).__name__}")
    if not value.strip():
        raise InputError("question is empty; ask something about the image")
    return value


def image(value: Any, name: str = "image", mode: str = "RGB") -> Image.Image:
    """A path, PIL image or array (uint8 or float in [0, 1]; (H, W), (H, W, 1|3|4)) -> PIL image in ``mode``."""
    if isinstance(value, (str, os.PathLike)) and not str(value):
        raise InputError(f"{name}: the path is empty")
    try:
        return load_image(value, mode=mode)
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"{name}: more pixels than PIL allows (a decompression bomb?): {exc}") from None
    except (OSError, ValueError, TypeError) as exc:  # PIL cannot convert some modes (e.g. 'F' to 'RGB')
        raise InputError(f"{name}: cannot convert it to {mode}: {exc}") from None


def t2i_ids(value: Any, config: ShowoConfig, name: str) -> np.ndarray:
    """Full T2I sequences (B, L) as SHOWO_SPEC.md §3 lays them out, in unified ids."""
    lay, t, n = config.layout, config.text_block_len, config.num_image_tokens
    ids = np.asarray(value)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer) or ids.shape[1] != config.t2i_seq_len or not len(ids):
        raise InputError(f"{name} must be an integer array (B, {config.t2i_seq_len}) with B >= 1 (text block {t}, "
                         f"<|soi|>, {n} image ids, <|eoi|>); got {ids.dtype} {ids.shape}")
    ids = ids.astype(np.int64)
    text, image_part = ids[:, :t], ids[:, t + 1:t + 1 + n]
    if (ids[:, t] != lay.soi_id).any() or (ids[:, -1] != lay.eoi_id).any():
        raise InputError(f"{name}: column {t} must be <|soi|> ({lay.soi_id}) and the last column <|eoi|> "
                         f"({lay.eoi_id}) in every row")
    if text.min() < 0 or text.max() >= lay.codebook_offset:
        raise InputError(f"{name}: text-block ids must be text or special ids in [0, {lay.codebook_offset}); got "
                         f"[{text.min()}, {text.max()}]")
    if image_part.min() < lay.codebook_offset or image_part.max() > lay.mask_id:
        raise InputError(f"{name}: image ids must be codes in [{lay.codebook_offset}, {lay.mask_id - 1}] or [MASK] "
                         f"({lay.mask_id}); got [{image_part.min()}, {image_part.max()}]")
    return ids


def image_codes(value: Any, config: ShowoConfig) -> np.ndarray:
    """Codebook-space codes (B, N) in [0, K)."""
    codes = np.asarray(value)
    n, k = config.num_image_tokens, config.layout.codebook_size
    if codes.ndim == 1:
        codes = codes[None]
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer) or codes.shape[1] != n or not len(codes):
        raise InputError(f"image_codes must be an integer array (B, {n}) with B >= 1; got {codes.dtype} {codes.shape}")
    if codes.min() < 0 or codes.max() >= k:
        raise InputError(f"image_codes must lie in [0, {k - 1}]; got [{codes.min()}, {codes.max()}]")
    return codes.astype(np.int64)


def question_ids(value: Any, batch: int, config: ShowoConfig) -> np.ndarray:
    """Text ids (Lq,) or (B, Lq) -> (B, Lq) int64 in the text vocabulary."""
    q = np.asarray(value)
    if q.ndim == 1:
        q = np.broadcast_to(q, (batch, q.shape[0]))
    v = config.layout.text_vocab_size
    if q.ndim != 2 or q.shape[0] != batch or not np.issubdtype(q.dtype, np.integer):
        raise InputError(f"question_ids must be integer (Lq,) or ({batch}, Lq); got {q.dtype} {q.shape}")
    if q.size and (q.min() < 0 or q.max() >= v):
        raise InputError(f"question_ids must be text ids in [0, {v}); got [{q.min()}, {q.max()}]")
    return np.ascontiguousarray(q, dtype=np.int64)


def eot_id(value: Any, config: ShowoConfig) -> int:
    if value is None:
        return config.layout.eos_id
    return int_in("eot_id", value, 0, config.layout.vocab_size - 1)
