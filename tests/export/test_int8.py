"""The int8 variant: quantized transformer graphs, fp32 VQ graphs, agreement figures in the manifest."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from showo_sdk.runtime.bundle import TRANSFORMER_GRAPHS


@pytest.fixture(scope="module")
def manifest(bundle_int8):
    return json.loads((bundle_int8[0] / "manifest.json").read_text())


@pytest.mark.parametrize("name", TRANSFORMER_GRAPHS)
def test_int8_graphs_are_quantized_and_checked(bundle_int8, manifest, name):
    entry = manifest["graphs"][name]
    assert entry["file"] == f"{name}.int8.onnx" and entry["precision"] == "int8"
    path = bundle_int8[0] / entry["file"]
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path), load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    assert "DynamicQuantizeMatMul" in ops
    int8 = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert int8 and all(t.data_location == onnx.TensorProto.EXTERNAL for t in int8)
    assert entry["external_data"]["file"] == "transformer.int8.data"


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
    assert 0.5 <= gen["t2i_code_agreement"] <= 1.0
    assert 0.3 <= gen["mmu_token_agreement"] <= 1.0
    assert gen["target"] == 0.97 and isinstance(gen["meets_target"], bool)


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
