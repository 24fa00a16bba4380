"""Synthetic data: determinism, split disjointness, scene geometry, and text that tells the truth.

Captions and answers are checked against the scene objects by rules written here afresh, not by
calling the generator's own helpers.
"""

from __future__ import annotations

import re
from collections import Counter

import cv2
import numpy as np
import pytest

from showo_sdk.errors import InputError
from showo_sdk.train import data as D

PER_KIND = 150
REL = "left of|right of|above|below"


@pytest.fixture(scope="module")
def scenes() -> list[D.Scene]:
    rng = np.random.default_rng(2024)
    return [D.sample_scene(rng, kind) for kind in D.KINDS for _ in range(PER_KIND)]


def _objects_key(scene: D.Scene) -> tuple:
    return tuple(sorted((o.shape, o.color, o.cx, o.cy, o.size) for o in scene.objects))


def _clearly(a: D.Obj, b: D.Obj, rel: str) -> bool:
    """A's box lies wholly on the ``rel`` side of B's, and mostly along that axis."""
    dx, dy = b.cx - a.cx, b.cy - a.cy  # from A to B
    along, across = {"left of": (dx, dy), "right of": (-dx, dy), "above": (dy, dx), "below": (-dy, dx)}[rel]
    return along >= (a.size + b.size) / 2 and abs(across) < along


def _find(scene: D.Scene, desc: str) -> list[D.Obj]:
    """Objects matching "red circle" or "circle"."""
    words = desc.split()
    return [o for o in scene.objects if words[-1] == o.shape and (len(words) == 1 or words[0] == o.color)]


def test_same_seed_same_bytes_and_random_access():
    a = D.make_split(5, 12, "train", 32)
    b = D.make_split(5, 12, "train", 32)
    for ra, rb in zip(a, b):
        assert ra["image"].tobytes() == rb["image"].tobytes()
        assert (ra["caption"], ra["qa"], ra["spec"], ra["scene"]) == (rb["caption"], rb["qa"], rb["spec"], rb["scene"])
        assert ra["image"].dtype == np.uint8 and ra["image"].shape == (32, 32, 3)
    rec = D.make_record(5, "train", 7, 32)
    assert rec["image"].tobytes() == a[7]["image"].tobytes() and rec["caption"] == a[7]["caption"]
    other = D.make_split(6, 12, "train", 32)
    assert sum(x["image"].tobytes() != y["image"].tobytes() for x, y in zip(a, other)) >= 10
    assert D.make_record(5, "train", 3, 64)["image"].shape == (64, 64, 3)
    assert list(D.text_corpus(1, 20)) == list(D.text_corpus(1, 20))
    assert D.geneval_prompts(1, 4) == D.geneval_prompts(1, 4)


def test_heldout_split_is_disjoint_from_train():
    train = D.make_split(0, 400, "train")
    held = D.make_split(0, 80, "heldout")
    assert not {_objects_key(r["scene"]) for r in train} & {_objects_key(r["scene"]) for r in held}
    assert not {r["image"].tobytes() for r in train} & {r["image"].tobytes() for r in held}
    assert all(D.scene_split(r["scene"]) == "train" for r in train)
    assert all(D.scene_split(r["scene"]) == "heldout" for r in held)
    rng = np.random.default_rng(9)
    share = np.mean([D.scene_split(D.sample_scene(rng, D.KINDS[i % 6])) == "heldout" for i in range(3000)])
    assert 0.06 < share < 0.14


def test_holdout_pairs_never_reach_train():
    pairs = [("yellow", "triangle"), ("cyan", "circle")]
    train = D.make_split(1, 300, "train", holdout_pairs=pairs)
    held = D.make_split(1, 120, "heldout", holdout_pairs=pairs)
    has = lambda r: any((o.color, o.shape) in pairs for o in r["scene"].objects)  # noqa: E731
    assert not any(has(r) for r in train)
    assert sum(has(r) for r in held) >= 20


def test_scene_geometry(scenes):
    edge, gap = 1 / 32, 6 / 32
    for s in scenes:
        assert 1 <= len(s.objects) <= 3
        for o in s.objects:
            assert o.shape in D.SHAPES and o.color in D.COLORS
            assert o.size == 10 / 32  # px at 32 px: a 3-cell box with the shape 1 px inside
            cell_box = np.array([o.cx - o.size / 2 - edge, o.cy - o.size / 2 - edge, o.size + 2 * edge]) * 8
            assert np.allclose(cell_box, np.round(cell_box)), o  # whole 4-px cells (one token each)
            assert edge <= o.cx - o.size / 2 and o.cx + o.size / 2 <= 1 - edge
            assert edge <= o.cy - o.size / 2 and o.cy + o.size / 2 <= 1 - edge
        for i, a in enumerate(s.objects):
            for b in s.objects[i + 1:]:
                reach = (a.size + b.size) / 2 + gap
                assert abs(a.cx - b.cx) >= reach or abs(a.cy - b.cy) >= reach, s
        shapes = [o.shape for o in s.objects]
        colors = [o.color for o in s.objects]
        n = {"single_object": 1, "colors": 1, "two_objects": 2, "position": 2, "color_attr": 2}.get(s.kind)
        assert n is None or len(s.objects) == n
        if s.kind == "counting":
            assert len(s.objects) in (2, 3) and len({(o.shape, o.color, o.size) for o in s.objects}) == 1
        if s.kind in ("two_objects", "color_attr"):
            assert len(set(shapes)) == 2
        if s.kind == "color_attr":
            assert len(set(colors)) == 2
        if s.kind == "position":
            a, b = s.objects
            assert (a.shape, a.color) != (b.shape, b.color)
            assert sum(_clearly(a, b, r) for r in D.RELATIONS) == 1
            assert len(D.relative_position(a.box(), b.box())) == 1


def test_render_keeps_colours_clean_and_sizes_consistent(scenes):
    patterns = {tuple(np.array(c) > 0) for c in D.COLORS.values()}
    for s in scenes[::5]:
        img = D.render(s, 32)
        # every pixel is t * (one palette colour): on channels equal, the others zero
        for px in np.unique(img.reshape(-1, 3), axis=0):
            on = px > 0
            assert not on.any() or (tuple(on) in patterns and len(set(px[on])) == 1), px
        for o in s.objects:
            inner_y = o.cy + (o.size / 4 if o.shape == "triangle" else 0)  # a point well inside
            assert tuple(img[int(inner_y * 32), int(o.cx * 32)]) == D.COLORS[o.color]
        big = D.render(s, 64)
        down = cv2.resize(big, (32, 32), interpolation=cv2.INTER_AREA)
        assert np.abs(down.astype(int) - img).max() <= 1
    for bad in (0, 30, 256, 32.0):
        with pytest.raises(InputError):
            D.render(scenes[0], bad)


def test_captions_and_specs_state_the_scene(scenes):
    rng = np.random.default_rng(3)
    for s in scenes:
        text, spec = D.describe(s, rng)
        assert text == text.lower() and spec["tag"] == s.kind
        shapes = Counter(o.shape for o in s.objects)
        if s.kind == "single_object":
            m = re.fullmatch(r"(?:a|one|a single) (\w+)", text)
            assert m and m[1] == s.objects[0].shape, text
        elif s.kind == "colors":
            m = re.fullmatch(r"(?:a|one|a single) (\w+) (\w+)", text)
            assert m and (m[1], m[2]) == (s.objects[0].color, s.objects[0].shape), text
        elif s.kind == "counting":
            m = re.fullmatch(r"(two|three) (?:(\w+) )?(\w+)s", text)
            o = s.objects[0]
            assert m and D.COUNT_WORDS.index(m[1]) == len(s.objects) and m[3] == o.shape, text
            assert m[2] in (None, o.color), text
        elif s.kind == "two_objects":
            m = re.fullmatch(r"a (\w+) and a (\w+)", text)
            assert m and {m[1], m[2]} == set(shapes), text
        elif s.kind == "color_attr":
            m = re.fullmatch(r"a (\w+) (\w+) and a (\w+) (\w+)", text)
            assert m and {(m[1], m[2]), (m[3], m[4])} == {(o.color, o.shape) for o in s.objects}, text
        else:
            m = re.fullmatch(rf"a (\w+ \w+) ({REL}) a (\w+ \w+)", text)
            assert m, text
            (a,), (b,) = _find(s, m[1]), _find(s, m[3])
            assert _clearly(a, b, m[2]), text
        # the spec asks for exactly what the caption says
        for req in spec["include"]:
            assert req["class"] in text and ("color" not in req or req["color"] in text)
            assert sum(1 for o in s.objects if o.shape == req["class"]
                       and req.get("color", o.color) == o.color) >= req["count"]
        if s.kind == "counting":
            assert spec["include"][0]["count"] == len(s.objects) == spec["exclude"][0]["count"] - 1


def _recompute(s: D.Scene, q: str) -> str:
    """The answer to question ``q`` about scene ``s``, worked out from the objects alone."""
    objs = s.objects
    word = D.COUNT_WORDS
    if q == "How many objects are there?":
        return word[len(objs)]
    if m := re.fullmatch(r"How many (\w+)s are there\?", q):
        return word[sum(o.shape == m[1] for o in objs)]
    if m := re.fullmatch(r"What color (is|are) the (\w+?)s?\?", q):
        colors = [o.color for o in objs if o.shape == m[2]]
        assert len(set(colors)) == 1 and (len(colors) == 1) == (m[1] == "is"), q
        return colors[0]
    if m := re.fullmatch(r"What shape (is|are) the (\w+) objects?\?", q):
        found = [o.shape for o in objs if o.color == m[2]]
        assert len(set(found)) == 1 and (len(found) == 1) == (m[1] == "is"), q
        return found[0]
    if m := re.fullmatch(r"Is there a (\w+) (\w+)\?", q):
        return "yes" if any((o.color, o.shape) == (m[1], m[2]) for o in objs) else "no"
    if m := re.fullmatch(rf"What is ({REL}) the (\w+(?: \w+)?)\?", q):
        (anchor,) = _find(s, m[2])
        hits = [o for o in objs if o is not anchor and _clearly(o, anchor, m[1])]
        assert len(hits) == 1, q
        return f"a {hits[0].color} {hits[0].shape}"
    if m := re.fullmatch(rf"Is the (\w+ \w+) ({REL}) the (\w+ \w+)\?", q):
        (a,), (b,) = _find(s, m[1]), _find(s, m[3])
        return "yes" if _clearly(a, b, m[2]) else "no"
    raise AssertionError(f"unexpected question {q!r}")


def test_qa_answers_follow_from_the_scene(scenes):
    answers = Counter()
    for s in scenes:
        qa = D.qa_pairs(s)
        assert len(qa) == len({q for q, _ in qa}) >= 6
        for q, a in qa:
            assert a == a.lower() and len(a.split()) <= 3
            assert _recompute(s, q) == a, (q, a, s)
            answers[a] += 1
    assert {"yes", "no", "zero", "one", "two", "three"} <= set(answers)
    assert set(D.COLORS) <= set(answers) and set(D.SHAPES) <= set(answers)
    assert any(a.startswith("a ") for a in answers)


def test_split_covers_every_kind_colour_shape_and_count():
    recs = D.make_split(4, 240)
    scenes = [r["scene"] for r in recs]
    assert {s.kind for s in scenes} == set(D.KINDS)
    objs = [o for s in scenes for o in s.objects]
    assert {o.color for o in objs} == set(D.COLORS) and len(D.COLORS) >= 6
    assert {o.shape for o in objs} == set(D.SHAPES) and len(D.SHAPES) >= 3
    assert {len(s.objects) for s in scenes} == {1, 2, 3}
    for r in recs:
        single = len(r["scene"].objects) == 1
        assert (r["class_name"] in D.CLASS_NAMES) if single else r["class_name"] is None
    assert len({r["class_name"] for r in recs} - {None}) >= 12


def test_geneval_prompts_and_text_corpus():
    prompts = D.geneval_prompts(0, 5)
    assert [c for c, _, _ in prompts] == [k for k in D.KINDS for _ in range(5)]
    for category, prompt, spec in prompts:
        assert spec["tag"] == category
        assert all(req["class"] in prompt for req in spec["include"])
    corpus = " ".join(D.text_corpus(0, 60))
    for word in [*D.COLORS, *D.SHAPES, *D.COUNT_WORDS, *D.RELATIONS, "yes", "no", "?"]:
        assert word in corpus, word


def test_bad_arguments_raise_input_error():
    with pytest.raises(InputError):
        D.sample_scene(np.random.default_rng(0), "three_objects")
    with pytest.raises(InputError):
        D.make_record(0, "test", 0)
    with pytest.raises(InputError):
        D.make_record(0, "train", 0, holdout_pairs=[("grey", "circle")])
    every_pair = [(c, s) for c in D.COLORS for s in D.SHAPES]
    with pytest.raises(InputError):
        D.make_record(0, "train", 0, holdout_pairs=every_pair)
