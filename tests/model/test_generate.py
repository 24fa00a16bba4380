import numpy as np
import pytest
import torch

from showo_sdk.masks import t2i_attention_mask
from showo_sdk.model.generate import maskgit_loop, mmu_generate, t2i_generate, torch_schedule
from showo_sdk.prompting import Prompting

TABLE_16 = [254, 251, 244, 236, 225, 212, 197, 181, 162, 142, 120, 97, 74, 49, 25, -1]
TABLE_18 = [255, 252, 247, 240, 232, 221, 209, 196, 181, 164, 146, 127, 108, 87, 66, 44, 22, -1]


@pytest.mark.parametrize("steps,table", [(16, TABLE_16), (18, TABLE_18)])
def test_torch_cosine_schedule_matches_spec(steps, table):
    f = torch_schedule("cosine")
    got = [int((256 * f(torch.tensor((s + 1) / steps))).floor()) for s in range(steps)]
    assert got == table


def _prompts(cfg, batch=2, codes=None):
    p = Prompting(cfg)
    texts = [[5, 6, 7], [9]][:batch] + [[11, 12]] * max(0, batch - 2)
    return torch.from_numpy(p.t2i_ids(texts, codes)), torch.from_numpy(p.t2i_null_ids(batch, codes))


def test_cached_step_logits_equal_full_recompute(tiny_model, tiny_cfg):
    cond, _ = _prompts(tiny_cfg)
    rng = np.random.default_rng(1)
    canvas = rng.integers(0, tiny_cfg.layout.codebook_size + 1, (2, tiny_cfg.num_image_tokens))
    cond = torch.from_numpy(Prompting(tiny_cfg).t2i_ids([[5, 6, 7], [9]], canvas))
    t, n = tiny_cfg.text_block_len, tiny_cfg.num_image_tokens
    mask = torch.from_numpy(t2i_attention_mask(cond.numpy(), tiny_cfg.layout))[:, None]
    with torch.no_grad():
        full = tiny_model(cond, attention_mask=mask)[:, t + 1: t + 1 + n]
        _, past = tiny_model.hidden_states(cond[:, :t], attention_mask=mask[:, :, :t, :t])
        pos = torch.arange(t, cond.shape[1]).expand(2, -1)
        hidden, _ = tiny_model.hidden_states(cond[:, t:], mask[:, :, t:], pos, past)
        cached = tiny_model.lm_logits(hidden[:, 1:-1])
    assert (full - cached).abs().max() <= 1e-5


@pytest.mark.parametrize("guidance", [0.0, 1.75])
def test_greedy_official_equals_cached(tiny_model, tiny_cfg, guidance):
    cond, uncond = _prompts(tiny_cfg)
    kw = dict(steps=6, guidance_scale=guidance, greedy=True)
    a = t2i_generate(tiny_model, tiny_cfg, cond, uncond, mode="official", **kw)
    b = t2i_generate(tiny_model, tiny_cfg, cond, uncond, mode="cached", **kw)
    assert a.shape == (2, tiny_cfg.num_image_tokens)
    assert (a >= 0).all() and (a < tiny_cfg.layout.codebook_size).all()
    assert torch.equal(a, b)


def test_sampled_official_equals_cached_with_same_generator(tiny_model, tiny_cfg):
    cond, uncond = _prompts(tiny_cfg)
    out = [t2i_generate(tiny_model, tiny_cfg, cond, uncond, steps=5, guidance_scale=2.0, mode=m,
                        generator=torch.Generator().manual_seed(3)) for m in ("official", "cached")]
    assert torch.equal(out[0], out[1])
    other = t2i_generate(tiny_model, tiny_cfg, cond, uncond, steps=5, guidance_scale=2.0,
                         generator=torch.Generator().manual_seed(4))
    assert not torch.equal(out[0], other)


def test_inpainting_keeps_known_codes(tiny_model, tiny_cfg):
    k, n = tiny_cfg.layout.codebook_size, tiny_cfg.num_image_tokens
    known = np.arange(n) % k
    canvas = known.copy()
    canvas[5:9] = k
    cond, uncond = _prompts(tiny_cfg, 1, canvas[None])
    out = t2i_generate(tiny_model, tiny_cfg, cond, uncond, steps=4, guidance_scale=1.0, greedy=True)
    keep = canvas != k
    assert (out[0].numpy()[keep] == known[keep]).all()


def _trace_loop(canvas, k, steps):
    """Record how many MASKs each step sees, on fixed random logits."""
    seen = []
    table = torch.randn(canvas.shape[0], canvas.shape[1], k, generator=torch.Generator().manual_seed(0))

    def fn(cv):
        seen.append(int((cv == k).sum()))
        return table + 0.1 * cv[..., None].float()

    out = maskgit_loop(fn, canvas, k, steps, generator=torch.Generator().manual_seed(1))
    return out, seen


def test_loop_mask_counts_follow_schedule():
    k, n, steps = 50, 256, 16
    out, seen = _trace_loop(torch.full((1, n), k), k, steps)
    assert seen == [256] + [max(1, min(prev - 1, t)) for prev, t in zip(seen, TABLE_16[:-1])]
    assert seen[1:] == TABLE_16[:-1]
    assert (out != k).all()


def test_mmu_cache_equals_recompute(tiny_model, tiny_cfg):
    rng = np.random.default_rng(2)
    codes = rng.integers(0, tiny_cfg.layout.codebook_size, (2, tiny_cfg.num_image_tokens))
    ids = torch.from_numpy(Prompting(tiny_cfg).mmu_ids(codes, [3, 4, 5, 6]))
    a = mmu_generate(tiny_model, tiny_cfg, ids, max_new_tokens=12, eot_id=-1, use_cache=True)
    b = mmu_generate(tiny_model, tiny_cfg, ids, max_new_tokens=12, eot_id=-1, use_cache=False)
    assert a == b and len(a) == 2 and all(len(r) == 12 for r in a)


def test_mmu_stops_at_eot(tiny_model, tiny_cfg):
    ids = torch.from_numpy(Prompting(tiny_cfg).mmu_ids(np.zeros((1, tiny_cfg.num_image_tokens), np.int64), [3]))
    first = mmu_generate(tiny_model, tiny_cfg, ids, max_new_tokens=5, eot_id=-1)[0]
    out = mmu_generate(tiny_model, tiny_cfg, ids, max_new_tokens=5, eot_id=first[1])[0]
    assert out == first[:2]


def test_mmu_sampling_topk_reproducible(tiny_model, tiny_cfg):
    ids = torch.from_numpy(Prompting(tiny_cfg).mmu_ids(np.zeros((1, tiny_cfg.num_image_tokens), np.int64), [3]))
    runs = [mmu_generate(tiny_model, tiny_cfg, ids, 8, eot_id=-1, greedy=False, top_k=5, temperature=0.8,
                         generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert runs[0] == runs[1]
    top1 = mmu_generate(tiny_model, tiny_cfg, ids, 8, eot_id=-1, greedy=False, top_k=1,
                        generator=torch.Generator().manual_seed(7))
    assert top1 == mmu_generate(tiny_model, tiny_cfg, ids, 8, eot_id=-1)


# ---- the reference on a CUDA GPU (the official code's device) -----------------------------------------
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")


@pytest.fixture(scope="module")
def cuda_model(tiny_model):
    import copy

    return copy.deepcopy(tiny_model).cuda()


@CUDA
@pytest.mark.parametrize("guidance", [0.0, 1.75])
def test_cuda_greedy_codes_equal_the_cpu_and_official(tiny_model, cuda_model, tiny_cfg, guidance):
    """On the GPU cached == official, both giving the CPU's codes (inputs are moved; codes stay on the GPU)."""
    cond, uncond = _prompts(tiny_cfg)
    kw = dict(steps=6, guidance_scale=guidance, greedy=True)
    cpu = t2i_generate(tiny_model, tiny_cfg, cond, uncond, mode="cached", **kw)
    gpu = {m: t2i_generate(cuda_model, tiny_cfg, cond, uncond, mode=m, **kw) for m in ("cached", "official")}
    assert gpu["cached"].is_cuda
    assert torch.equal(gpu["cached"], gpu["official"])
    assert torch.equal(gpu["cached"].cpu(), cpu)


@CUDA
def test_cuda_sampling_takes_a_cuda_generator(cuda_model, tiny_cfg):
    cond, uncond = _prompts(tiny_cfg)
    out = [t2i_generate(cuda_model, tiny_cfg, cond, uncond, steps=5, guidance_scale=2.0, mode=m,
                        generator=torch.Generator("cuda").manual_seed(3)) for m in ("official", "cached")]
    assert torch.equal(out[0], out[1])
    other = t2i_generate(cuda_model, tiny_cfg, cond, uncond, steps=5, guidance_scale=2.0,
                         generator=torch.Generator("cuda").manual_seed(4))
    assert not torch.equal(out[0], other)


@CUDA
def test_cuda_mmu_equals_the_cpu(tiny_model, cuda_model, tiny_cfg):
    rng = np.random.default_rng(2)
    codes = rng.integers(0, tiny_cfg.layout.codebook_size, (2, tiny_cfg.num_image_tokens))
    ids = torch.from_numpy(Prompting(tiny_cfg).mmu_ids(codes, [3, 4, 5, 6]))
    cpu = mmu_generate(tiny_model, tiny_cfg, ids, max_new_tokens=12, eot_id=-1)
    assert mmu_generate(cuda_model, tiny_cfg, ids, max_new_tokens=12, eot_id=-1) == cpu
    assert mmu_generate(cuda_model, tiny_cfg, ids, max_new_tokens=12, eot_id=-1, use_cache=False) == cpu
