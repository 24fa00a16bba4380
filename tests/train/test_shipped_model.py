"""The shipped "shapes" model (showo_sdk/assets/shapes): complete, small, and still the model its card describes.

Behavioural checks run the PyTorch reference greedily on held-out scenes (never seen in training),
so they fail for untrained, damaged or mismatched weights: an untrained model answers almost
nothing right, and the recipe's model answers most "how many objects" questions.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from showo_sdk.cli import SHIPPED_MODEL

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(not (SHIPPED_MODEL / "config.json").is_file(),
                                reason=f"the shipped model is not installed ({SHIPPED_MODEL})")

# Figures when shipped (this machine): "how many objects" 23 / 24, colour 14 / 20, drawn colours 4 / 8.


def test_files_size_and_dtype():
    from safetensors.numpy import load_file

    files = [p for p in SHIPPED_MODEL.rglob("*") if p.is_file()]
    names = sorted(p.relative_to(SHIPPED_MODEL).as_posix() for p in files)
    assert names == ["MODEL_CARD.md", "config.json", "model.safetensors", "tokenizer.json", "vq/config.json",
                     "vq/model.safetensors"]
    assert sum(p.stat().st_size for p in files) <= 25 * 2**20
    weights = load_file(str(SHIPPED_MODEL / "model.safetensors"))
    assert {v.dtype for v in weights.values()} == {np.dtype("float16")}  # shipped in fp16, no optimizer state


def test_it_is_the_recipe_model():
    from showo_sdk.model.showo_io import load_showo
    from showo_sdk.tokenizer import TextTokenizer
    from showo_sdk.train.shapes import RECIPES

    recipe = RECIPES["shapes"]
    model = load_showo(SHIPPED_MODEL)
    cfg = model.showo_config
    tc = cfg.transformer
    assert (tc.hidden_size, tc.num_layers, tc.num_heads) == (recipe.hidden_size, recipe.num_layers, recipe.num_heads)
    assert cfg.image_grid == (8, 8) and cfg.layout.codebook_size == 2 ** recipe.vq.codebook_bits
    TextTokenizer.from_file(SHIPPED_MODEL).check_layout(cfg.layout)
    assert json.loads((SHIPPED_MODEL / "config.json").read_text())["format"] == "showo-sdk"


@pytest.fixture(scope="module")
def fns():
    from showo_sdk.train.eval_adapters import reference_fns

    return reference_fns(SHIPPED_MODEL, steps=12, guidance_scale=2.0, seed=0)


def test_it_answers_about_held_out_scenes(fns):
    from showo_sdk.train.data import make_split
    from showo_sdk.train.evaluation import normalize_answer

    _, answer = fns
    records = make_split(0, 24, "heldout", 32)
    count = [(r["image"], q, a) for r in records for q, a in r["qa"] if q.startswith("How many objects")]
    got = answer([c[0] for c in count], [c[1] for c in count])
    hits = [normalize_answer(g) == normalize_answer(c[2]) for g, c in zip(got, count)]
    assert len(hits) >= 20 and np.mean(hits) >= 0.9, list(zip(got, [c[2] for c in count]))
    colours = [(r["image"], q, a) for r in records for q, a in r["qa"] if q.startswith("What color is")][:20]
    got = answer([c[0] for c in colours], [c[1] for c in colours])
    assert np.mean([normalize_answer(g) == normalize_answer(c[2]) for g, c in zip(got, colours)]) >= 0.6  # 14/20 shipped


def test_its_vq_reconstructs_held_out_images():
    from showo_sdk.model.magvit_io import load_magvit
    from showo_sdk.train.data import make_split
    from showo_sdk.train.vq_eval import evaluate_vq

    images = [r["image"] for r in make_split(0, 50, "heldout", 32)]
    assert evaluate_vq(load_magvit(SHIPPED_MODEL / "vq"), images)["psnr_db"] >= 35.0  # issue: >= 26; 38.1 shipped


def test_it_draws_the_colour_it_is_told(fns):
    """'one red circle' style prompts (the 'colors' category, its best): most images hold that colour."""
    from showo_sdk.train.detector import judge

    generate, _ = fns
    prompts = [(f"one {c} {s}", {"tag": "colors", "include": [{"class": s, "count": 1, "color": c}], "exclude": []})
               for c, s in (("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "circle"),
                            ("cyan", "square"), ("magenta", "triangle"), ("red", "square"), ("blue", "triangle"))]
    images = generate([p for p, _ in prompts])
    ok = [judge(im, spec)[0] for im, (_, spec) in zip(images, prompts)]
    assert sum(ok) >= 5, ok  # 8 / 8 when shipped; an untrained model draws none
