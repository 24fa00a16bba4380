import numpy as np

from showo_sdk.train.data import make_split, qa_pairs, sample_scene
from showo_sdk.train.evaluation import (mini_geneval, normalize_answer, question_kind, save_grid, vqa_accuracy,
                                         write_report)


def test_normalize_answer():
    assert normalize_answer("  A Red  Circle. ") == "a red circle"


def test_blank_images_score_zero_and_grid(tmp_path):
    res = mini_geneval(lambda prompts: [np.zeros((32, 32, 3), np.uint8) for _ in prompts], n_per_category=2)
    assert res["overall"] == 0.0 and res["n"] == 12 and len(res["samples"]) == 12
    assert all(f == {"missing": 2, "position": 0, "extra": 0} for f in res["failures"].values())
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


def test_every_generated_question_has_a_kind():
    rng = np.random.default_rng(0)
    kinds = {question_kind(q) for kind in ("position", "counting", "color_attr") for _ in range(20)
             for q, _ in qa_pairs(sample_scene(rng, kind))}
    assert kinds == {"count", "color", "shape", "exists", "relation"}
    assert question_kind("Why is the sky blue?") == "other"


def test_vqa_per_kind_splits_the_hits():
    recs = make_split(0, 12, "heldout")
    truth = {(id(r["image"]), q): a for r in recs for q, a in r["qa"]}
    # Right on counting questions only: per_kind must show exactly that.
    res = vqa_accuracy(lambda ims, qs: [truth[(id(im), q)] if q.startswith("How many") else "purple"
                                        for im, q in zip(ims, qs)], recs)
    per = res["per_kind"]
    assert per["count"]["accuracy"] == 1.0
    assert all(v["accuracy"] == 0.0 for k, v in per.items() if k != "count")
    assert sum(v["n"] for v in per.values()) == res["n"] == 24
    assert res["accuracy"] == per["count"]["n"] / 24
