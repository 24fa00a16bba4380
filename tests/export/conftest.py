"""Session fixtures for the exporter tests, over tests/conftest.py's ``tiny`` checkpoint and its fp32 bundle.

The fp32 bundle is the one tests/runtime and tests/test_cli.py use (exported once per session
through the Python API, with TensorRT engines where TensorRT and a GPU exist); the int8 bundle is
exported here through the CLI entry point.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")


@contextlib.contextmanager
def one_torch_thread():
    """Tiny tensors run far faster on one thread, and a loaded 2-core machine makes extra threads spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _single_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def bundle_fp32(tiny) -> Path:
    """The shared fp32 bundle (exported with --tensorrt-auto)."""
    return tiny.bundle


@pytest.fixture(scope="session")
def bundle_int8(tiny, tmp_path_factory) -> tuple[Path, str]:
    """The int8 bundle, exported through the CLI entry point (in-process), and the table it printed."""
    from showo_sdk.export.cli import main

    out = tmp_path_factory.mktemp("bundle_int8") / "engine.plan"
    stdout = io.StringIO()
    with one_torch_thread(), contextlib.redirect_stdout(stdout):
        code = main([str(tiny.checkpoint), "--out", str(out), "--precision", "int8", "--quiet"])
    assert code == 0, stdout.getvalue()
    return out, stdout.getvalue()


@pytest.fixture(scope="session")
def random_feed():
    """``feed(graph, rng)``: random inputs for an ORT graph at batch 2 and 5 columns for every other dynamic axis."""
    import numpy as np

    def feed(graph, rng: np.random.Generator) -> dict[str, np.ndarray]:
        out = {}
        for t in graph.session.get_inputs():
            shape = [2 if d == "batch" else (5 if isinstance(d, str) or d is None else d) for d in t.shape]
            if t.type == "tensor(int64)":
                out[t.name] = np.ones(shape, np.int64) if "mask" in t.name else rng.integers(0, 40, size=shape)
                if t.name == "position_ids":
                    out[t.name] = np.full(shape, 30, np.int64)
            else:
                out[t.name] = rng.standard_normal(shape).astype(np.float32)
        return out

    return feed
