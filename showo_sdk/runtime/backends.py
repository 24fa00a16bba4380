"""Inference backends behind one small interface: ONNX Runtime CPU, ONNX Runtime CUDA, TensorRT.

A *graph* has ``run(feed) -> outputs`` (host arrays in and out, for one-off calls) and
``bind(inputs, outputs) -> bound`` over preallocated buffers (``bound.run()`` re-runs with whatever
the buffers hold now): the T2I step and MMU decode loops bind once per call and only rewrite the
few ids that change, so no key/value cache is copied per step. A *memory* allocates those buffers
where the graphs read them (host numpy arrays for ORT CPU, device buffers for CUDA and TensorRT).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import BackendError, BundleError, InputError
from .bundle import GRAPHS, Bundle
from .timing import Recorder, TimedGraph

BACKENDS = ("auto", "ort-cpu", "ort-cuda", "tensorrt")
CUDA_EP, CPU_EP = "CUDAExecutionProvider", "CPUExecutionProvider"
_NUMPY = {"float32": np.float32, "float16": np.float16, "int64": np.int64}
_ORT_NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}


class HostTensor:
    """A numpy array that graphs read and write in place (ONNX Runtime CPU binds its memory directly)."""

    device, device_id = "cpu", 0

    def __init__(self, array: np.ndarray):
        self.array = np.ascontiguousarray(array)
        self.shape, self.dtype = self.array.shape, self.array.dtype

    @property
    def ptr(self) -> int:
        return self.array.ctypes.data

    def read(self) -> np.ndarray:
        """The array itself (no copy): valid until the next run that writes this buffer."""
        return self.array

    def write(self, values: np.ndarray) -> None:
        np.copyto(self.array, values)


class HostMemory:
    """Buffers in host memory."""

    device = "cpu"

    def zeros(self, shape: tuple[int, ...], dtype) -> HostTensor:
        return HostTensor(np.zeros(shape, dtype=dtype))

    def upload(self, array: np.ndarray) -> HostTensor:
        return HostTensor(np.array(array, order="C", copy=True))

    def copy_rows(self, dst: HostTensor, src: HostTensor, start: int) -> None:
        """``dst[:, :, start:start+L] = src`` for (B, H, S, D) / (B, H, L, D) caches."""
        dst.array[:, :, start:start + src.shape[2]] = src.array


class Tensor(Protocol):
    device: str
    device_id: int
    shape: tuple[int, ...]
    dtype: np.dtype
    ptr: int

    def read(self) -> np.ndarray: ...

    def write(self, values: np.ndarray) -> None: ...


class Bound(Protocol):
    def run(self) -> None: ...


class Graph(Protocol):
    name: str

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def bind(self, inputs: dict[str, Tensor], outputs: dict[str, Tensor]) -> Bound: ...


class _OrtBound:
    """An IOBinding over fixed buffers; run() reruns the session on their current contents."""

    def __init__(self, graph: OrtGraph, inputs: dict[str, Tensor], outputs: dict[str, Tensor]):
        self.graph = graph
        self._keep = (inputs, outputs)  # the binding holds raw pointers: keep their owners alive
        self._on_device = any(t.device != "cpu" for t in outputs.values())
        try:
            self.binding = graph.session.io_binding()
            for name, t in inputs.items():
                self.binding.bind_input(name, t.device, t.device_id, t.dtype, list(t.shape), t.ptr)
            for name, t in outputs.items():
                self.binding.bind_output(name, t.device, t.device_id, t.dtype, list(t.shape), t.ptr)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"{graph.name}: ONNX Runtime cannot bind its buffers: {exc}") from exc

    def run(self) -> None:
        try:
            self.graph.session.run_with_iobinding(self.binding)
            if self._on_device:
                self.binding.synchronize_outputs()
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"{self.graph.name}: ONNX Runtime failed: {exc}") from exc


class OrtGraph:
    """One ONNX Runtime session; ``run`` and ``bind`` are safe to call from several threads at once."""

    def __init__(self, name: str, session: Any):
        self.name = name
        self.session = session
        self.output_names = [o.name for o in session.get_outputs()]

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return dict(zip(self.output_names, self.session.run(None, feed)))
        except Exception as exc:
            raise BackendError(f"{self.name}: ONNX Runtime failed: {exc}") from exc

    def bind(self, inputs: dict[str, Tensor], outputs: dict[str, Tensor]) -> _OrtBound:
        return _OrtBound(self, inputs, outputs)

    def dtype(self, tensor: str) -> type:
        """numpy dtype of an input or output, as the session declares it."""
        for t in self.session.get_inputs() + self.session.get_outputs():
            if t.name == tensor:
                return _ORT_NUMPY[t.type]
        raise KeyError(f"{self.name}: no tensor {tensor!r}")


@dataclass(frozen=True)
class BackendChoice:
    """The backend a Runtime uses: its name, ORT providers (ORT backends), device, and why it was picked."""

    name: str  # "ort-cpu" | "ort-cuda" | "tensorrt"
    providers: tuple[Any, ...]
    device_id: int
    reason: str


def _ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendError(f"onnxruntime is not installed ({exc}): pip install onnxruntime "
                           f"(or onnxruntime-gpu for CUDA)") from None
    return onnxruntime


def _provider_name(p: Any) -> str:
    return p[0] if isinstance(p, (tuple, list)) else p


def _check_providers(providers: Any) -> tuple[Any, ...]:
    """Validate a user's ORT providers list: names or (name, options) pairs, all available here."""
    if isinstance(providers, str) or not isinstance(providers, Sequence) or not providers:
        raise InputError(f"providers must be a non-empty list of ONNX Runtime provider names or (name, options) "
                         f"pairs, got {providers!r}")
    for p in providers:
        ok = isinstance(p, str) or (isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str)
                                    and isinstance(p[1], dict))
        if not ok:
            raise InputError(f"providers: {p!r} is neither a provider name nor a (name, options dict) pair")
    available = _ort().get_available_providers()
    missing = [_provider_name(p) for p in providers if _provider_name(p) not in available]
    if missing:
        raise BackendError(f"ONNX Runtime providers {missing} are not available in this onnxruntime "
                           f"{_ort().__version__}; available: {available}")
    return tuple(providers)


def _cuda_device_count() -> tuple[int, str]:
    """(visible GPUs, why none) from libcudart; (0, reason) when it cannot be loaded."""
    from .cuda import CudaRuntime

    try:
        count = CudaRuntime.load().device_count()
    except BackendError as exc:
        return 0, str(exc)
    return count, "" if count else "no CUDA GPU is visible (cudaGetDeviceCount = 0)"


def _ort_cuda_reason() -> str | None:
    ort = _ort()
    if CUDA_EP not in ort.get_available_providers():
        return (f"onnxruntime {ort.__version__} here has no {CUDA_EP} (providers: {ort.get_available_providers()}); "
                f"install onnxruntime-gpu in place of onnxruntime")
    count, why = _cuda_device_count()
    return None if count else why


def _providers_choice(requested: str, providers: Any) -> BackendChoice:
    """The ORT backend for caller-given ``providers``: ort-cuda when CUDA is among them (unless ort-cpu is asked)."""
    if requested == "tensorrt":
        raise InputError("providers apply to the ONNX Runtime backends, not to backend='tensorrt'")
    chosen = _check_providers(providers)
    names = [_provider_name(p) for p in chosen]
    if requested == "ort-cuda" and CUDA_EP not in names:
        raise InputError(f"backend='ort-cuda' needs {CUDA_EP} among the providers, got {names}")
    on_cuda = CUDA_EP in names and (requested != "ort-cpu")
    device = next((int(p[1].get("device_id", 0)) for p in chosen
                   if isinstance(p, (tuple, list)) and p[0] == CUDA_EP), 0)
    return BackendChoice("ort-cuda" if on_cuda else "ort-cpu", chosen, device, "providers given by the caller")


def select_backend(requested: str, bundle: Bundle, providers: Any = None) -> BackendChoice:
    """Resolve ``requested`` ("auto", "ort-cpu", "ort-cuda", "tensorrt") for ``bundle`` on this machine.

    ``auto``: TensorRT when the bundle has engines this machine can run, else ONNX Runtime CUDA when
    it is installed and a GPU is visible, else ONNX Runtime CPU. An explicit backend that cannot run
    raises BackendError naming what is missing. ``providers`` (ORT only) overrides ORT's providers.
    """
    if requested not in BACKENDS:
        raise InputError(f"backend must be one of {BACKENDS}, got {requested!r}")
    if providers is not None:
        return _providers_choice(requested, providers)
    if requested in ("auto", "tensorrt"):
        from .tensorrt_backend import unavailable_reason

        reason = unavailable_reason(bundle)
        if reason is None:
            return BackendChoice("tensorrt", (), 0, "TensorRT engines for this GPU are in the bundle")
        if requested == "tensorrt":
            raise BackendError(f"backend='tensorrt' cannot run here: {reason}")
        trt_reason = reason
    if requested in ("auto", "ort-cuda"):
        reason = _ort_cuda_reason()
        if reason is None:
            return BackendChoice("ort-cuda", ((CUDA_EP, {"device_id": 0}), CPU_EP), 0, "ONNX Runtime CUDA")
        if requested == "ort-cuda":
            raise BackendError(f"backend='ort-cuda' cannot run here: {reason}")
        return BackendChoice("ort-cpu", (CPU_EP,), 0,
                             f"no TensorRT ({trt_reason}); no ONNX Runtime CUDA ({reason})")
    return BackendChoice("ort-cpu", (CPU_EP,), 0, "requested")


#: ONNX Runtime graph transformers turned off on CPU sessions, each measured slower than what it replaces:
#: the CPU SkipLayerNormalization kernel takes ~5x the Add + LayerNormalization (see export.ort_fusion).
CPU_DISABLED_FUSIONS = ["SkipLayerNormFusion"]


def ort_session(path: Path, choice: BackendChoice, num_threads: int | None, precision: str,
                low_memory: bool = False) -> Any:
    """An InferenceSession of ``path`` on the chosen providers; BackendError when it cannot be created.

    ``low_memory`` (ONNX Runtime CPU only): no prepacked weight copies, so every session computes
    straight from the bundle's memory-mapped weights file: one copy of the weights in the page cache
    for all graphs instead of one private copy per graph (fp32 ~8% slower; int8 kernels repack per call).
    """
    ort = _ort()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT logs every unused initializer otherwise
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
    if low_memory and choice.name == "ort-cpu":
        options.add_session_config_entry("session.disable_prepacking", "1")
    disabled = CPU_DISABLED_FUSIONS if choice.name == "ort-cpu" else []
    try:
        session = ort.InferenceSession(str(path), options, providers=list(choice.providers),
                                       disabled_optimizers=disabled)
    except Exception as exc:
        hint = (" An fp16 bundle needs a GPU backend (ort-cuda or tensorrt); export --precision fp32 or int8 for "
                "CPUs." if precision == "fp16" and choice.name == "ort-cpu" else "")
        raise BackendError(f"ONNX Runtime ({choice.name}) cannot load {path.name}: {exc}.{hint}") from exc
    if choice.name == "ort-cuda" and CUDA_EP not in session.get_providers():
        raise BackendError(f"ONNX Runtime could not place {path.name} on the GPU (session providers "
                           f"{session.get_providers()}); check the CUDA/cuDNN install that onnxruntime-gpu needs")
    return session


def check_graph_io(bundle: Bundle, name: str, got_in: Sequence[str], got_out: Sequence[str],
                   file: str | None = None) -> None:
    """A graph's real input/output names must be the ones its manifest entry declares; else BundleError."""
    info = bundle.graphs[name]
    want_in, want_out = [t.name for t in info.inputs], [t.name for t in info.outputs]
    got_in, got_out = list(got_in), list(got_out)
    if sorted(got_in) != sorted(want_in) or sorted(got_out) != sorted(want_out):
        def brief(names: list[str]) -> str:
            return str(names) if len(names) <= 6 else f"{names[:6]}... ({len(names)} in all)"

        raise BundleError(
            f"bundle {bundle.root}: graph {name}: its file {file or info.path.name} has inputs {brief(got_in)} and outputs "
            f"{brief(got_out)}, but the manifest declares inputs {brief(want_in)} and outputs {brief(want_out)} "
            f"(the manifest names the wrong file?); re-export it with `showo-export CKPT_DIR --out {bundle.root} "
            f"--force`")


class Graphs:
    """The bundle's six graphs on one backend, each created on first use and shared by every call.

    Creating sessions lazily keeps memory to what is used (each transformer graph holds its own
    prepacked weights unless ``low_memory``: a T2I-only application never loads the MMU graphs).
    :meth:`from_paths` serves ONNX files that are not (yet) a bundle, e.g. while the exporter
    validates them.
    """

    def __init__(self, bundle: Bundle | None, choice: BackendChoice, num_threads: int | None,
                 paths: Mapping[str, Path] | None = None, low_memory: bool = False):
        self.bundle, self.choice, self.num_threads = bundle, choice, num_threads
        self.low_memory = low_memory
        self._paths = dict(paths) if paths is not None else None
        self.memory = self._memory()
        self._graphs: dict[str, Graph] = {}
        self._lock = threading.Lock()
        self.recorder = Recorder()  # every graph run is timed into the calling thread's open call
        self._engines = None
        if choice.name == "tensorrt":
            from .tensorrt_backend import pick_engines

            self._engines = pick_engines(bundle, choice.device_id)

    @classmethod
    def from_paths(cls, paths: Mapping[str, str | os.PathLike], providers: Sequence[Any] = (CPU_EP,),
                   num_threads: int | None = None, low_memory: bool = False) -> Graphs:
        """ONNX Runtime graphs over ONNX files without a manifest: ``paths`` maps graph names to files.

        Dtypes come from the sessions and batches are unbounded (no manifest ``dims``): the T2I and
        MMU drivers run them as they run a bundle's. ``providers`` as for :class:`Runtime`.
        """
        return cls(None, _providers_choice("auto", providers), num_threads,
                   {name: Path(path) for name, path in paths.items()}, low_memory)

    def _memory(self):
        if self.choice.name == "ort-cpu":
            return HostMemory()
        from .cuda import CudaMemory, CudaRuntime

        try:
            return CudaMemory(CudaRuntime.load(), self.choice.device_id)
        except BackendError as exc:
            if self.choice.name == "tensorrt":
                raise
            warnings.warn(f"ONNX Runtime CUDA runs with host buffers (every step copies its inputs to the GPU): "
                          f"{exc}", RuntimeWarning, stacklevel=3)
            return HostMemory()

    def __getitem__(self, name: str) -> Graph:
        graph = self._graphs.get(name)
        if graph is None:
            with self._lock:
                graph = self._graphs.get(name)
                if graph is None:
                    start = time.perf_counter()  # the first use loads the graph: timed as "<name> (load)"
                    graph = self._graphs[name] = TimedGraph(self._create(name), self.recorder)
                    self.recorder.add(f"{name} (load)", start, time.perf_counter())
        return graph

    def _create(self, name: str) -> Graph:
        if self._paths is not None:
            return OrtGraph(name, ort_session(self._paths[name], self.choice, self.num_threads, "", self.low_memory))
        if name not in GRAPHS:
            raise KeyError(name)
        if self._engines is not None:
            from .tensorrt_backend import TensorRTGraph

            graph = TensorRTGraph(name, self._engines[name], self.memory)
            check_graph_io(self.bundle, name, graph.input_names, graph.output_names, self._engines[name].path.name)
            return graph
        info = self.bundle.graphs[name]
        session = ort_session(info.path, self.choice, self.num_threads, info.precision, self.low_memory)
        check_graph_io(self.bundle, name, [t.name for t in session.get_inputs()],
                       [t.name for t in session.get_outputs()])
        return OrtGraph(name, session)

    def dtype(self, name: str, tensor: str) -> type:
        """numpy dtype of a graph tensor, from the manifest (from the session without one)."""
        if self.bundle is None:
            return self[name].dtype(tensor)
        info = self.bundle.graphs[name]
        for t in info.inputs + info.outputs:
            if t.name == tensor:
                return _NUMPY[t.dtype]
        raise KeyError(f"{name}: no tensor {tensor!r}")

    def static_size(self, name: str, tensor: str, axis: int) -> int | None:
        """The fixed size of ``tensor``'s ``axis`` in graph ``name`` (None: a dynamic axis), from the manifest
        (from the ONNX Runtime session without one)."""
        if self.bundle is None:
            shape = next(t.shape for t in self[name].session.get_inputs() if t.name == tensor)
        else:
            shape = next(t.shape for t in self.bundle.graphs[name].inputs if t.name == tensor)
        size = shape[axis]
        return size if isinstance(size, int) else None

    def dim_max(self, name: str, dim: str) -> int | None:
        """Largest value of dynamic axis ``dim`` the manifest declares for graph ``name`` (None: not declared)."""
        if self.bundle is None:
            return None
        dims = self.bundle.graphs[name].entry.get("dims") or {}
        entry = dims.get(dim) if isinstance(dims, dict) else None
        value = entry.get("max") if isinstance(entry, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None

    def values_max(self, name: str, tensor: str) -> list[int] | None:
        """Per-element maxima of a shape-setting int64 input (e.g. the decoder's ``grid``), from the manifest."""
        if self.bundle is None:
            return None
        for item in self.bundle.graphs[name].entry.get("inputs") or []:
            if isinstance(item, dict) and item.get("name") == tensor:
                values = item.get("values")
                top = values.get("max") if isinstance(values, dict) else None
                if isinstance(top, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in top):
                    return top
        return None

    def max_batch(self, name: str) -> int:
        """Largest batch the graph was exported for (its TensorRT profile's max), from the manifest."""
        if self.bundle is None:
            return 1 << 30
        dims = self.bundle.graphs[name].entry.get("dims") or {}
        batch = dims.get("batch") if isinstance(dims, dict) else None
        value = batch.get("max") if isinstance(batch, dict) else None
        return int(value) if isinstance(value, int) and value >= 1 else 1 << 30
