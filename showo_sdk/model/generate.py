"""Reference decoding in torch, faithful to the official ``t2i_generate`` / ``mmu_generate``.

T2I runs in two modes: ``"official"`` recomputes the whole sequence every step (as upstream), and
``"cached"`` computes the text-prefix keys/values once and runs only the N+2 image-segment rows
per step (SHOWO_SPEC.md §4: the text rows never see the image, so this is exact).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..config import ShowoConfig, TokenLayout
from ..errors import InputError
from ..masks import mmu_attention_mask, t2i_attention_mask
from .transformer import KV, ShowoTransformer

Schedule = Callable[[torch.Tensor], torch.Tensor]


def torch_schedule(name: str) -> Schedule:
    """The official mask-ratio schedules, evaluated on a float32 0-d tensor as upstream does."""
    if name == "cosine":
        return lambda t: torch.cos(t * math.pi * 0.5)
    if name == "linear":
        return lambda t: (1 - t).clamp(min=1e-6, max=1.0)
    if name.startswith("pow"):
        exponent = float(name[3:])
        return lambda t: (1.0 - t ** exponent).clamp(min=1e-6, max=1.0)
    if name == "sigmoid":
        def sigmoid(t, start=-3, end=3, tau=1.0):
            v_start = torch.sigmoid(torch.tensor(start / tau))
            v_end = torch.sigmoid(torch.tensor(end / tau))
            out = torch.sigmoid((t * (end - start) + start) / tau)
            return torch.clip((v_end - out) / (v_end - v_start), 1e-6, 1.0)
        return sigmoid
    raise InputError(f"unknown schedule {name!r}; use cosine, linear, pow<K> or sigmoid")


def _gumbel(shape, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    u = torch.zeros(shape, device=device).uniform_(0, 1, generator=generator)
    return -torch.log((-torch.log(u.clamp(min=1e-20))).clamp(min=1e-20))


def maskgit_loop(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    canvas: torch.Tensor,
    num_codes: int,
    steps: int,
    temperature: float = 1.0,
    schedule: str = "cosine",
    generator: torch.Generator | None = None,
    greedy: bool = False,
) -> torch.Tensor:
    """The official re-masking loop over codebook-space canvases (K = MASK). Returns the last samples.

    ``logits_fn(canvas)`` returns the CFG-mixed codebook logits (B, N, K) for the current canvas.
    Runs on ``canvas``'s device; a ``generator`` must live on that device too (torch's rule).
    """
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    ratio_fn = torch_schedule(schedule)
    canvas = canvas.clone()
    n = canvas.shape[1]
    sampled = canvas
    for step in range(steps):
        logits = logits_fn(canvas)  # (B, N, K)
        probs = logits.softmax(dim=-1)
        if greedy:
            sampled = probs.argmax(dim=-1)
        else:
            sampled = torch.multinomial(probs.reshape(-1, num_codes), 1, generator=generator)[:, 0].view(canvas.shape)
        unknown = canvas == num_codes
        sampled = torch.where(unknown, sampled, canvas)
        ratio = 1.0 * (step + 1) / steps
        mask_ratio = ratio_fn(torch.tensor(ratio))
        selected = torch.gather(probs, -1, sampled[..., None]).squeeze(-1)
        selected = torch.where(unknown, selected, torch.finfo(selected.dtype).max)
        mask_len = (n * mask_ratio).floor().unsqueeze(0).to(canvas.device)  # float32 on the host, as upstream
        one = torch.ones(1, dtype=torch.int64, device=canvas.device)
        mask_len = torch.max(one, torch.min(unknown.sum(dim=-1, keepdim=True) - 1, mask_len))
        temperature = temperature * (1.0 - ratio)
        confidence = torch.log(selected.clamp(min=1e-20))
        if not greedy:
            confidence = confidence + temperature * _gumbel(selected.shape, generator, canvas.device)
        cut_off = torch.gather(torch.sort(confidence, dim=-1).values, 1, mask_len.long())
        canvas = torch.where(confidence < cut_off, num_codes, sampled)
    return sampled


def _split_t2i(config: ShowoConfig, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    t, n = config.text_block_len, config.num_image_tokens
    if ids.dim() != 2 or ids.shape[1] != config.t2i_seq_len:
        raise InputError(f"T2I ids must be (B, {config.t2i_seq_len}), got {tuple(ids.shape)}")
    return ids[:, :t], ids[:, t + 1: t + 1 + n]


def _bool_mask(ids: torch.Tensor, config: ShowoConfig) -> torch.Tensor:
    """The T2I omni-attention mask (B, 1, L, L), built on the host and placed on ``ids``'s device."""
    return torch.from_numpy(t2i_attention_mask(ids.cpu().numpy(), config.layout))[:, None].to(ids.device)


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s weights live: the decoders move their inputs there and create tensors there."""
    return next(model.parameters()).device


@torch.no_grad()
def t2i_generate(
    model: ShowoTransformer,
    config: ShowoConfig,
    cond_ids: torch.Tensor,
    uncond_ids: torch.Tensor | None = None,
    steps: int = 18,
    guidance_scale: float = 0.0,
    temperature: float = 1.0,
    schedule: str = "cosine",
    generator: torch.Generator | None = None,
    greedy: bool = False,
    mode: str = "cached",
) -> torch.Tensor:
    """Generate image codes (B, N) in codebook space from full T2I sequences (SHOWO_SPEC.md §3, §5).

    Runs on the model's device (ids are moved there; the codes are returned there); a sampling
    ``generator`` must be on that device.
    """
    if mode not in ("cached", "official"):
        raise InputError(f"mode must be 'cached' or 'official', got {mode!r}")
    if guidance_scale < 0:
        raise InputError(f"guidance_scale must be >= 0, got {guidance_scale}")
    use_cfg = guidance_scale > 0
    if use_cfg and uncond_ids is None:
        raise InputError("guidance_scale > 0 needs uncond_ids (the null prompt)")
    lay, k = config.layout, config.layout.codebook_size
    t = config.text_block_len
    device = model_device(model)
    cond_text, image = _split_t2i(config, cond_ids.to(device))
    texts = torch.cat([cond_text, _split_t2i(config, uncond_ids.to(device))[0]]) if use_cfg else cond_text
    canvas = image - lay.codebook_offset  # MASK -> K
    b = canvas.shape[0]
    code_slice = slice(lay.codebook_offset, lay.codebook_offset + k)

    def mix(logits: torch.Tensor) -> torch.Tensor:
        if not use_cfg:
            return logits
        cond, uncond = logits.chunk(2)
        return (1 + guidance_scale) * cond - guidance_scale * uncond

    def full_ids(cv: torch.Tensor) -> torch.Tensor:
        seg = torch.cat([torch.full((b, 1), lay.soi_id, device=device), cv + lay.codebook_offset,
                         torch.full((b, 1), lay.eoi_id, device=device)], 1)
        seg = seg.repeat(2, 1) if use_cfg else seg
        return torch.cat([texts, seg], dim=1), seg

    if mode == "official":
        mask = _bool_mask(full_ids(canvas)[0], config)  # the structure is fixed across steps

        def logits_fn(cv: torch.Tensor) -> torch.Tensor:
            logits = model(full_ids(cv)[0], attention_mask=mask)  # (B', L, V)
            return mix(logits)[:, -(config.num_image_tokens + 1):-1, code_slice]
    else:
        ids0, _ = full_ids(canvas)
        mask = _bool_mask(ids0, config)
        _, past = model.hidden_states(texts, attention_mask=mask[:, :, :t, :t])
        seg_mask = mask[:, :, t:, :]  # (B', 1, N+2, L)
        positions = torch.arange(t, config.t2i_seq_len, device=device).expand(texts.shape[0], -1)

        def logits_fn(cv: torch.Tensor) -> torch.Tensor:
            hidden, _ = model.hidden_states(full_ids(cv)[1], seg_mask, positions, past)
            return mix(model.lm_logits(hidden[:, 1:-1], vocab=code_slice))

    return maskgit_loop(logits_fn, canvas, k, steps, temperature, schedule, generator, greedy)


def _next_token(logits: torch.Tensor, greedy: bool, top_k: int | None, temperature: float,
                generator: torch.Generator | None) -> torch.Tensor:
    """(B, V) last-position logits -> (B,) next ids, as upstream: temperature, top-k, multinomial."""
    if greedy:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        logits = logits.masked_fill(logits < v[:, [-1]], -float("inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)[:, 0]


@torch.no_grad()
def mmu_generate(
    model: ShowoTransformer,
    config: ShowoConfig,
    prompt_ids: torch.Tensor,
    max_new_tokens: int = 100,
    eot_id: int | None = None,
    greedy: bool = True,
    top_k: int | None = None,
    temperature: float = 1.0,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Answer tokens per row for MMU prompts (B, L); rows stop at ``eot_id`` (kept) or ``max_new_tokens``.

    ``use_cache=False`` recomputes the whole sequence per token, as the official code does.
    Runs on the model's device; a sampling ``generator`` must be on that device.
    """
    if max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not greedy and temperature <= 0:
        raise InputError(f"temperature must be > 0 when sampling, got {temperature}")
    lay = config.layout
    eot = lay.eos_id if eot_id is None else eot_id
    device = model_device(model)
    ids = prompt_ids.to(device, copy=True)
    b, length = ids.shape
    out: list[list[int]] = [[] for _ in range(b)]
    done = [False] * b
    past: list[KV] | None = None
    for i in range(max_new_tokens):
        if not use_cache:
            logits = model(ids, attention_mask=_mmu_mask(ids, lay))[:, -1]
        elif past is None:
            logits, past = model(ids, attention_mask=_mmu_mask(ids, lay), use_cache=True)
            logits = logits[:, -1]
        else:
            pos = torch.full((b, 1), length + i - 1, device=device)
            logits, past = model(ids[:, -1:], position_ids=pos, past_key_values=past, use_cache=True)
            logits = logits[:, -1]
        nxt = _next_token(logits, greedy, top_k, temperature, generator)
        for row, token in enumerate(nxt.tolist()):  # one device-to-host copy per token
            if not done[row]:
                out[row].append(token)
                done[row] = token == eot
        if all(done):
            break
        ids = torch.cat([ids, nxt[:, None]], dim=1)
    return out


def _mmu_mask(ids: torch.Tensor, layout: TokenLayout) -> torch.Tensor:
    """The MMU omni-attention mask (B, 1, L, L), built on the host and placed on ``ids``'s device."""
    return torch.from_numpy(mmu_attention_mask(ids.cpu().numpy(), layout))[:, None].to(ids.device)


def as_tensor(ids: np.ndarray | torch.Tensor) -> torch.Tensor:
    """int64 tensor view of ids given as numpy or torch."""
    return ids if isinstance(ids, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
