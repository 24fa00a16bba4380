"""ONNX Runtime fusions of the int8 graphs: every pattern found, and the same numbers as the unfused graph."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from showo_sdk.export.ort_fusion import fuse_for_ort
from showo_sdk.runtime.backends import Graphs
from showo_sdk.runtime.bundle import TRANSFORMER_GRAPHS


def _feed(graph, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs at batch 2 and 5 columns for every dynamic axis but the batch."""
    feed = {}
    for t in graph.session.get_inputs():
        shape = [2 if d == "batch" else (5 if isinstance(d, str) or d is None else d) for d in t.shape]
        if t.type == "tensor(int64)":
            feed[t.name] = np.ones(shape, np.int64) if "mask" in t.name else rng.integers(0, 40, size=shape)
            if t.name == "position_ids":
                feed[t.name] = np.full(shape, 30, np.int64)
        else:
            feed[t.name] = rng.standard_normal(shape).astype(np.float32)
    return feed


@pytest.mark.parametrize("name", TRANSFORMER_GRAPHS)
def test_fused_fp32_graph_computes_what_the_graph_computes(bundle_fp32, tmp_path, name):
    """On an fp32 graph (no quantization noise) the GELU rewrite changes only rounding; norms stay unfused."""
    for f in bundle_fp32.iterdir():
        if f.name.endswith((".onnx", ".data")):
            shutil.copy(f, tmp_path / f.name)
    model = onnx.load(str(tmp_path / f"{name}.onnx"), load_external_data=False)
    layers = sum(n.op_type == "Tanh" for n in model.graph.node)
    counts = fuse_for_ort(model)
    assert layers >= 1 and counts["FastGelu"] == layers
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"Tanh", "Pow", "SkipLayerNormalization"} and {"FastGelu", "LayerNormalization"} <= ops
    read = {i for n in model.graph.node for i in n.input}
    assert all(t.name in read for t in model.graph.initializer)  # the fused chains' constants are gone
    onnx.save_model(model, str(tmp_path / f"{name}.fused.onnx"))
    onnx.checker.check_model(str(tmp_path / f"{name}.fused.onnx"), full_check=True)
    graphs = Graphs.from_paths({"plain": tmp_path / f"{name}.onnx", "fused": tmp_path / f"{name}.fused.onnx"})
    feed = _feed(graphs["plain"], np.random.default_rng(0))
    plain, fused = graphs["plain"].run(feed), graphs["fused"].run(feed)
    assert plain.keys() == fused.keys()
    for k in plain:
        np.testing.assert_allclose(fused[k], plain[k], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TRANSFORMER_GRAPHS)
def test_int8_graphs_carry_the_fused_operators(bundle_int8, name):
    model = onnx.load(str(bundle_int8[0] / f"{name}.int8.onnx"), load_external_data=False)
    ops = [n.op_type for n in model.graph.node]
    assert "FastGelu" in ops and "Tanh" not in ops and "SkipLayerNormalization" not in ops  # slow on ORT CPU
    products = [n for n in model.graph.node if n.op_type == "DynamicQuantizeMatMul"]
    carriers = {n.input[0] for n in model.graph.node if n.op_type == "FastGelu" and len(n.input) == 2}
    # every bias rides inside its product or inside the fused operator that reads the product
    assert products and all((len(n.input) == 5 and n.input[4]) or n.output[0] in carriers for n in products)
    assert not [n for n in model.graph.node if n.op_type == "Add" and set(n.input) & {p.output[0] for p in products}
                and any(i in {t.name for t in model.graph.initializer} for i in n.input)]


def test_nothing_to_fuse_leaves_the_graph_alone():
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Tanh", ["x"], ["y"])], "g", [x], [y])
    model = onnx.helper.make_model(graph)
    assert not fuse_for_ort(model)
    assert [n.op_type for n in model.graph.node] == ["Tanh"]
