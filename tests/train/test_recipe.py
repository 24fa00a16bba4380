"""The whole recipe pipeline end to end at toy size: tokenizer, VQ, three stages, ship, evaluate."""

import json

import numpy as np

from showo_sdk.model.magvit_io import load_magvit
from showo_sdk.model.showo_io import load_showo
from showo_sdk.tokenizer import TextTokenizer
from showo_sdk.train.__main__ import main
from showo_sdk.train.shapes import RECIPES, train_recipe


def test_tiny_recipe_end_to_end(tmp_path, capsys):
    ckpt = train_recipe(RECIPES["tiny"], tmp_path / "run", progress=False)
    assert ckpt.name == "stage3"
    model = load_showo(ckpt)
    tok = TextTokenizer.from_file(ckpt)
    tok.check_layout(model.showo_config.layout)
    assert load_magvit(ckpt / "vq").config.codebook_size == model.showo_config.layout.codebook_size
    log = [json.loads(x) for x in (tmp_path / "run" / "showo" / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in log] == ["stage1"] * 3 + ["stage2"] * 4 + ["stage3"] * 3
    # resumable: a second call finds every stage done and returns at once with the same weights
    again = train_recipe(RECIPES["tiny"], tmp_path / "run", progress=False)
    assert again == ckpt and len((tmp_path / "run" / "showo" / "metrics.jsonl").read_text().splitlines()) == 10

    assert main(["ship", str(ckpt), str(tmp_path / "ship"), "--dtype", "float16"]) == 0
    shipped = load_showo(tmp_path / "ship")
    assert not (tmp_path / "ship" / "optimizer.safetensors").exists()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(shipped.state_dict()[k].numpy(), v.half().float().numpy())

    assert main(["eval", str(tmp_path / "ship"), "--out", str(tmp_path / "eval"), "--n-per-category", "1",
                 "--n-vqa", "2", "--steps", "2"]) == 0
    report = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert set(report["geneval"]["per_category"]) == {"single_object", "two_objects", "counting", "colors",
                                                       "position", "color_attr"}
    assert report["vqa"]["n"] == 4 and 0 <= report["vq"]["psnr_db"] < 60
    assert (tmp_path / "eval" / "geneval_grid.png").stat().st_size > 0
