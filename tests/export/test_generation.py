"""Greedy decoding driven by the ONNX graphs (the validation's path: runtime drivers over the files) gives exactly
the PyTorch reference's codes and tokens."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from showo_sdk.export.validate import (T2I_PROMPTS, default_prompts, extra_prompts, generation_agreement,
                                      greedy_answers, greedy_codes)
from showo_sdk.model.generate import mmu_generate, t2i_generate
from showo_sdk.prompting import Prompting
from showo_sdk.runtime.backends import Graphs
from showo_sdk.runtime.bundle import TRANSFORMER_GRAPHS


@pytest.fixture(scope="module")
def graphs(bundle_fp32):
    return Graphs.from_paths({n: bundle_fp32 / f"{n}.onnx" for n in TRANSFORMER_GRAPHS})


@pytest.mark.parametrize("guidance,mode", [(0.0, "cached"), (1.75, "cached"), (3.0, "official")])
def test_t2i_greedy_codes_equal_reference(graphs, tiny, guidance, mode):
    model, config, tok = tiny.model, tiny.config, tiny.tokenizer
    prompting = Prompting(config, tok)
    cond = prompting.t2i(["a red circle left of a blue square", "two green triangles"])
    uncond = prompting.t2i_null_ids(2)
    want = t2i_generate(model, config, torch.from_numpy(cond), torch.from_numpy(uncond), steps=6,
                        guidance_scale=guidance, greedy=True, mode=mode).numpy()
    got = greedy_codes(graphs, config, cond, uncond, steps=6, guidance_scale=guidance)
    np.testing.assert_array_equal(got, want)


def test_t2i_inpainting_keeps_known_codes(graphs, tiny):
    """A partly known canvas (inpainting): known codes are kept, the rest equal the reference."""
    model, config, tok = tiny.model, tiny.config, tiny.tokenizer
    k, n = config.layout.codebook_size, config.num_image_tokens
    canvas = np.random.default_rng(4).integers(0, k, size=(1, n))
    canvas[:, n // 2:] = k  # regenerate the second half
    prompting = Prompting(config, tok)
    cond = prompting.t2i(["a yellow star above a purple square"], canvas)
    uncond = prompting.t2i_null_ids(1, canvas)
    want = t2i_generate(model, config, torch.from_numpy(cond), torch.from_numpy(uncond), steps=4,
                        guidance_scale=1.75, greedy=True).numpy()
    got = greedy_codes(graphs, config, cond, uncond, steps=4, guidance_scale=1.75)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[:, : n // 2], canvas[:, : n // 2])


@pytest.mark.parametrize("questions", [["What color is the circle?"],
                                       ["How many shapes are there?", "Describe the image shapes."]])
def test_mmu_greedy_tokens_equal_reference(graphs, tiny, questions):
    model, config, tok = tiny.model, tiny.config, tiny.tokenizer
    prompting = Prompting(config, tok)
    ids = [prompting.mmu_question_ids(q) for q in questions]
    width = min(len(i) for i in ids)
    question = np.array([i[:width] for i in ids], dtype=np.int64)  # equal lengths so they batch
    image = np.random.default_rng(5).integers(0, config.layout.codebook_size, size=(len(questions), config.num_image_tokens))
    prompt = prompting.mmu_ids(image, question)
    want = mmu_generate(model, config, torch.from_numpy(prompt), max_new_tokens=24, greedy=True, use_cache=False)
    got = greedy_answers(graphs, config, prompt, max_new_tokens=24)
    assert got == want
    assert all(len(row) > 1 for row in got)


def test_mmu_stops_at_eot(graphs, tiny):
    """With eot set to the token the model emits second, decoding stops right there (eot kept)."""
    model, config, tok = tiny.model, tiny.config, tiny.tokenizer
    prompting = Prompting(config, tok)
    image = np.random.default_rng(6).integers(0, config.layout.codebook_size, size=(1, config.num_image_tokens))
    prompt = prompting.mmu_ids(image, prompting.mmu_question_ids("What color is the circle?"))
    free = greedy_answers(graphs, config, prompt, max_new_tokens=8)[0]
    stopped = greedy_answers(graphs, config, prompt, max_new_tokens=8, eot_id=free[1])[0]
    assert stopped == free[: free.index(free[1]) + 1]


def test_manifest_reports_exact_agreement(bundle_fp32, tiny):
    gen = json.loads((bundle_fp32 / "manifest.json").read_text())["validation"]["generation"]
    assert gen["t2i_code_agreement"] == 1.0
    assert gen["mmu_token_agreement"] == 1.0
    # the tiny model is cheap: the time budget admits prompts beyond the first four
    assert gen["t2i"]["prompts"] > len(T2I_PROMPTS)
    assert gen["t2i"]["tokens"] == gen["t2i"]["prompts"] * tiny.config.num_image_tokens


def test_agreement_budget_decides_how_many_prompts(graphs, tiny):
    """Budget 0: only the fixed prompts; a generous one: every extra prompt, 4 at a time; codes counted."""
    prompts, questions = default_prompts(tiny.tokenizer)
    extra = [tiny.tokenizer.encode(p) for p in extra_prompts(6)]
    n = tiny.config.num_image_tokens
    for budget, used in [(0.0, len(prompts)), (1e6, len(prompts) + 6)]:
        gen = generation_agreement(graphs, tiny.model, tiny.config, prompts, questions[:1], steps=3,
                                   extra=extra, budget_s=budget)
        assert gen["t2i"]["prompts"] == used and gen["t2i"]["tokens"] == used * n
        assert gen["t2i_code_agreement"] == 1.0 and gen["meets_target"]


def test_extra_prompts_are_fixed_and_compositional():
    a = extra_prompts(16)
    assert a == extra_prompts(16) and len(set(a)) >= 12  # drawn at random: a repeat is allowed
    assert any(p.startswith(("two ", "three ")) for p in a)
    assert any(" left of " in p or " above " in p for p in a) and any(" and " in p for p in a)
