"""The fp16 variant: half-precision transformer graphs (fp16 KV in and out, fp32 logits) run by ORT CPU."""

from __future__ import annotations

import onnx
import pytest

from showo_sdk.export import ExportOptions, export_checkpoint
from showo_sdk.export.common import export_graph
from showo_sdk.export.decode_step import DecodeStep
from showo_sdk.export.validate import check_graph
from showo_sdk.runtime.bundle import TRANSFORMER_GRAPHS, load_bundle


def test_fp16_decode_step(tiny, tmp_path):
    model, config = tiny.model, tiny.config
    graph = DecodeStep(model, config, "fp16")
    path = tmp_path / "decode_step.fp16.onnx"
    assert export_graph(graph, path) == "dynamo"
    types = {v.name: v.type.tensor_type.elem_type for v in list(onnx.load(str(path)).graph.input)
             + list(onnx.load(str(path)).graph.output)}
    assert types["past_key_values.0.key"] == types["present.1.value"] == onnx.TensorProto.FLOAT16
    assert types["logits"] == onnx.TensorProto.FLOAT
    check = check_graph(graph, path, "fp16")
    assert check.passed is None and check.max_abs_diff < 2e-2, check
    assert check.argmax_agreement == 1.0


@pytest.mark.slow
def test_fp16_bundle(tiny, tmp_path):
    out = tmp_path / "engine.plan"
    result = export_checkpoint(tiny.checkpoint, out, options=ExportOptions(precision="fp16", progress=False))
    bundle = load_bundle(out)
    assert bundle.precision == "fp16"
    for name in TRANSFORMER_GRAPHS:
        assert bundle.graph_path(name, "fp16").name == f"{name}.fp16.onnx"
    gen = result.manifest["validation"]["generation"]
    assert gen["t2i_code_agreement"] >= 0.9 and gen["mmu_token_agreement"] >= 0.9
