import numpy as np
import torch

from showo_sdk.config import ShowoConfig
from showo_sdk.masks import mmu_attention_mask, t2i_attention_mask
from showo_sdk.model.transformer import ShowoTransformer, to_attention_bias
from showo_sdk.prompting import Prompting


def test_full_size_on_meta_matches_official_keys_and_count():
    with torch.device("meta"):
        model = ShowoTransformer(ShowoConfig().transformer)
    sd = model.state_dict()
    assert len(sd) == 437
    assert sum(p.numel() for p in model.parameters()) == 1_448_176_770
    for key in ("showo.model.embed_tokens.weight", "showo.model.layers.23.self_attn.q_layernorm.weight",
                "showo.model.layers.0.self_attn.dense.bias", "showo.model.layers.5.mlp.fc2.weight",
                "showo.model.layers.7.input_layernorm.bias", "showo.model.final_layernorm.weight",
                "showo.lm_head.bias"):
        assert key in sd
    assert tuple(sd["showo.model.layers.0.self_attn.k_layernorm.weight"].shape) == (64,)
    assert tuple(sd["showo.lm_head.weight"].shape) == (58498, 2048)


def _manual_forward(model: ShowoTransformer, ids: torch.Tensor, add_mask: torch.Tensor) -> torch.Tensor:
    """A second, loop-by-hand formulation (eager attention with additive mask, HF-phi style)."""
    cfg = model.config
    b, length = ids.shape
    x = model.showo.model.embed_tokens(ids)
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.rotary_dim, 2).float() / cfg.rotary_dim))
    freqs = torch.outer(torch.arange(length).float(), inv)
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos(), emb.sin()

    def rope(t):
        r, p = t[..., :cfg.rotary_dim], t[..., cfg.rotary_dim:]
        half = cfg.rotary_dim // 2
        rot = torch.cat([-r[..., half:], r[..., :half]], -1)
        return torch.cat([r * cos + rot * sin, p], -1)

    for layer in model.layers:
        h = layer.input_layernorm(x)
        att = layer.self_attn
        q, k, v = (m(h).view(b, length, cfg.num_heads, -1).transpose(1, 2) for m in (att.q_proj, att.k_proj, att.v_proj))
        q, k = rope(att.q_layernorm(q)), rope(att.k_layernorm(k))
        w = torch.softmax(q @ k.transpose(2, 3) / (cfg.head_dim ** 0.5) + add_mask, -1)
        o = att.dense((w @ v).transpose(1, 2).reshape(b, length, -1))
        x = x + o + layer.mlp.fc2(torch.nn.functional.gelu(layer.mlp.fc1(h), approximate="tanh"))
    return model.showo.lm_head(model.showo.model.final_layernorm(x))


def test_forward_matches_manual_with_official_additive_mask(tiny_model, tiny_cfg):
    p = Prompting(tiny_cfg)
    ids = p.t2i_ids([[5, 6], [7, 8, 9, 10]])
    mask = t2i_attention_mask(ids, tiny_cfg.layout)
    official = torch.where(torch.from_numpy(mask), 0.0, float(torch.iinfo(torch.int64).min))[:, None]
    with torch.no_grad():
        a = tiny_model(torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        b = tiny_model(torch.from_numpy(ids), attention_mask=official)
        c = _manual_forward(tiny_model, torch.from_numpy(ids), official)
    assert a.dtype == torch.float32 and a.shape == (2, tiny_cfg.t2i_seq_len, tiny_cfg.layout.vocab_size)
    assert (a - b).abs().max() < 1e-5
    assert (a - c).abs().max() < 1e-4


def test_kv_cache_equals_recompute(tiny_model, tiny_cfg):
    codes = np.random.default_rng(0).integers(0, tiny_cfg.layout.codebook_size, (2, tiny_cfg.num_image_tokens))
    ids = torch.from_numpy(Prompting(tiny_cfg).mmu_ids(codes, [3, 4, 5]))
    mask = torch.from_numpy(mmu_attention_mask(ids.numpy(), tiny_cfg.layout))
    with torch.no_grad():
        full = tiny_model(ids, attention_mask=mask)
        split = ids.shape[1] - 3
        _, past = tiny_model(ids[:, :split], attention_mask=mask[:, :split, :split], use_cache=True)
        tail = tiny_model(ids[:, split:], attention_mask=mask[:, split:, :], past_key_values=past)
    assert (full[:, split:] - tail).abs().max() < 1e-5


def test_bool_mask_bias_is_finite():
    bias = to_attention_bias(torch.tensor([[[True, False]]]), torch.float32)
    assert bias.shape == (1, 1, 1, 2) and torch.isfinite(bias).all() and bias[0, 0, 0, 1] < -1e30
