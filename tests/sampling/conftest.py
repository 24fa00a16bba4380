"""Fixtures for the sampler tests: the built extension and canvas-dependent step functions."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pytest

from showo_sdk.sampling import HAVE_EXTENSION


@pytest.fixture(scope="session")
def ext():
    """The C++ extension; its absence fails the run under CI and skips the test elsewhere."""
    if not HAVE_EXTENSION:
        message = "showo_sdk._maskgit is not built (pip install -e .)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from showo_sdk import _maskgit

    return _maskgit


def make_step_fn(batch: int, n: int, k: int, guided: bool, seed: int = 0, scale: float = 3.0,
                 record: list[np.ndarray] | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A fake model: fixed random logits plus a bonus for the left neighbour's current code.

    The bonus makes each step's logits depend on the canvas, so the loop's feedback is exercised.
    Every canvas it receives is appended to ``record`` when given.
    """
    rng = np.random.default_rng(seed)
    rows = 2 * batch if guided else batch
    table = (rng.standard_normal((rows, n, k)) * scale).astype(np.float32)

    def step_fn(canvas: np.ndarray) -> np.ndarray:
        if record is not None:
            record.append(canvas.copy())
        out = table.copy()
        left = np.roll(canvas, 1, axis=1)
        b, i = np.nonzero(left < k)
        for half in range(rows // batch):
            out[half * batch + b, i, left[b, i]] += np.float32(2.0)
        return out

    return step_fn


@pytest.fixture(scope="session")
def step_fn_factory():
    return make_step_fn
