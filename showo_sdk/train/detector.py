"""Mini-GenEval judge: an OpenCV detector of our coloured shapes and GenEval's checking rules.

``detect`` labels each pixel with the nearest of the six palette hues (a channel is "on" when it
reaches half the pixel's max, which is nearest-hue for the RGB cube's corners), splits each colour
into connected components, and classifies every component by fitting an upright circle, square
and triangle to the moments of its coverage (brightness / peak) and keeping the template that
overlaps it best. Coverage keeps the sub-pixel edges that a binary mask loses, and its mass and
centroid do not move under blur, which is why this beats vertex counting on 8 px shapes.
``judge`` then applies GenEval's rules to a spec made by ``showo_sdk.train.data.describe`` or
``geneval_prompts``. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from ..errors import InputError
from .data import COLORS, RELATIONS, SHAPES, relative_position

#: Palette colour of each 3-bit "on channels" code (R=4, G=2, B=1); 7 (grey/white) is no colour.
_CODE_TO_COLOR = {(r > 127) * 4 + (g > 127) * 2 + (b > 127): name for name, (r, g, b) in COLORS.items()}
_V_MIN = 64  # a pixel whose brightest channel is below this is background
_SUB = 4  # template supersampling per pixel axis
_PAD = 2  # pixels of margin around a component when comparing it with a template


@dataclass(frozen=True)
class Detection:
    """A found object; ``cx, cy, width, height`` (its fitted box) and ``area`` (its pixels) are
    fractions of the image; ``score`` is the IoU of the best template (1 = perfect fit)."""

    shape: str
    color: str
    cx: float
    cy: float
    width: float
    height: float
    area: float
    score: float

    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in image fractions."""
        return (self.cx - self.width / 2, self.cy - self.height / 2,
                self.cx + self.width / 2, self.cy + self.height / 2)


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InputError(f"image must be a uint8 (H, W, 3) RGB array, got {got}")
    if min(image.shape[:2]) < 8:
        raise InputError(f"image must be at least 8x8 pixels, got {image.shape[:2]}")
    return image


# Each hypothesis maps the mask's centroid (mx, my) and standard deviations (sx, sy) to the box
# (cx, cy, w, h) of that shape with those moments, and tests points (u, v) in box units [-1/2, 1/2].
_Fit = tuple[Callable[[float, float, float, float], tuple[float, float, float, float]],
             Callable[[np.ndarray, np.ndarray], np.ndarray]]
_HYPOTHESES: dict[str, _Fit] = {
    # ellipse: var = (w/2)^2 / 4
    "circle": (lambda mx, my, sx, sy: (mx, my, 4 * sx, 4 * sy), lambda u, v: u * u + v * v <= 0.25),
    # rectangle: var = w^2 / 12
    "square": (lambda mx, my, sx, sy: (mx, my, 12 ** 0.5 * sx, 12 ** 0.5 * sy),
               lambda u, v: (np.abs(u) <= 0.5) & (np.abs(v) <= 0.5)),
    # upright triangle: var_x = w^2 / 24, var_y = h^2 / 18, centroid 2/3 of the way down
    "triangle": (lambda mx, my, sx, sy: (mx, my - 18 ** 0.5 * sy / 6, 24 ** 0.5 * sx, 18 ** 0.5 * sy),
                 lambda u, v: (v <= 0.5) & (np.abs(u) <= (v + 0.5) / 2)),
}


def _classify(mask: np.ndarray) -> tuple[str, float, tuple[float, float, float, float]]:
    """(shape, soft IoU, box in mask pixels) of the template that best fits a coverage mask in [0, 1]."""
    h, w = mask.shape
    mass = mask.sum()
    xs, ys = np.arange(w) + 0.5, np.arange(h) + 0.5
    col, row = mask.sum(0) / mass, mask.sum(1) / mass
    mx, my = col @ xs, row @ ys
    sx = (col @ (xs - mx) ** 2 + 1 / 12) ** 0.5  # + the variance inside a filled pixel
    sy = (row @ (ys - my) ** 2 + 1 / 12) ** 0.5
    grid = (np.arange(_SUB) + 0.5) / _SUB
    px = (np.arange(w)[:, None] + grid).ravel()  # sample points, pixel units
    py = (np.arange(h)[:, None] + grid).ravel()
    best = ("", -1.0, (0.0, 0.0, 0.0, 0.0))
    for shape, (fit, inside) in _HYPOTHESES.items():
        cx, cy, bw, bh = fit(mx, my, sx, sy)
        hits = inside(((px - cx) / bw)[None, :], ((py - cy) / bh)[:, None])
        cover = hits.reshape(h, _SUB, w, _SUB).mean(axis=(1, 3))
        iou = np.minimum(cover, mask).sum() / np.maximum(cover, mask).sum()
        if iou > best[1]:
            best = (shape, float(iou), (cx, cy, bw, bh))
    return best


def detect(image: np.ndarray, min_area: float = 0.01, min_score: float = 0.5) -> list[Detection]:
    """Objects in a uint8 RGB image on a dark background, largest first.

    ``min_area`` (fraction of the image) drops specks; ``min_score`` drops blobs no template fits.
    """
    img = _check_image(image)
    H, W = img.shape[:2]
    rgb = img.astype(np.int16)
    vmax = rgb.max(axis=-1)
    on = 2 * rgb >= vmax[..., None]
    code = on[..., 0] * 4 + on[..., 1] * 2 + on[..., 2]
    fg = vmax >= _V_MIN
    found = []
    for value, color in _CODE_TO_COLOR.items():
        n, labels, stats, _ = cv2.connectedComponentsWithStats((fg & (code == value)).astype(np.uint8), connectivity=8)
        for i in range(1, n):
            x, y, w, h, area = stats[i]
            if area < min_area * H * W:
                continue
            y0, x0 = max(y - _PAD, 0), max(x - _PAD, 0)
            region = labels[y0:y + h + _PAD, x0:x + w + _PAD] == i
            v = vmax[y0:y + h + _PAD, x0:x + w + _PAD]
            mask = np.where(region, np.minimum(v / v[region].max(), 1.0), 0.0)  # coverage
            if mask.sum() < min_area * H * W:
                continue
            shape, score, (cx, cy, bw, bh) = _classify(mask)
            if score >= min_score:
                found.append(Detection(shape, color, float(x0 + cx) / W, float(y0 + cy) / H, float(bw) / W,
                                       float(bh) / H, float(mask.sum()) / (H * W), score))
    return sorted(found, key=lambda d: -d.area)


def _check_spec(spec: Any) -> None:
    """Raise InputError unless ``spec`` is a well-formed GenEval-style spec over our vocabulary."""
    if not isinstance(spec, dict) or not isinstance(spec.get("include"), (list, tuple)) or not spec["include"]:
        raise InputError(f"spec must be a dict with a non-empty 'include' list, got {spec!r}")
    for i, req in enumerate(spec["include"]):
        if not isinstance(req, dict) or req.get("class") not in SHAPES:
            raise InputError(f"include[{i}]: 'class' must be one of {SHAPES}, got {req!r}")
        if req.get("color", "red") not in COLORS or not isinstance(req.get("count"), int) or req["count"] < 1:
            raise InputError(f"include[{i}]: needs count >= 1 and a color in {tuple(COLORS)}, got {req!r}")
        if "position" in req:
            pos = req["position"]
            if not (isinstance(pos, (list, tuple)) and len(pos) == 2 and pos[0] in RELATIONS
                    and isinstance(pos[1], int) and 0 <= pos[1] < i):
                raise InputError(f"include[{i}]: position must be [a relation in {RELATIONS}, an earlier "
                                 f"include index], got {req!r}")
    for i, req in enumerate(spec.get("exclude", [])):
        if not isinstance(req, dict) or req.get("class") not in SHAPES or not isinstance(req.get("count"), int):
            raise InputError(f"exclude[{i}]: needs a 'class' in {SHAPES} and an int 'count', got {req!r}")


def _matching(detections: list[Detection], req: dict[str, Any]) -> list[Detection]:
    return [d for d in detections if d.shape == req["class"] and req.get("color", d.color) == d.color]


def _name(req: dict[str, Any]) -> str:
    return f"{req['color']} {req['class']}" if "color" in req else req["class"]


#: Why an image fails a spec (``judge``'s ``details["modes"]``): a clause lacks objects, the objects
#: stand in the wrong relation, or an 'exclude' clause is met (more objects than asked).
FAILURE_MODES: tuple[str, ...] = ("missing", "position", "extra")


def _failures(detections: list[Detection], spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(mode, reason) for every rule of ``spec`` the detections break (see ``check``); [] when correct."""
    _check_spec(spec)
    failures: list[tuple[str, str]] = []
    groups: list[list[Detection] | None] = []
    for req in spec["include"]:
        found = _matching(detections, req)[: req["count"]]
        ok = len(found) >= req["count"]
        if not ok:
            failures.append(("missing", f"expected {_name(req)} >= {req['count']}, found {len(found)}"))
        elif "position" in req:
            rel, target = req["position"]
            if groups[target] is None:
                ok = False
                failures.append(("missing", f"no target for {_name(req)} to be {rel}"))
            elif any(rel not in relative_position(d.box(), t.box()) for d in found for t in groups[target]):
                ok = False
                failures.append(("position", f"expected {_name(req)} {rel} {_name(spec['include'][target])}"))
        groups.append(found if ok else None)
    for req in spec.get("exclude", []):
        n = len(_matching(detections, req))
        if n >= req["count"]:
            failures.append(("extra", f"expected {_name(req)} < {req['count']}, found {n}"))
    return failures


def check(detections: list[Detection], spec: dict[str, Any]) -> tuple[bool, list[str]]:
    """(correct, reasons) by GenEval's rules: every 'include' clause needs ``count`` matching objects
    (of its colour, if given; the largest ``count`` are used) and, with a position, each of them must
    stand in that relation to every object of the earlier clause; an 'exclude' clause fails when
    ``count`` or more matching objects exist. Unlike GenEval (which checks the colour of the most
    confident objects only), any object of the stated shape and colour satisfies a clause.
    """
    failures = _failures(detections, spec)
    return not failures, [reason for _, reason in failures]


def judge(image: np.ndarray, spec: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """(correct, details) for one generated image against one spec; details holds the detections,
    the reasons for a failure and their ``modes`` (a set of FAILURE_MODES)."""
    detections = detect(image)
    failures = _failures(detections, spec)
    return not failures, {"detections": detections, "reasons": [r for _, r in failures],
                          "modes": {m for m, _ in failures}}
