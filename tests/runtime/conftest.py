"""Session fixtures of the runtime tests, over tests/conftest.py's ``tiny`` (one tiny checkpoint exported once)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def rt(tiny):
    """One ORT CPU Runtime shared by the tests (as an application would share it)."""
    from showo_sdk import Runtime

    return Runtime(tiny.bundle, backend="ort-cpu", num_threads=2)


@pytest.fixture(scope="session")
def picture() -> np.ndarray:
    """A 64x64 RGB test picture: a red disc on black, and a blue square."""
    img = np.zeros((64, 64, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:64, :64]
    img[(yy - 32) ** 2 + (xx - 18) ** 2 < 100] = (255, 0, 0)
    img[22:42, 36:56] = (0, 0, 255)
    return img
