"""ONNX Runtime fusions of the int8 graphs: every pattern found, and the same numbers as the unfused graph."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from showo_sdk.export.ort_fusion import fuse_for_ort
from showo_sdk.runtime.backends import Graphs
from showo_sdk.runtime.bundle import TRANSFORMER_GRAPHS


@pytest.mark.parametrize("name", TRANSFORMER_GRAPHS)
def test_fused_fp32_graph_computes_what_the_graph_computes(bundle_fp32, tmp_path, name, random_feed):
    """Our fp32 graphs (opset 20) already carry the standard tanh Gelu; the pass leaves their numbers alone."""
    for f in bundle_fp32.iterdir():
        if f.name.endswith((".onnx", ".data")):
            shutil.copy(f, tmp_path / f.name)
    model = onnx.load(str(tmp_path / f"{name}.onnx"), load_external_data=False)
    gelus = [n for n in model.graph.node if n.op_type == "Gelu"]
    assert gelus and all(onnx.helper.get_attribute_value(a) == b"tanh" for n in gelus for a in n.attribute
                         if a.name == "approximate")
    assert not {"Tanh", "Pow"} & {n.op_type for n in model.graph.node}  # no decomposed GELU left to fuse
    fuse_for_ort(model)
    assert "SkipLayerNormalization" not in {n.op_type for n in model.graph.node}  # slow on ORT CPU: never written
    onnx.save_model(model, str(tmp_path / f"{name}.fused.onnx"))
    onnx.checker.check_model(str(tmp_path / f"{name}.fused.onnx"), full_check=True)
    graphs = Graphs.from_paths({"plain": tmp_path / f"{name}.onnx", "fused": tmp_path / f"{name}.fused.onnx"})
    feed = random_feed(graphs["plain"], np.random.default_rng(0))
    plain, fused = graphs["plain"].run(feed), graphs["fused"].run(feed)
    assert plain.keys() == fused.keys()
    for k in plain:
        np.testing.assert_allclose(fused[k], plain[k], atol=1e-5, rtol=1e-5)


def _decomposed_gelu_graph() -> onnx.ModelProto:
    """``y = gelu_tanh(x @ w + bias)`` written out in Pow/Mul/Add/Tanh, as opset-18 exports wrote it."""
    h, nph = onnx.helper, onnx.numpy_helper
    rng = np.random.default_rng(0)
    inits = [nph.from_array(rng.standard_normal((8, 16)).astype(np.float32), "w"),
             nph.from_array(rng.standard_normal(16).astype(np.float32), "bias")]
    inits += [nph.from_array(np.array(v, np.float32), k) for k, v in
              {"three": 3.0, "cubic": 0.044715, "scale": 0.7978845608028654, "one": 1.0, "half": 0.5}.items()]
    nodes = [h.make_node("MatMul", ["x", "w"], ["mm"]), h.make_node("Add", ["mm", "bias"], ["z"]),
             h.make_node("Pow", ["z", "three"], ["p"]), h.make_node("Mul", ["p", "cubic"], ["m"]),
             h.make_node("Add", ["z", "m"], ["i"]), h.make_node("Mul", ["i", "scale"], ["s"]),
             h.make_node("Tanh", ["s"], ["t"]), h.make_node("Add", ["t", "one"], ["o"]),
             h.make_node("Mul", ["o", "half"], ["hh"]), h.make_node("Mul", ["z", "hh"], ["y"])]
    graph = h.make_graph(nodes, "gelu", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 8])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 16])], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 18)])


def test_decomposed_tanh_gelu_becomes_fast_gelu(tmp_path):
    """Graphs exported at opset 18 spell GELU out; the pass makes it one FastGelu with the bias inside."""
    model = _decomposed_gelu_graph()
    onnx.save_model(model, str(tmp_path / "plain.onnx"))
    counts = fuse_for_ort(model)
    assert counts["FastGelu"] == 1
    assert [n.op_type for n in model.graph.node] == ["MatMul", "FastGelu"]
    assert len(model.graph.node[1].input) == 2  # (x @ w, bias): the bias Add went inside
    assert {t.name for t in model.graph.initializer} == {"w", "bias"}  # the chain's scalars are gone
    onnx.save_model(model, str(tmp_path / "fused.onnx"))
    graphs = Graphs.from_paths({"plain": tmp_path / "plain.onnx", "fused": tmp_path / "fused.onnx"})
    x = np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)
    np.testing.assert_allclose(graphs["fused"].run({"x": x})["y"], graphs["plain"].run({"x": x})["y"],
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TRANSFORMER_GRAPHS)
def test_int8_graphs_carry_the_fused_operators(bundle_int8, name):
    model = onnx.load(str(bundle_int8[0] / f"{name}.int8.onnx"), load_external_data=False)
    ops = [n.op_type for n in model.graph.node]
    assert "Gelu" in ops and "Tanh" not in ops and "SkipLayerNormalization" not in ops  # slow on ORT CPU
    products = [n for n in model.graph.node if n.op_type == "MatMulIntegerToFloat"]
    # every bias rides inside a product (fc1 and fc2 at least, per layer); no Add pass adds one after a product sum
    assert sum(len(n.input) == 7 and bool(n.input[6]) for n in products) >= 2 * ops.count("Gelu")
    outputs = {p.output[0] for p in products}
    sums = {n.output[0] for n in model.graph.node if n.op_type == "Add" and set(n.input) & outputs}
    inits = {t.name for t in model.graph.initializer}
    assert not [n for n in model.graph.node if n.op_type == "Add" and set(n.input) & sums and set(n.input) & inits]


def test_nothing_to_fuse_leaves_the_graph_alone():
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Tanh", ["x"], ["y"])], "g", [x], [y])
    model = onnx.helper.make_model(graph)
    assert not fuse_for_ort(model)
    assert [n.op_type for n in model.graph.node] == ["Tanh"]
