"""The Show-o transformer: phi-1.5 with QK-Norm, partial RoPE and a parallel attention/MLP block.

Module names reproduce the official state-dict keys (``showo.model.layers.{i}.self_attn.q_proj``
...), so an official checkpoint loads with no renaming. Attention takes a boolean (True = may
attend) or an additive float mask, explicit ``position_ids`` and optional per-layer key/value
caches (keys stored after RoPE, as Hugging Face does).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import TransformerConfig

KV = tuple[torch.Tensor, torch.Tensor]  # (B, H, P, D) each


def rotary_cos_sin(position_ids: torch.Tensor, rotary_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (B, 1, L, rotary_dim) for NeoX-style partial RoPE, in float32 like upstream."""
    exponents = torch.arange(0, rotary_dim, 2, dtype=torch.int64, device=position_ids.device).float() / rotary_dim
    inv_freq = 1.0 / (theta ** exponents)  # (rotary_dim/2,)
    freqs = position_ids.to(torch.float32)[..., None] * inv_freq  # (B, L, rotary_dim/2)
    emb = torch.cat((freqs, freqs), dim=-1)[:, None]  # (B, 1, L, rotary_dim)
    return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_partial_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``rotary_dim`` channels of each head; the rest pass through. x: (B, H, L, D)."""
    rot = cos.shape[-1]
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    return torch.cat((x_rot * cos + _rotate_half(x_rot) * sin, x_pass), dim=-1)


def to_attention_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Boolean (True = attend) or additive float mask, (B,L,S) or (B,1,L,S) -> float (B,1,L,S) or None."""
    if mask is None:
        return None
    if mask.dim() == 3:
        mask = mask[:, None]
    if mask.dtype == torch.bool:
        # a finite large negative: exp() underflows to exactly 0, and no -inf can NaN a row
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    return mask.to(dtype)


class PhiAttention(nn.Module):
    """Multi-head attention with QK-Norm (LayerNorm over head dims, before RoPE) and partial RoPE."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        d, hd = cfg.hidden_size, cfg.head_dim
        self.num_heads, self.head_dim, self.rotary_dim = cfg.num_heads, hd, cfg.rotary_dim
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.dense = nn.Linear(d, d)
        self.q_layernorm = nn.LayerNorm(hd, eps=cfg.layer_norm_eps)
        self.k_layernorm = nn.LayerNorm(hd, eps=cfg.layer_norm_eps)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape
        return x.view(b, length, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, L, D)

    def forward(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, bias: torch.Tensor | None,
                past: KV | None = None) -> tuple[torch.Tensor, KV]:
        q = apply_partial_rope(self.q_layernorm(self._heads(self.q_proj(h))), cos, sin)
        k = apply_partial_rope(self.k_layernorm(self._heads(self.k_proj(h))), cos, sin)
        v = self._heads(self.v_proj(h))
        if past is not None:
            k = torch.cat((past[0], k), dim=2)  # (B, H, P+L, D)
            v = torch.cat((past[1], v), dim=2)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)  # (B, H, L, S)
        if bias is not None:
            scores = scores + bias
        out = torch.matmul(torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype), v)  # (B, H, L, D)
        b, _, length, _ = out.shape
        return self.dense(out.transpose(1, 2).reshape(b, length, -1)), (k, v)


class PhiMLP(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))  # gelu_new


class PhiDecoderLayer(nn.Module):
    """Parallel block: ``x + attn(LN(x)) + mlp(LN(x))`` with one shared input LayerNorm."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.self_attn = PhiAttention(cfg)
        self.mlp = PhiMLP(cfg)

    def forward(self, x, cos, sin, bias, past: KV | None = None) -> tuple[torch.Tensor, KV]:
        h = self.input_layernorm(x)
        attn, present = self.self_attn(h, cos, sin, bias, past)
        return x + attn + self.mlp(h), present


class PhiModel(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(PhiDecoderLayer(cfg) for _ in range(cfg.num_layers))
        self.final_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)


class PhiForCausalLM(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.model = PhiModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size)


class ShowoTransformer(nn.Module):
    """Show-o's transformer. ``model(input_ids, attention_mask=mask)`` -> logits (B, L, V) float32."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.config = cfg
        self.showo = PhiForCausalLM(cfg)

    @property
    def layers(self) -> nn.ModuleList:
        return self.showo.model.layers

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: list[KV] | tuple[KV, ...] | None = None,
    ) -> tuple[torch.Tensor, list[KV]]:
        """Final-LayerNorm hidden states (B, L, hidden) and the per-layer (key, value) presents.

        ``attention_mask`` is (B, L, P+L) or (B, 1, L, P+L) over past + current columns; ``None``
        means full attention. ``position_ids`` default to P..P+L-1 (P = past length).
        """
        b, length = input_ids.shape
        past_len = 0 if not past_key_values else past_key_values[0][0].shape[2]
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + length, device=input_ids.device).expand(b, length)
        x = self.showo.model.embed_tokens(input_ids)  # (B, L, hidden)
        cos, sin = rotary_cos_sin(position_ids, self.config.rotary_dim, self.config.rope_theta)
        bias = to_attention_bias(attention_mask, x.dtype)
        presents: list[KV] = []
        for i, layer in enumerate(self.layers):
            x, present = layer(x, cos, sin, bias, None if not past_key_values else past_key_values[i])
            presents.append(present)
        return self.showo.model.final_layernorm(x), presents

    def lm_logits(self, hidden: torch.Tensor, vocab: slice | None = None) -> torch.Tensor:
        """lm_head over all ids, or only over the rows in ``vocab`` (e.g. the codebook slice)."""
        head = self.showo.lm_head
        if vocab is None:
            return head(hidden).float()
        return F.linear(hidden, head.weight[vocab], head.bias[vocab]).float()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: list[KV] | tuple[KV, ...] | None = None,
        use_cache: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[KV]]:
        hidden, presents = self.hidden_states(input_ids, attention_mask, position_ids, past_key_values)
        logits = self.lm_logits(hidden)
        return (logits, presents) if use_cache else logits
