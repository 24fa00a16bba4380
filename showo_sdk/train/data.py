"""Synthetic Show-o data: scenes of 1-3 coloured shapes rendered with OpenCV, with compositional
captions, question/answer pairs, stage-1 class names and GenEval-style prompt specs.

Everything is a pure function of a seed (same seed -> identical bytes), so training, evaluation
and tests need nothing from the internet. Scene coordinates are fractions of the canvas on a
1/256 grid, so one scene renders exactly at 32 and at 64 px. A spec is GenEval's metadata format
(``{"tag", "include": [{"class", "count", "color"?, "position"?}], "exclude": [...]}``) with our
shapes as classes; ``showo_sdk.train.detector.judge`` checks an image against it. No torch here.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from ..errors import InputError

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
#: The six corners of the RGB cube with full saturation: 60 degrees of hue apart, so the nearest
#: hue survives blur and VQ colour drift, and each differs from the black background by V = 255.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "yellow": (255, 255, 0),
    "green": (0, 255, 0),
    "cyan": (0, 255, 255),
    "blue": (0, 0, 255),
    "magenta": (255, 0, 255),
}
#: Black: hue-neutral, so anti-aliased edges only darken an object's colour, never shift its hue.
BACKGROUND: tuple[int, int, int] = (0, 0, 0)
COUNT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
INVERSE: dict[str, str] = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
#: Scene kinds, one per GenEval category.
KINDS: tuple[str, ...] = ("single_object", "two_objects", "counting", "colors", "position", "color_attr")
#: Stage-1 classes (class-conditional generation of single objects).
CLASS_NAMES: tuple[str, ...] = tuple(f"{c} {s}" for c in COLORS for s in SHAPES)
SPLITS: tuple[str, ...] = ("train", "heldout")
#: Share of scene space (by a hash of the objects) reserved for the held-out split.
HELDOUT_FRACTION = 0.1
#: GenEval's margin: an offset counts only beyond 0.1 x (sum of the two boxes' sizes).
POSITION_THRESHOLD = 0.1

_UNIT = 256  # coordinate grid: positions and sizes are multiples of 1/_UNIT of the canvas
#: Layout cells: an 8 x 8 grid, one token of the shipped 8 x 8 VQ grid each (4 px at 32 px). Every
#: object's box covers whole cells, so a given shape, colour and size always lands on the same
#: pixels inside its tokens: the VQ gives it the same few codes wherever it stands, and the small
#: transformer learns to place whole objects instead of inventing sub-token variations.
_CELL = 32
_GRID = _UNIT // _CELL
_INSET = 8  # the shape is drawn 1 px (at 32 px) inside its cell box: never touches a border or a neighbour
#: Box side in cells by object count (low, high): always 3 cells (10 px drawn at 32 px), so three
#: fit with a free cell between them, and each shape and colour is one fixed 3 x 3 block of tiles:
#: every tile of it (a circle's corner, a triangle's apex) can have a code of its own in the VQ.
#: A (low, high) table, not one constant, so that the draws (and the shipped model) stay reproducible.
_CELLS = {1: (3, 3), 2: (3, 3), 3: (3, 3)}
_GAP = _CELL + 2 * _INSET  # min gap between two drawn shapes (6 px at 32 px): one free cell between boxes
_CANVAS = 256  # supersampled drawing canvas, one pixel per grid step
_STREAMS = {"train": 0, "heldout": 1, "geneval": 2, "corpus": 3}


@dataclass(frozen=True)
class Obj:
    """One shape; ``cx, cy, size`` are its box centre and side as fractions of the canvas (y down).

    A triangle is upright and isosceles, with base and height both equal to ``size``.
    """

    shape: str
    color: str
    cx: float
    cy: float
    size: float

    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in canvas fractions."""
        h = self.size / 2
        return (self.cx - h, self.cy - h, self.cx + h, self.cy + h)

    @property
    def name(self) -> str:
        """'red circle'."""
        return f"{self.color} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """Objects on the black background; ``kind`` (one of KINDS) decides how the scene is described."""

    objects: tuple[Obj, ...]
    kind: str


def relative_position(box_a: Sequence[float], box_b: Sequence[float]) -> set[str]:
    """Relations of box A to box B, GenEval's rule: box-centre offset shrunk by a size margin, then
    a relation holds where its axis carries more than half of the offset's direction."""
    a = np.asarray(box_a, dtype=np.float64).reshape(2, 2)
    b = np.asarray(box_b, dtype=np.float64).reshape(2, 2)
    offset = a.mean(0) - b.mean(0)
    revised = np.maximum(np.abs(offset) - POSITION_THRESHOLD * ((a[1] - a[0]) + (b[1] - b[0])), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    rels = {"left of": dx < -0.5, "right of": dx > 0.5, "above": dy < -0.5, "below": dy > 0.5}
    return {r for r, holds in rels.items() if holds}


def _pick(rng: np.random.Generator, items: Sequence[Any], k: int | None = None) -> Any:
    """One item (k=None) or k distinct items of ``items``, drawn by ``rng``."""
    if k is None:
        return items[int(rng.integers(len(items)))]
    return [items[int(i)] for i in rng.choice(len(items), size=k, replace=False)]


def _attributes(rng: np.random.Generator, kind: str) -> list[tuple[str, str]]:
    """(shape, colour) of each object of a scene of ``kind``."""
    colors = list(COLORS)
    if kind in ("single_object", "colors"):
        return [(_pick(rng, SHAPES), _pick(rng, colors))]
    if kind == "two_objects":
        return [(s, _pick(rng, colors)) for s in _pick(rng, SHAPES, 2)]
    if kind == "counting":
        return [(_pick(rng, SHAPES), _pick(rng, colors))] * int(rng.integers(2, 4))
    if kind == "color_attr":
        return list(zip(_pick(rng, SHAPES, 2), _pick(rng, colors, 2)))
    pairs = [(s, c) for s in SHAPES for c in colors]  # position: two distinct (shape, colour)
    return _pick(rng, pairs, 2)


def _apart(a: Obj, b: Obj) -> bool:
    """Boxes separated by at least the gap along one axis."""
    reach = (a.size + b.size) / 2 + _GAP / _UNIT
    return abs(a.cx - b.cx) >= reach or abs(a.cy - b.cy) >= reach


def _clearly(a: Obj, b: Obj, rel: str) -> bool:
    """A is ``rel`` B and nothing else: separated along that axis, the other offset at most half."""
    horizontal = rel in ("left of", "right of")
    along, across = (a.cx - b.cx, a.cy - b.cy) if horizontal else (a.cy - b.cy, a.cx - b.cx)
    reach = (a.size + b.size) / 2 + _GAP / _UNIT
    return (abs(along) >= reach and abs(across) <= abs(along) / 2
            and relative_position(a.box(), b.box()) == {rel})


def _place(rng: np.random.Generator, attrs: list[tuple[str, str]], same_size: bool,
           relation: str | None) -> tuple[Obj, ...] | None:
    """Random cell-aligned, non-overlapping boxes inside the canvas (None if 200 tries fail)."""
    n = len(attrs)
    low, high = _CELLS[n]
    cells = np.broadcast_to(rng.integers(low, high + 1, size=1 if same_size else n), (n,))[:, None]
    for _ in range(200):
        corner = rng.integers(0, _GRID - cells + 1, size=(n, 2))
        centres = corner * _CELL + cells * _CELL // 2
        objs = [Obj(shape, color, int(cx) / _UNIT, int(cy) / _UNIT, (int(c) * _CELL - 2 * _INSET) / _UNIT)
                for (shape, color), (cx, cy), (c,) in zip(attrs, centres, cells)]
        if not all(_apart(a, b) for i, a in enumerate(objs) for b in objs[i + 1:]):
            continue
        if relation is None or _clearly(objs[0], objs[1], relation):
            return tuple(objs)
    return None


def sample_scene(rng: np.random.Generator, kind: str) -> Scene:
    """A random scene of ``kind``: objects on whole layout cells, 6 px apart (at 32 px), never overlapping.

    "counting" objects are identical (shape, colour, size); in "position" scenes objects[0] stands
    in exactly one clear relation to objects[1]; "color_attr" objects differ in shape and colour.
    """
    if kind not in KINDS:
        raise InputError(f"unknown scene kind {kind!r}; accepted kinds are {KINDS}")
    relation = _pick(rng, RELATIONS) if kind == "position" else None
    while True:
        objs = _place(rng, _attributes(rng, kind), kind == "counting", relation)
        if objs is not None:
            return Scene(objs, kind)


def render(scene: Scene, size: int = 32) -> np.ndarray:
    """The scene as a (size, size, 3) uint8 RGB image.

    Drawn without anti-aliasing on a 256 px canvas, then area-averaged down: edges are
    anti-aliased, yet on black every pixel is t x (its object's colour), so hue stays exact and
    only brightness ramps, which is what the detector and a small VQ codebook want. Supported
    sizes are 16, 32, 64 and 128 (at least 2x supersampling); 32 and 64 are the ones in use.
    """
    if not isinstance(size, (int, np.integer)) or size < 16 or size > _CANVAS // 2 or _CANVAS % size:
        raise InputError(f"render size must be 16, 32, 64 or 128 (32 or 64 in use), got {size!r}")
    canvas = np.full((_CANVAS, _CANVAS, 3), BACKGROUND, np.uint8)
    for o in scene.objects:
        x0, y0, x1, y1 = (int(round(v * _CANVAS)) for v in o.box())
        color = COLORS[o.color]
        if o.shape == "circle":
            cv2.circle(canvas, ((x0 + x1) // 2, (y0 + y1) // 2), (x1 - x0) // 2, color, -1, cv2.LINE_8)
        elif o.shape == "square":
            cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), color, -1, cv2.LINE_8)
        else:
            tri = np.array([[(x0 + x1) // 2, y0], [x0, y1 - 1], [x1 - 1, y1 - 1]], np.int32)
            cv2.fillPoly(canvas, [tri], color, cv2.LINE_8)
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)


def _req(o: Obj, count: int = 1, color: bool = True) -> dict[str, Any]:
    """A GenEval 'include' clause for object ``o``."""
    req: dict[str, Any] = {"class": o.shape, "count": count}
    if color:
        req["color"] = o.color
    return req


def describe(scene: Scene, rng: np.random.Generator) -> tuple[str, dict[str, Any]]:
    """(caption, spec): a caption by the scene's kind (template drawn by ``rng``) and the GenEval-style
    spec of exactly what the caption claims, e.g. "a blue square left of a green triangle"."""
    objs, kind = scene.objects, scene.kind
    spec: dict[str, Any] = {"tag": kind, "include": [], "exclude": []}
    if kind in ("single_object", "colors"):
        o = objs[0]
        with_color = kind == "colors"
        noun = o.name if with_color else o.shape
        text = _pick(rng, ("a {}", "one {}", "a single {}")).format(noun)
        spec["include"] = [_req(o, color=with_color)]
    elif kind == "counting":
        o, n = objs[0], len(objs)
        with_color = bool(rng.integers(2))
        noun = f"{o.name}s" if with_color else f"{o.shape}s"
        text = f"{COUNT_WORDS[n]} {noun}"
        spec["include"] = [_req(o, n, with_color)]
        spec["exclude"] = [_req(o, n + 1, with_color)]
    elif kind == "position":
        (a, b), rel = objs, relative_position(objs[0].box(), objs[1].box()).pop()
        if rng.integers(2):
            a, b, rel = b, a, INVERSE[rel]
        text = f"a {a.name} {rel} a {b.name}"
        spec["include"] = [_req(b), {**_req(a), "position": [rel, 0]}]
    else:  # two_objects, color_attr: two objects in either order
        with_color = kind == "color_attr"
        pair = list(objs) if rng.integers(2) else list(objs[::-1])
        text = " and ".join(f"a {o.name if with_color else o.shape}" for o in pair)
        spec["include"] = [_req(o, color=with_color) for o in pair]
    return text, spec


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """A compositional caption of the scene, e.g. "two red circles" (see ``describe``)."""
    return describe(scene, rng)[0]


def class_name(scene: Scene) -> str | None:
    """The stage-1 class ("red circle", one of CLASS_NAMES) of a one-object scene, else None."""
    return scene.objects[0].name if len(scene.objects) == 1 else None


def qa_pairs(scene: Scene) -> list[tuple[str, str]]:
    """Every question whose answer is unambiguous for this scene, with its short lower-case answer.

    Answers are a colour, a shape, a count word, "yes"/"no", or "a red circle" for "what is ..."
    questions; relation questions are asked only of "position" scenes, whose relation is clear.
    """
    objs = scene.objects
    shapes = Counter(o.shape for o in objs)
    present = {(o.color, o.shape) for o in objs}
    qa = [("How many objects are there?", COUNT_WORDS[len(objs)])]
    qa += [(f"How many {s}s are there?", COUNT_WORDS[shapes[s]]) for s in SHAPES]
    for s in SHAPES:
        colors = {o.color for o in objs if o.shape == s}
        if len(colors) == 1:
            verb, noun = ("is", s) if shapes[s] == 1 else ("are", f"{s}s")
            qa.append((f"What color {verb} the {noun}?", colors.pop()))
    for c in COLORS:
        of_color = [o.shape for o in objs if o.color == c]
        if len(set(of_color)) == 1:
            verb, noun = ("is", "object") if len(of_color) == 1 else ("are", "objects")
            qa.append((f"What shape {verb} the {c} {noun}?", of_color[0]))
    colors, asked = list(COLORS), set()
    for c, s in sorted(present, key=lambda p: (colors.index(p[0]), SHAPES.index(p[1]))):
        other_c = next(x for x in colors[colors.index(c) + 1:] + colors if (x, s) not in present)
        other_s = next(x for x in SHAPES[SHAPES.index(s) + 1:] + SHAPES if (c, x) not in present)
        for cc, ss, answer in ((c, s, "yes"), (other_c, s, "no"), (c, other_s, "no")):
            if (cc, ss) not in asked:
                asked.add((cc, ss))
                qa.append((f"Is there a {cc} {ss}?", answer))
    if scene.kind == "position":
        a, b = objs
        rel = relative_position(a.box(), b.box()).pop()
        same_shape = a.shape == b.shape
        ref_a, ref_b = (a.name, b.name) if same_shape else (a.shape, b.shape)
        qa += [
            (f"What is {rel} the {ref_b}?", f"a {a.name}"),
            (f"What is {INVERSE[rel]} the {ref_a}?", f"a {b.name}"),
            (f"Is the {a.name} {rel} the {b.name}?", "yes"),
            (f"Is the {a.name} {INVERSE[rel]} the {b.name}?", "no"),
        ]
    return qa


def _scene_key(scene: Scene) -> bytes:
    """Canonical bytes of what is drawn (kind excluded: it changes the text, not the image)."""
    objs = sorted((o.shape, o.color, round(o.cx * _UNIT), round(o.cy * _UNIT), round(o.size * _UNIT))
                  for o in scene.objects)
    return repr(objs).encode()


def scene_split(scene: Scene, holdout_pairs: Sequence[tuple[str, str]] = ()) -> str:
    """"heldout" for a fixed HELDOUT_FRACTION of scene space (by a hash of the objects) and for any
    scene with a (colour, shape) pair in ``holdout_pairs`` (compositional held-out), else "train"."""
    held = {tuple(p) for p in holdout_pairs}
    if any((o.color, o.shape) in held for o in scene.objects):
        return "heldout"
    digest = int.from_bytes(hashlib.blake2b(_scene_key(scene), digest_size=8).digest(), "little")
    return "heldout" if digest < HELDOUT_FRACTION * 2**64 else "train"


def make_record(seed: int, split: str, index: int, size: int = 32,
                holdout_pairs: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Record ``index`` of a split: {image, caption, spec, class_name, qa, scene}.

    Random access (each record has its own seed stream), so data loaders and DDP ranks can shard
    freely; kinds cycle through KINDS by index. Train and held-out never share a scene (image),
    whatever the seeds, because ``scene_split`` partitions scene space.
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {SPLITS}, got {split!r}")
    bad = [p for p in holdout_pairs if tuple(p) not in {(c, s) for c in COLORS for s in SHAPES}]
    if bad:
        raise InputError(f"holdout_pairs must be (colour, shape) pairs of {tuple(COLORS)} x {SHAPES}, got {bad}")
    rng = np.random.default_rng([seed, _STREAMS[split], index])
    kind = KINDS[index % len(KINDS)]
    for _ in range(10_000):
        scene = sample_scene(rng, kind)
        if scene_split(scene, holdout_pairs) == split:
            break
    else:
        raise InputError(f"holdout_pairs {list(holdout_pairs)} leave no {split} scene of kind {kind!r}")
    text, spec = describe(scene, rng)
    return {"image": render(scene, size), "caption": text, "spec": spec,
            "class_name": class_name(scene), "qa": qa_pairs(scene), "scene": scene}


def make_split(seed: int, n: int, split: str = "train", size: int = 32,
               holdout_pairs: Sequence[tuple[str, str]] = ()) -> list[dict[str, Any]]:
    """Records 0..n-1 of ``split`` (see ``make_record``); same arguments -> identical bytes."""
    return [make_record(seed, split, i, size, holdout_pairs) for i in range(n)]


def geneval_prompts(seed: int, n_per_category: int) -> list[tuple[str, str, dict[str, Any]]]:
    """Mini-GenEval prompts: (category, prompt, spec), ``n_per_category`` for each of KINDS.

    Drawn from their own seed stream with the training templates; with only 3 shapes and 6 colours
    some prompts repeat (as GenEval samples several images per prompt).
    """
    rng = np.random.default_rng([seed, _STREAMS["geneval"]])
    out = []
    for kind in KINDS:
        for _ in range(n_per_category):
            prompt, spec = describe(sample_scene(rng, kind), rng)
            out.append((kind, prompt, spec))
    return out


def text_corpus(seed: int, n: int) -> Iterator[str]:
    """Captions, questions and answers of ``n`` scenes (kinds in turn), for training a tokenizer."""
    rng = np.random.default_rng([seed, _STREAMS["corpus"]])
    for i in range(n):
        scene = sample_scene(rng, KINDS[i % len(KINDS)])
        yield caption(scene, rng)
        for question, answer in qa_pairs(scene):
            yield question
            yield answer
