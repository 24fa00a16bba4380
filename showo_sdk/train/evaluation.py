"""Evaluation in the paper's style, in miniature: mini-GenEval (OpenCV detector), VQA accuracy, VQ PSNR.

Scoring works on plain callables, so the same code judges the torch reference and the exported
bundle through ``showo_sdk.Runtime``:
``generate_fn(prompts) -> list of uint8 (H, W, 3)`` and ``answer_fn(images, questions) -> list[str]``.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .data import KINDS, geneval_prompts
from .detector import FAILURE_MODES, judge

GenerateFn = Callable[[list[str]], list[np.ndarray]]
AnswerFn = Callable[[list[np.ndarray], list[str]], list[str]]


def normalize_answer(text: str) -> str:
    """Lower-case, strip spaces and a trailing full stop (exact match after this, as VQA scoring)."""
    return " ".join(text.strip().lower().rstrip(".").split())


def mini_geneval(generate_fn: GenerateFn, seed: int = 0, n_per_category: int = 20,
                 batch_size: int = 8) -> dict[str, Any]:
    """Per-category and overall accuracy (overall = mean of the six categories, as GenEval), and
    ``failures``: per category, how many images failed by each of detector.FAILURE_MODES (an image
    can fail in more than one way), so "counting 0.48" says whether objects were missing or extra."""
    prompts = geneval_prompts(seed, n_per_category)
    correct: dict[str, list[bool]] = defaultdict(list)
    failures = {k: dict.fromkeys(FAILURE_MODES, 0) for k in KINDS}
    samples = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        images = generate_fn([p for _, p, _ in chunk])
        for (kind, prompt, spec), image in zip(chunk, images):
            ok, details = judge(image, spec)
            correct[kind].append(bool(ok))
            for mode in details["modes"]:
                failures[kind][mode] += 1
            samples.append((kind, prompt, image, bool(ok)))
    per = {k: float(np.mean(correct[k])) for k in KINDS}
    return {"overall": float(np.mean(list(per.values()))), "per_category": per, "failures": failures,
            "n": len(prompts), "samples": samples}


#: Question kinds of ``data.qa_pairs`` by their opening words (relation questions name a relation).
_QUESTION_KINDS = (("how many", "count"), ("what color", "color"), ("what shape", "shape"),
                   ("is there", "exists"), ("what is", "relation"), ("is the", "relation"))


def question_kind(question: str) -> str:
    """'count', 'color', 'shape', 'exists' or 'relation' for a question of ``data.qa_pairs``; else 'other'."""
    q = question.strip().lower()
    return next((kind for start, kind in _QUESTION_KINDS if q.startswith(start)), "other")


def vqa_accuracy(answer_fn: AnswerFn, records: Sequence[dict[str, Any]], batch_size: int = 16,
                 max_questions_per_image: int = 2, seed: int = 0) -> dict[str, Any]:
    """Exact-match accuracy of normalised answers over held-out (image, question) pairs, overall and
    per question kind (``per_kind``: {kind: {"accuracy", "n"}}), so a weak kind is not hidden."""
    rng = np.random.default_rng(seed)
    pairs = []
    for rec in records:
        qa = rec["qa"]
        for i in rng.permutation(len(qa))[:max_questions_per_image]:
            pairs.append((rec["image"], qa[i][0], qa[i][1]))
    hits = []
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        answers = answer_fn([p[0] for p in chunk], [p[1] for p in chunk])
        for a, p in zip(answers, chunk):
            hits.append(normalize_answer(a) == normalize_answer(p[2]))
            by_kind[question_kind(p[1])].append(hits[-1])
    per_kind = {k: {"accuracy": float(np.mean(v)), "n": len(v)} for k, v in sorted(by_kind.items())}
    return {"accuracy": float(np.mean(hits)) if hits else 0.0, "n": len(hits), "per_kind": per_kind}


def save_grid(samples: Sequence[tuple[str, str, np.ndarray, bool]], path: str | os.PathLike,
              columns: int = 6, scale: int = 4) -> None:
    """A PNG grid of generated images, each with its prompt (and pass/fail) written under it."""
    import cv2

    from ..utils.atomic import atomic_path

    cells = []
    for kind, prompt, image, ok in samples:
        img = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        h, w = img.shape[:2]
        cell = np.full((h + 30, max(w, 160), 3), 255, np.uint8)
        cell[:h, :w] = img
        colour = (0, 128, 0) if ok else (200, 0, 0)
        words, line, lines = prompt.split(), "", []
        for word in words:
            if len(line) + len(word) > 26:
                lines.append(line)
                line = ""
            line = f"{line} {word}".strip()
        lines.append(line)
        for i, text in enumerate(lines[:2]):
            cv2.putText(cell, text, (2, h + 12 + 12 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.33, colour, 1, cv2.LINE_AA)
        cells.append(cell)
    width = max(c.shape[1] for c in cells)
    height = max(c.shape[0] for c in cells)
    rows = []
    for start in range(0, len(cells), columns):
        row = [np.pad(c, ((0, height - c.shape[0]), (0, width - c.shape[1]), (0, 0)), constant_values=255)
               for c in cells[start:start + columns]]
        row += [np.full((height, width, 3), 255, np.uint8)] * (columns - len(row))
        rows.append(np.concatenate(row, axis=1))
    grid = np.concatenate(rows, axis=0)
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        tmp.write_bytes(buf.tobytes())


def write_report(results: dict[str, Any], path: str | os.PathLike) -> None:
    """Write evaluation results as JSON (samples, which hold images, are left out)."""
    from ..utils.atomic import atomic_write_text

    clean = {k: ({kk: vv for kk, vv in v.items() if kk != "samples"} if isinstance(v, dict) else v)
             for k, v in results.items()}
    atomic_write_text(Path(path), json.dumps(clean, indent=2, sort_keys=True) + "\n")
