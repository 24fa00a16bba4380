"""TensorRT engines from the exported ONNX: built and run only where TensorRT and a GPU exist; never faked."""

from __future__ import annotations

import numpy as np
import pytest

from showo_sdk.export import tensorrt as trt_build
from showo_sdk.export.t2i_step import T2IStep

REASON = trt_build.unavailable_reason()
pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu,
              pytest.mark.skipif(REASON is not None, reason=REASON or "")]


def test_engine_file_name():
    assert trt_build.engine_file_name("t2i_step.fp16.onnx", "10.8.0", (9, 0)) == "t2i_step.fp16.trt10.8.0.sm90.plan"


def test_build_and_run_t2i_step_engine(bundle_fp32, tiny, tmp_path):
    import tensorrt as trt
    import torch

    if not torch.cuda.is_available():
        pytest.skip("running an engine here needs a CUDA build of torch for the device buffers")
    model, config = tiny.model, tiny.config
    graph = T2IStep(model, config, seed=3)
    entry = trt_build.build_engine(bundle_fp32 / "t2i_step.onnx", graph.spec(), tmp_path)
    assert entry["file"].endswith(".plan") and entry["trt_version"] == trt.__version__
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine((tmp_path / entry["file"]).read_bytes())
    context = engine.create_execution_context()
    inputs, expected = graph.validation_cases()[1]
    buffers = {}
    for name, value in inputs.items():
        buffers[name] = torch.from_numpy(np.ascontiguousarray(value)).cuda()
        context.set_input_shape(name, tuple(value.shape))
        context.set_tensor_address(name, buffers[name].data_ptr())
    logits = torch.empty(expected["logits"].shape, dtype=torch.float32, device="cuda")
    context.set_tensor_address("logits", logits.data_ptr())
    stream = torch.cuda.Stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    assert np.abs(logits.cpu().numpy() - expected["logits"]).max() < 1e-3
