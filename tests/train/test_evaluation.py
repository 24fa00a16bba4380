import numpy as np

from showo_sdk.train.data import make_split
from showo_sdk.train.evaluation import mini_geneval, normalize_answer, save_grid, vqa_accuracy, write_report


def test_normalize_answer():
    assert normalize_answer("  A Red  Circle. ") == "a red circle"


def test_blank_images_score_zero_and_grid(tmp_path):
    res = mini_geneval(lambda prompts: [np.zeros((32, 32, 3), np.uint8) for _ in prompts], n_per_category=2)
    assert res["overall"] == 0.0 and res["n"] == 12 and len(res["samples"]) == 12
    save_grid(res["samples"], tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    write_report({"geneval": res}, tmp_path / "r.json")
    assert "samples" not in (tmp_path / "r.json").read_text()


def test_vqa_oracle_and_wrong():
    recs = make_split(0, 6, "heldout")
    oracle = vqa_accuracy(lambda ims, qs: [next(a for r in recs for qq, a in r["qa"] if qq == q and r["image"] is im)
                                           for im, q in zip(ims, qs)], recs)
    assert oracle["accuracy"] == 1.0 and oracle["n"] == 12
    wrong = vqa_accuracy(lambda ims, qs: ["purple" for _ in qs], recs)
    assert wrong["accuracy"] == 0.0
