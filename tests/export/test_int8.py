"""The int8 variants: quantized transformer graphs, fp32 VQ graphs, agreement figures in the manifest.

The bundle fixture is the default ("accurate") scheme; the "fast" scheme is checked on graphs
quantized from the fp32 bundle, and both schemes' products on a hand-built graph against fp32.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from showo_sdk.export.quantize import INT8_SCHEMES, quantize_int8, split_weight
from showo_sdk.runtime.backends import Graphs
from showo_sdk.runtime.bundle import TRANSFORMER_GRAPHS


@pytest.fixture(scope="module")
def manifest(bundle_int8):
    return json.loads((bundle_int8[0] / "manifest.json").read_text())


@pytest.mark.parametrize("name", TRANSFORMER_GRAPHS)
def test_int8_graphs_are_quantized_and_checked(bundle_int8, manifest, name):
    entry = manifest["graphs"][name]
    assert entry["file"] == f"{name}.int8.onnx" and entry["precision"] == "int8"
    assert manifest["int8_scheme"] == "accurate" == INT8_SCHEMES[0]
    path = bundle_int8[0] / entry["file"]
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path), load_external_data=False)
    ops = [n.op_type for n in model.graph.node]
    assert "DynamicQuantizeMatMul" not in ops and "MatMul" in ops  # the attention score products stay float
    residuals = [t for t in model.graph.initializer if t.name.endswith("_int8_residual")]
    assert ops.count("MatMulIntegerToFloat") == 3 * len(residuals) > 0  # three int8 products per weight
    # each activation is split once, however many products read it (q, k, v and fc1 share theirs)
    assert ops.count("DynamicQuantizeLinear") == 2 * ops.count("DequantizeLinear") < 2 * len(residuals)
    int8 = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert int8 and all(t.data_location == onnx.TensorProto.EXTERNAL for t in int8)
    assert entry["external_data"]["file"] == "transformer.int8.data"


def _linear_graph(tmp_path, rng, k=96, n=80):
    """``y = x @ w + bias`` as MatMul + Add, saved with its fp32 weights: what the quantizer rewrites."""
    from onnx import helper as h
    from onnx import numpy_helper as nph

    w = (rng.standard_normal((k, n)) * np.linspace(0.01, 0.5, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    graph = h.make_graph([h.make_node("MatMul", ["x", "w"], ["mm"]), h.make_node("Add", ["mm", "bias"], ["y"])], "g",
                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["rows", k])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["rows", n])],
                         [nph.from_array(w, "w"), nph.from_array(bias, "bias")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 20)])
    model.ir_version = 9
    src = tmp_path / "linear.onnx"
    onnx.save_model(model, str(src))
    return src, w, bias


def test_schemes_on_one_linear_layer(tmp_path):
    """accurate: ~15-bit products (errors ~1/100 of fast's); both fold the bias Add into a product."""
    rng = np.random.default_rng(0)
    src, w, bias = _linear_graph(tmp_path, rng)
    x = (rng.standard_normal((7, 96)) * np.linspace(0.1, 4, 96)).astype(np.float32)
    x[3, 5] = 40.0  # an outlier row: per-tensor activation scales are coarse for every other value
    want = x.astype(np.float64) @ w + bias
    errors = {}
    for scheme in INT8_SCHEMES:
        dst = tmp_path / f"linear.{scheme}.onnx"
        assert quantize_int8(src, dst, scheme) == 1
        model = onnx.load(str(dst), load_external_data=False)
        ops = [n.op_type for n in model.graph.node]
        assert "Add" not in ops or scheme == "accurate"  # fast: one DynamicQuantizeMatMul, bias inside
        products = [n for n in model.graph.node if n.domain == "com.microsoft"]
        biased = [n for n in products if n.input[-1] == "bias"]
        assert len(products) == (3 if scheme == "accurate" else 1) and len(biased) == 1
        got = Graphs.from_paths({"g": dst})["g"].run({"x": x})["y"]
        errors[scheme] = np.abs(got - want).max() / np.abs(want).max()
    assert errors["fast"] > 1e-3  # int8 rounding of the activations and weights shows
    assert errors["accurate"] < 2e-4 and errors["accurate"] * 50 < errors["fast"]  # measured: 8.0e-5 vs 1.15e-2


def test_quantize_rejects_an_unknown_scheme(tmp_path):
    from showo_sdk.export.common import ExportError

    src, _, _ = _linear_graph(tmp_path, np.random.default_rng(0))
    with pytest.raises(ExportError, match="int8 scheme must be one of"):
        quantize_int8(src, tmp_path / "out.onnx", "int4")


def test_split_weight_residual_is_a_second_int8_step():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(64, 48)).astype(np.float32) * np.linspace(0.01, 3, 48, dtype=np.float32)
    q1, s1, q2, s2 = split_weight(w)
    assert q1.dtype == q2.dtype == np.int8 and s1.shape == s2.shape == (48,)
    assert np.all(s2 <= s1 / 254 * 1.0001)  # the residual is within half a step of q1: 1/254 of its range
    err = np.abs(q1 * s1 + q2 * s2 - w)
    assert err.max() <= (s2 / 2).max() + 1e-7 and err.max() < np.abs(q1 * s1 - w).max() / 100


@pytest.mark.parametrize("name", ("t2i_step", "decode_step"))
def test_fast_scheme_graphs(bundle_fp32, tmp_path, name, random_feed):
    """The one-product scheme from the fp32 bundle's graphs: DynamicQuantizeMatMul with biases inside, and
    its logits' argmax mostly the fp32 graph's (the accurate scheme's are checked in the bundle above)."""
    dst = tmp_path / f"{name}.int8.onnx"
    count = quantize_int8(bundle_fp32 / f"{name}.onnx", dst, "fast")
    model = onnx.load(str(dst), load_external_data=False)
    products = [n for n in model.graph.node if n.op_type == "DynamicQuantizeMatMul"]
    assert len(products) == count and not any(n.op_type == "MatMulIntegerToFloat" for n in model.graph.node)
    assert sum(len(n.input) == 5 and n.input[4] != "" for n in products) >= 2  # fc1/fc2 biases at least
    graphs = Graphs.from_paths({"fp32": bundle_fp32 / f"{name}.onnx", "int8": dst})
    feed = random_feed(graphs["fp32"], np.random.default_rng(0))
    want, got = graphs["fp32"].run(feed)["logits"], graphs["int8"].run(feed)["logits"]
    assert np.abs(got - want).max() < 0.5 and (got.argmax(-1) == want.argmax(-1)).mean() >= 0.5


def test_quantize_weight_is_symmetric_per_column():
    from showo_sdk.export.quantize import quantize_weight

    rng = np.random.default_rng(0)
    w = rng.normal(size=(64, 48)).astype(np.float32) * np.linspace(0.01, 3, 48, dtype=np.float32)
    q, scale = quantize_weight(w)
    assert q.dtype == np.int8 and scale.shape == (48,) and np.abs(q).max() == 127
    np.testing.assert_allclose(scale, np.abs(w).max(axis=0) / 127, rtol=1e-6)
    assert np.abs(q * scale - w).max() <= scale.max() / 2 + 1e-6  # within half a step per column


def test_int8_validation_report(manifest):
    validation = manifest["validation"]
    for name in TRANSFORMER_GRAPHS:
        check = validation["graphs"][name]
        assert check["precision"] == "int8" and check["passed"] is None  # reported, not gated
        assert 0 < check["max_abs_diff"] < 1.0
        assert validation["fp32_source_graphs"][name]["passed"] is True  # the graphs it was quantized from
    for name in ("t2i_step", "mmu_prefill", "decode_step"):
        assert validation["graphs"][name]["logits_argmax_agreement"] >= 0.5
    gen = validation["generation"]
    assert gen["target"] == 0.97 and gen["meets_target"] is True  # the accurate scheme decodes as fp32 does
    assert gen["t2i_code_agreement"] >= 0.97 and gen["mmu_token_agreement"] >= 0.97


def test_int8_bundle_runs_in_the_runtime(bundle_int8, tiny):
    from showo_sdk import Runtime

    config = tiny.config
    rt = Runtime(bundle_int8[0], backend="ort-cpu")
    assert rt.bundle.precision == "int8"
    codes = rt.generate("two green triangles", steps=4, guidance_scale=1.75, greedy=True, output="codes")
    assert codes.shape == tuple(config.image_grid)
    assert ((codes >= 0) & (codes < config.layout.codebook_size)).all()
    image = np.zeros((1, config.num_image_tokens), dtype=np.int64)
    tokens = rt.understand_ids(image, rt.prompting.mmu_question_ids("What?"), max_new_tokens=5)
    assert 1 <= len(tokens[0]) <= 5


def test_demo_names_the_int8_scheme(bundle_int8, tmp_path):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "showo_sdk.cli", "demo", "--engine", str(bundle_int8[0]), "--out",
                          str(tmp_path), "--steps", "2", "--max-new-tokens", "3", "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "(ort-cpu, int8 accurate)" in res.stdout
