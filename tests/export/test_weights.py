"""export.weights: graphs' large initializers move into one shared file graph by graph, each tensor once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.common import ExportError, graph_files
from export.weights import WeightStore


def _graph(path: Path, weights: dict[str, np.ndarray]) -> None:
    """x (1, 64) -> x @ w1 @ w2 ... saved with each graph's own external data file (``<name>.data``)."""
    nodes, prev = [], "x"
    for i, name in enumerate(weights):
        nodes.append(helper.make_node("MatMul", [prev, name], [f"h{i}"]))
        prev = f"h{i}"
    graph = helper.make_graph(nodes, path.stem, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 64])],
                              [numpy_helper.from_array(w, n) for n, w in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save_model(model, str(path), save_as_external_data=True, location=f"{path.name}.data", size_threshold=0)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_graphs_join_one_file_as_they_are_added(tmp_path):
    rng = np.random.default_rng(0)
    shared = {"w_shared": rng.standard_normal((64, 64)).astype(np.float32)}
    _graph(tmp_path / "a.onnx", {**shared, "w_a": rng.standard_normal((64, 64)).astype(np.float32)})
    _graph(tmp_path / "b.onnx", {**shared})
    x = rng.standard_normal((1, 64)).astype(np.float32)
    want = {n: _run(tmp_path / f"{n}.onnx", x) for n in "ab"}

    store = WeightStore(tmp_path, "transformer.data")
    store.add(tmp_path / "a.onnx")
    assert not (tmp_path / "a.onnx.data").exists() and (tmp_path / "b.onnx.data").exists()  # b not yet moved
    assert (tmp_path / "transformer.data").stat().st_size >= 2 * 64 * 64 * 4
    store.add(tmp_path / "b.onnx")
    assert not (tmp_path / "b.onnx.data").exists()
    sizes = store.close()
    assert sizes == {"referenced": 3 * 64 * 64 * 4, "stored": 2 * 64 * 64 * 4}  # w_shared stored once
    for n in "ab":
        assert graph_files(tmp_path / f"{n}.onnx")[1:] == [tmp_path / "transformer.data"]
        assert np.array_equal(_run(tmp_path / f"{n}.onnx", x), want[n])


def test_refusals_and_a_single_graph(tmp_path):
    rng = np.random.default_rng(1)
    w = {"w": rng.standard_normal((64, 64)).astype(np.float32)}
    _graph(tmp_path / "a.onnx", w)
    (tmp_path / "other").mkdir()
    _graph(tmp_path / "other" / "b.onnx", w)
    store = WeightStore(tmp_path, "shared.data")
    with pytest.raises(ExportError, match="graphs must lie in"):
        store.add(tmp_path / "other" / "b.onnx")
    with pytest.raises(ExportError, match="no graph was added"):
        store.close()
    with pytest.raises(ExportError, match="already a.onnx's data file"):
        WeightStore(tmp_path, "a.onnx.data").add(tmp_path / "a.onnx")
    assert (tmp_path / "a.onnx.data").stat().st_size == 64 * 64 * 4  # refused before anything was written
    store = WeightStore(tmp_path, "t.data")
    store.add(tmp_path / "a.onnx")
    assert store.close() == {"referenced": 64 * 64 * 4, "stored": 64 * 64 * 4}
