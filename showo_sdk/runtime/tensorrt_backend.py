"""TensorRT 10/11 backend: deserialize the bundle's ``.plan`` engines and run them on device buffers.

Engines are strongly typed (their precision is the ONNX's) and valid only for the TensorRT version
and GPU compute capability they were built with; both are in the manifest and checked here. Runs use
``set_input_shape`` + ``set_tensor_address`` + ``execute_async_v3`` on a stream of our own. An
execution context is not thread-safe, so each bound call takes one from a per-engine pool.
The ``tensorrt`` package is imported only when this backend is chosen.
"""

from __future__ import annotations

import queue
import weakref

import numpy as np

from ..errors import BackendError
from .backends import HostTensor
from .bundle import GRAPHS, Bundle, EngineInfo
from .cuda import CudaMemory, CudaRuntime, CudaTensor


def _tensorrt():
    import tensorrt

    return tensorrt


def _machine(device_id: int) -> tuple[str, str]:
    """(TensorRT version, "major.minor" compute capability) of this machine; BackendError when unusable."""
    try:
        trt = _tensorrt()
    except Exception as exc:  # ImportError, or OSError/RuntimeError when its native libraries are missing
        raise BackendError(f"the tensorrt Python package is not installed ({exc}); pip install tensorrt "
                           f"(NVIDIA GPU and driver required)") from None
    cuda = CudaRuntime.load()
    if cuda.device_count() <= device_id:
        raise BackendError(f"no CUDA GPU {device_id} is visible ({cuda.device_count()} found)")
    major, minor = cuda.compute_capability(device_id)
    return trt.__version__, f"{major}.{minor}"


def pick_engines(bundle: Bundle, device_id: int = 0) -> dict[str, EngineInfo]:
    """The engine of every graph that runs on this TensorRT and GPU; BackendError saying what is missing."""
    have = {g: bundle.engines(g) for g in GRAPHS}
    if not any(have.values()):
        raise BackendError(f"bundle {bundle.root} has no TensorRT engines; build them on the target machine with "
                           f"`showo-export CKPT_DIR --out {bundle.root} --precision fp16 --tensorrt --force`")
    version, capability = _machine(device_id)
    picked, problems = {}, []
    for graph, engines in have.items():
        match = [e for e in engines if e.trt_version == version and e.compute_capability == capability]
        if match:
            picked[graph] = match[0]
        else:
            built = ", ".join(f"TensorRT {e.trt_version} sm{e.compute_capability}" for e in engines) or "none"
            problems.append(f"{graph} (built: {built})")
    if problems:
        raise BackendError(
            f"bundle {bundle.root} has no engine for TensorRT {version} on a GPU of compute capability {capability} "
            f"for {', '.join(problems)}; engines only run where they were built: re-export with --tensorrt here")
    return picked


def unavailable_reason(bundle: Bundle) -> str | None:
    """Why the bundle's engines cannot run here, or None when they can."""
    try:
        pick_engines(bundle)
    except BackendError as exc:
        return str(exc)
    return None


class _TrtBound:
    """An execution context from the pool with shapes and addresses set for fixed buffers."""

    def __init__(self, graph: TensorRTGraph, inputs: dict, outputs: dict | None):
        self.graph = graph
        cuda = graph.memory.cuda
        cuda.set_device(graph.memory.device_id)
        self.context = graph._acquire()
        self.stream = cuda.stream()
        weakref.finalize(self, graph._release, self.context, cuda, self.stream)
        ctx = self.context
        for name in graph.input_names:
            if name not in inputs:
                raise BackendError(f"{graph.name}: input {name} is not bound")
            t = inputs[name]
            if name not in graph.host_inputs and not ctx.set_input_shape(name, tuple(t.shape)):
                raise BackendError(f"{graph.name}: shape {t.shape} of {name} is outside the engine's profile "
                                   f"{graph.profile(name)}")
            ctx.set_tensor_address(name, t.ptr)
        if outputs is None:  # allocate from the shapes TensorRT infers
            outputs = {}
            for name in graph.output_names:
                shape = tuple(ctx.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise BackendError(f"{graph.name}: TensorRT cannot infer the shape of {name} ({shape})")
                outputs[name] = graph.memory.zeros(shape, graph.dtypes[name])
        for name in graph.output_names:
            t = outputs[name]
            want = tuple(ctx.get_tensor_shape(name))
            if want != tuple(t.shape):
                raise BackendError(f"{graph.name}: output {name} is {want} for these inputs, buffer is {t.shape}")
            ctx.set_tensor_address(name, t.ptr)
        self.inputs, self.outputs = inputs, outputs

    def run(self) -> None:
        if not self.context.execute_async_v3(self.stream):
            raise BackendError(f"{self.graph.name}: TensorRT execute_async_v3 failed (see the TensorRT log)")
        self.graph.memory.cuda.sync(self.stream)


class TensorRTGraph:
    """One deserialized engine; ``run``/``bind`` may be called from several threads (one context each)."""

    def __init__(self, name: str, engine: EngineInfo, memory: CudaMemory):
        trt = _tensorrt()
        self.name, self.memory = name, memory
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        memory.cuda.set_device(memory.device_id)
        self.engine = self._runtime.deserialize_cuda_engine(engine.path.read_bytes())
        if self.engine is None:
            raise BackendError(f"TensorRT cannot deserialize {engine.path.name} (built with TensorRT "
                               f"{engine.trt_version}, this is {trt.__version__}); re-export with --tensorrt here")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.input_names]
        # shape tensors (vq_decoder's grid) are read by TensorRT from host memory
        self.host_inputs = {n for n in self.input_names
                            if self.engine.get_tensor_location(n) == trt.TensorLocation.HOST}
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        self._profile = engine.profile
        self._contexts: queue.SimpleQueue = queue.SimpleQueue()

    def profile(self, name: str) -> object:
        return self._profile.get(name, "static")

    def _acquire(self):
        try:
            return self._contexts.get_nowait()
        except queue.Empty:
            context = self.engine.create_execution_context()
            if context is None:
                raise BackendError(f"{self.name}: TensorRT cannot create an execution context (out of GPU memory?)")
            return context

    def _release(self, context, cuda: CudaRuntime, stream: int) -> None:
        cuda.destroy_stream(stream)
        self._contexts.put(context)

    def bind(self, inputs: dict, outputs: dict) -> _TrtBound:
        return _TrtBound(self, inputs, outputs)

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs: dict[str, HostTensor | CudaTensor] = {}
        for name in self.input_names:
            array = np.ascontiguousarray(feed[name], dtype=self.dtypes[name])
            inputs[name] = HostTensor(array) if name in self.host_inputs else self.memory.upload(array)
        bound = _TrtBound(self, inputs, None)
        bound.run()
        return {name: t.read() for name, t in bound.outputs.items()}
