"""ONNX Runtime sessions as the Runtime creates them (showo_sdk.runtime.backends)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from showo_sdk.runtime.backends import CPU_EP, BackendChoice, ort_session


def _residual_norm_graph(path: Path) -> None:
    """``LayerNormalization(a + b)`` over 3-D activations: the pattern ORT fuses into SkipLayerNormalization."""
    d = 64
    inits = [numpy_helper.from_array(np.linspace(0.5, 1.5, d, dtype=np.float32), "gamma"),
             numpy_helper.from_array(np.linspace(-0.1, 0.1, d, dtype=np.float32), "beta")]
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-5)]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", "seq", d]) for n in ("a", "b")]
    graph = helper.make_graph(nodes, "residual_norm", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", d])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _optimized_ops(session_path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(session_path)).graph.node}


def test_cpu_sessions_keep_add_and_layer_norm_unfused(tmp_path, monkeypatch):
    """ORT alone fuses the residual sum into its slow CPU SkipLayerNormalization; the Runtime's sessions do not."""
    src = tmp_path / "g.onnx"
    _residual_norm_graph(src)
    plain_out = tmp_path / "plain.opt.onnx"
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(plain_out)
    ort.InferenceSession(str(src), options, providers=[CPU_EP])
    assert "SkipLayerNormalization" in _optimized_ops(plain_out)  # the fusion this test guards against exists

    ours_out = tmp_path / "ours.opt.onnx"
    real_options = ort.SessionOptions

    def recording_options() -> ort.SessionOptions:
        made = real_options()
        made.optimized_model_filepath = str(ours_out)
        return made

    monkeypatch.setattr(ort, "SessionOptions", recording_options)
    session = ort_session(src, BackendChoice("ort-cpu", (CPU_EP,), 0, "test"), num_threads=1, precision="fp32")
    assert _optimized_ops(ours_out) == {"Add", "LayerNormalization"}
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2, 3, 64)).astype(np.float32) for _ in range(2))
    s = a + b
    want = (s - s.mean(-1, keepdims=True)) / np.sqrt(s.var(-1, keepdims=True) + 1e-5)
    want = want * np.linspace(0.5, 1.5, 64, dtype=np.float32) + np.linspace(-0.1, 0.1, 64, dtype=np.float32)
    np.testing.assert_allclose(session.run(None, {"a": a, "b": b})[0], want, atol=1e-5)
