"""The Mini-GenEval detector, proved on rendered ground truth before it judges a model.

At 32 and 64 px it must accept >= 98% of true specs and reject >= 98% of wrong ones (swapped
colours, wrong count, flipped relation, a missing shape), and keep >= 95% under mild blur + noise.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from showo_sdk.errors import InputError
from showo_sdk.train import data as D
from showo_sdk.train.detector import Detection, check, detect, judge

PER_KIND = 100


def _wrong(spec: dict, rng: np.random.Generator) -> dict:
    """A spec that the scene behind ``spec`` does not satisfy."""
    spec = copy.deepcopy(spec)
    inc = spec["include"]
    kind = spec["tag"]
    if kind in ("single_object", "two_objects"):  # ask for a shape that is not there
        absent = [s for s in D.SHAPES if s not in {r["class"] for r in inc}]
        inc[int(rng.integers(len(inc)))]["class"] = absent[int(rng.integers(len(absent)))]
    elif kind == "colors":
        inc[0]["color"] = [c for c in D.COLORS if c != inc[0]["color"]][int(rng.integers(5))]
    elif kind == "counting":
        n = {2: 3, 3: 2}[inc[0]["count"]]
        inc[0]["count"], spec["exclude"][0]["count"] = n, n + 1
    elif kind == "position":
        rel, target = inc[1]["position"]
        inc[1]["position"] = [D.INVERSE[rel], target]
    else:  # color_attr: swap the colours
        inc[0]["color"], inc[1]["color"] = inc[1]["color"], inc[0]["color"]
    return spec


def _perturb(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur (sigma 0.5 px) then Gaussian noise (std 6/255)."""
    out = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.5) + rng.normal(0, 6, img.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def cases() -> list[tuple[D.Scene, dict, dict]]:
    rng = np.random.default_rng(77)
    out = []
    for kind in D.KINDS:
        for _ in range(PER_KIND):
            scene = D.sample_scene(rng, kind)
            spec = D.describe(scene, rng)[1]
            out.append((scene, spec, _wrong(spec, rng)))
    return out


@pytest.mark.parametrize("size,perturbed,floor",
                         [(32, False, 0.98), (64, False, 0.98), (32, True, 0.95), (64, True, 0.95)])
def test_accepts_true_specs_and_rejects_wrong_ones(cases, size, perturbed, floor):
    rng = np.random.default_rng(size)
    accepted = rejected = 0
    for scene, spec, wrong in cases:
        img = D.render(scene, size)
        detections = detect(_perturb(img, rng) if perturbed else img)
        accepted += check(detections, spec)[0]
        rejected += not check(detections, wrong)[0]
    assert len(cases) == 6 * PER_KIND
    assert accepted / len(cases) >= floor, accepted
    assert rejected / len(cases) >= floor, rejected


@pytest.mark.parametrize("size", [32, 64])
def test_detections_match_single_objects(size):
    rng = np.random.default_rng(5)
    for _ in range(60):
        (o,) = D.sample_scene(rng, "colors").objects
        (d,) = detect(D.render(D.Scene((o,), "colors"), size))
        assert (d.shape, d.color) == (o.shape, o.color)
        assert abs(d.cx - o.cx) < 0.5 / size and abs(d.cy - o.cy) < 0.5 / size  # half a pixel
        assert abs(d.width - o.size) < 0.15 * o.size and abs(d.height - o.size) < 0.15 * o.size
        assert 0.8 < d.score <= 1


def test_judge_reports_reasons():
    scene = D.Scene((D.Obj("circle", "red", 0.25, 0.5, 0.3), D.Obj("square", "blue", 0.75, 0.5, 0.3)), "position")
    img = D.render(scene, 32)
    ok, details = judge(img, {"tag": "position", "include": [
        {"class": "square", "color": "blue", "count": 1},
        {"class": "circle", "color": "red", "count": 1, "position": ["left of", 0]}]})
    assert ok and details["reasons"] == [] and details["modes"] == set() and len(details["detections"]) == 2
    ok, details = judge(img, {"tag": "position", "include": [
        {"class": "square", "color": "blue", "count": 1},
        {"class": "circle", "color": "red", "count": 1, "position": ["above", 0]}]})
    assert not ok and "above" in details["reasons"][0] and details["modes"] == {"position"}


def test_judge_failure_modes_say_missing_or_extra():
    three = D.render(D.Scene(tuple(D.Obj("circle", "red", x, y, 0.3) for x, y in ((0.2, 0.25), (0.8, 0.25), (0.5, 0.75))),
                             "counting"), 32)
    circles = lambda n: {"class": "circle", "color": "red", "count": n}  # noqa: E731
    assert judge(three, {"tag": "counting", "include": [circles(3)], "exclude": [circles(4)]})[1]["modes"] == set()
    ok, details = judge(three, {"tag": "counting", "include": [circles(2)], "exclude": [circles(3)]})
    assert not ok and details["modes"] == {"extra"} and details["reasons"] == ["expected red circle < 3, found 3"]
    ok, details = judge(three, {"tag": "counting", "include": [circles(4)], "exclude": [circles(5)]})
    assert not ok and details["modes"] == {"missing"}


def test_check_follows_geneval_rules():
    dets = [Detection("circle", "red", 0.2, 0.5, 0.2, 0.2, 0.03, 0.9),
            Detection("circle", "red", 0.5, 0.5, 0.2, 0.2, 0.03, 0.9),
            Detection("square", "green", 0.8, 0.2, 0.2, 0.2, 0.04, 0.9)]
    circles = lambda n, **kw: {"class": "circle", "count": n, **kw}  # noqa: E731
    assert check(dets, {"tag": "counting", "include": [circles(2)], "exclude": [circles(3)]})[0]
    assert not check(dets, {"tag": "counting", "include": [circles(1)], "exclude": [circles(2)]})[0]
    assert not check(dets, {"tag": "counting", "include": [circles(3)], "exclude": [circles(4)]})[0]
    assert not check(dets, {"tag": "colors", "include": [circles(1, color="blue")]})[0]
    square = {"class": "square", "count": 1, "color": "green"}
    assert check(dets, {"tag": "position", "include": [square, circles(2, position=["left of", 0])]})[0]
    # every found circle must hold the relation: only the middle one is also below the square
    assert not check(dets, {"tag": "position", "include": [square, circles(2, position=["below", 0])]})[0]
    # no target -> the dependent clause fails too
    missing = {"class": "triangle", "count": 1}
    ok, reasons = check(dets, {"tag": "position", "include": [missing, circles(1, position=["left of", 0])]})
    assert not ok and len(reasons) == 2


def test_blank_noise_and_grey_images_have_no_objects():
    rng = np.random.default_rng(0)
    blank = np.zeros((32, 32, 3), np.uint8)
    assert detect(blank) == []
    noise = np.clip(rng.normal(0, 6, (64, 64, 3)), 0, 255).astype(np.uint8)
    assert detect(noise) == []
    grey = blank.copy()
    grey[8:20, 8:20] = 200  # not one of the palette hues
    assert detect(grey) == []
    speck = blank.copy()
    speck[3:5, 3:5] = (255, 0, 0)  # too small to be an object
    assert detect(speck) == []


def test_bad_inputs_raise_input_error():
    img = np.zeros((32, 32, 3), np.uint8)
    for bad in (img.astype(np.float32), img[..., 0], np.zeros((4, 4, 3), np.uint8), [[0]]):
        with pytest.raises(InputError):
            detect(bad)
    circle = {"class": "circle", "count": 1}
    for spec in ({"include": []}, {"include": [{"class": "star", "count": 1}]},
                 {"include": [{"class": "circle", "count": 0}]},
                 {"include": [{**circle, "color": "grey"}]},
                 {"include": [{**circle, "position": ["left of", 0]}]},
                 {"include": [circle, {"class": "square", "count": 1, "position": ["near", 0]}]},
                 {"include": [circle, {"class": "square", "count": 1, "position": "left of"}]}):
        with pytest.raises(InputError):
            judge(img, spec)


def test_data_and_detector_import_no_torch():
    code = "import sys, showo_sdk.train.data, showo_sdk.train.detector; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"
