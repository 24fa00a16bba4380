"""A graph-friendly forward over the reference transformer's weights: boolean masks, read-only caches, fp16.

Same arithmetic as ``ShowoTransformer.hidden_states`` in fp32, with differences that matter for
deployment: masks are booleans applied with ``where`` and a finite negative (no int64-min, no
-inf); partial RoPE is ``x * cos + (x @ R) * sin`` over the whole head, with ``R`` the signed
permutation of rotate_half (one +-1 per column, so the product is exact) and cos = 1, sin = 0 on
the channels that pass through: the same values as slicing, negating and concatenating, in three
element-wise passes and a tiny matmul instead of seven copies; a past cache is either read, never
concatenated (scores over past and new columns are joined, then the probabilities split again:
a fixed-capacity cache is never copied, for one-token decode steps) or, with ``join_past``, joined
to the new keys/values (one score matrix, no score copies: for the T2I step, whose past is a few
text columns and whose new rows are the whole image segment); and in fp16 the LayerNorms and
softmax run in float32 while the matmuls run in half precision.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from showo_sdk.model.transformer import KV, ShowoTransformer, rotary_cos_sin

#: Added where attention is blocked: exp() underflows to exactly 0 in float32, and it never overflows.
MASK_VALUE = -1e9


def cast_model(model: ShowoTransformer, dtype: torch.dtype) -> ShowoTransformer:
    """``model`` in ``dtype`` (a copy unless it already is); LayerNorms stay float32 (fp16 ones overflow)."""
    if model.showo.model.embed_tokens.weight.dtype == dtype:
        return model
    out = copy.deepcopy(model).to(dtype)
    for m in out.modules():
        if isinstance(m, nn.LayerNorm):
            m.float()
    return out


def rotate_half_matrix(head_dim: int, rotary_dim: int) -> torch.Tensor:
    """(D, D) ``R`` with ``x @ R`` = rotate_half of the first ``rotary_dim`` channels, 0 on the others."""
    half = rotary_dim // 2
    r = torch.zeros(head_dim, head_dim)
    r[torch.arange(half, rotary_dim), torch.arange(half)] = -1.0  # out[:half] = -x[half:rot]
    r[torch.arange(half), torch.arange(half, rotary_dim)] = 1.0  # out[half:rot] = x[:half]
    return r


class GraphForward(nn.Module):
    """The transformer stack as export-friendly torch code; ``run`` returns final hidden states and new K/V.

    ``join_past``: attend over ``cat(past, new)`` keys/values (see the module docstring); only for
    graphs whose new rows attend to all new columns (``allowed`` None).
    """

    def __init__(self, model: ShowoTransformer, dtype: torch.dtype = torch.float32, join_past: bool = False):
        super().__init__()
        self.model = cast_model(model, dtype)
        self.dtype = dtype
        self.cfg = model.config
        self.join_past = join_past
        self.register_buffer("rotate", rotate_half_matrix(self.cfg.head_dim, self.cfg.rotary_dim).to(dtype))

    def _ln(self, ln: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32:
            return ln(x)
        return ln(x.float()).to(x.dtype)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Partial RoPE over (B, H, L, D) with whole-head tables (cos 1, sin 0 past the rotary channels)."""
        return x * cos + torch.matmul(x, self.rotate) * sin

    def _attention(self, layer: nn.Module, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                   allowed: torch.Tensor | None, past: KV | None, past_allowed: torch.Tensor | None,
                   ) -> tuple[torch.Tensor, KV]:
        a = layer.self_attn
        q = self._rope(self._ln(a.q_layernorm, a._heads(a.q_proj(h))), cos, sin)  # (B, H, L, D)
        k = self._rope(self._ln(a.k_layernorm, a._heads(a.k_proj(h))), cos, sin)
        v = a._heads(a.v_proj(h))
        scale = math.sqrt(a.head_dim)
        if past is not None and self.join_past:  # past_allowed: the joined additive (B, 1, 1, P+L) bias
            keys, values = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)  # (B, H, P+L, D)
            scores = (torch.matmul(q, keys.transpose(2, 3)) / scale).float()  # (B, H, L, P+L)
            if past_allowed is not None:
                scores = scores + past_allowed  # + 0 (exact) or MASK_VALUE: a broadcast Add, cheaper than Where
            out = torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), values)  # (B, H, L, D)
            b, _, length, _ = out.shape
            return a.dense(out.transpose(1, 2).reshape(b, length, -1)), (k, v)
        scores = (torch.matmul(q, k.transpose(2, 3)) / scale).float()  # (B, H, L, L)
        if allowed is not None:
            scores = torch.where(allowed, scores, MASK_VALUE)
        if past is None:
            out = torch.matmul(torch.softmax(scores, dim=-1).to(v.dtype), v)  # (B, H, L, D)
        else:
            past_k, past_v = past  # (B, H, P, D)
            past_scores = (torch.matmul(q, past_k.transpose(2, 3)) / scale).float()  # (B, H, L, P)
            if past_allowed is not None:
                past_scores = torch.where(past_allowed, past_scores, MASK_VALUE)
            probs = torch.softmax(torch.cat((past_scores, scores), dim=-1), dim=-1)  # (B, H, L, P+L)
            p = past_k.shape[2]
            out = (torch.matmul(probs[..., :p].to(v.dtype), past_v)
                   + torch.matmul(probs[..., p:].to(v.dtype), v))  # (B, H, L, D)
        b, _, length, _ = out.shape
        return a.dense(out.transpose(1, 2).reshape(b, length, -1)), (k, v)

    def run(self, input_ids: torch.Tensor, position_ids: torch.Tensor, allowed: torch.Tensor | None = None,
            past: list[KV] | None = None, past_allowed: torch.Tensor | None = None,
            ) -> tuple[torch.Tensor, list[KV]]:
        """Hidden states after the final LayerNorm (B, L, C) and each layer's new (key, value) (B, H, L, D).

        ``allowed``: bool (B|1, 1, L, L) over the new rows and columns (None = all); ``past``: per-layer
        read-only caches (B, H, P, D) with ``past_allowed`` bool (B|1, 1, 1|L, P) (None = all).
        """
        x = self.model.showo.model.embed_tokens(input_ids)  # (B, L, C)
        cos, sin = rotary_cos_sin(position_ids, self.cfg.rotary_dim, self.cfg.rope_theta)  # (B, 1, L, R)
        rest = self.cfg.head_dim - self.cfg.rotary_dim
        cos = torch.cat((cos, torch.ones_like(cos[..., :1]).expand(*cos.shape[:-1], rest)), dim=-1).to(x.dtype)
        sin = torch.cat((sin, torch.zeros_like(sin[..., :1]).expand(*sin.shape[:-1], rest)), dim=-1).to(x.dtype)
        if past is not None and self.join_past:
            if allowed is not None:
                raise ValueError("join_past needs new rows that attend to every new column (allowed=None)")
            if past_allowed is not None:  # (B, 1, 1, P) -> additive (B, 1, 1, P+L): every new column allowed
                new = torch.ones_like(past_allowed[..., :1]).expand(*past_allowed.shape[:-1], input_ids.shape[1])
                joined = torch.cat((past_allowed, new), dim=-1)
                past_allowed = torch.where(joined, 0.0, MASK_VALUE).to(torch.float32)
        presents: list[KV] = []
        for i, layer in enumerate(self.model.layers):
            h = self._ln(layer.input_layernorm, x)
            attn, present = self._attention(layer, h, cos, sin, allowed, None if past is None else past[i], past_allowed)
            x = x + attn + layer.mlp(h)
            presents.append(present)
        return self._ln(self.model.showo.model.final_layernorm, x), presents

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Full-vocabulary logits, float32."""
        return self.model.showo.lm_head(hidden).float()


class CodebookHead(nn.Module):
    """The lm_head rows of the K codebook ids only: the graph stores and multiplies K rows, not V."""

    def __init__(self, model: ShowoTransformer, offset: int, size: int, dtype: torch.dtype):
        super().__init__()
        head = model.showo.lm_head
        self.register_buffer("weight", head.weight[offset:offset + size].detach().to(dtype).clone())  # (K, C)
        self.register_buffer("bias", head.bias[offset:offset + size].detach().to(dtype).clone())  # (K,)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self.weight, self.bias).float()


def flat_kv(presents: list[KV]) -> tuple[torch.Tensor, ...]:
    """[(k0, v0), (k1, v1), ...] -> (k0, v0, k1, v1, ...), the order of ``present.{i}.key|value``."""
    return tuple(t for kv in presents for t in kv)


def pair_kv(flat: tuple[torch.Tensor, ...]) -> list[KV]:
    """(k0, v0, k1, v1, ...) -> [(k0, v0), (k1, v1), ...]."""
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
