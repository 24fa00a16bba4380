"""Device buffers for the GPU backends through the CUDA runtime library (``libcudart``) and ctypes.

TensorRT and ONNX Runtime CUDA both bind raw device pointers, so one small buffer type serves
both, with no torch, CuPy or cuda-python dependency. Every copy ends with a synchronisation of the
legacy default stream, so a graph that runs on its own stream right after sees complete data.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import importlib.util
import os
import sys
import threading
import weakref
from pathlib import Path

import numpy as np

from ..errors import BackendError

_H2D, _D2H, _D2D = 1, 2, 3  # cudaMemcpyKind
_ATTR_CC_MAJOR, _ATTR_CC_MINOR = 75, 76  # cudaDevAttrComputeCapabilityMajor / Minor


def _candidates() -> list[str]:
    """Names and paths under which libcudart may be found (system, CUDA_HOME, NVIDIA pip wheels)."""
    if sys.platform == "win32":
        names = ["cudart64_13.dll", "cudart64_12.dll", "cudart64_110.dll"]
    else:
        names = ["libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"]
    found = ctypes.util.find_library("cudart")
    paths = ([found] if found else []) + names
    roots = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    for package in ("nvidia.cuda_runtime", "nvidia.cu13", "nvidia.cu12"):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            roots += list(spec.submodule_search_locations)
    for root in filter(None, roots):
        for sub in ("lib", "lib64", "bin"):
            paths += sorted(glob.glob(str(Path(root) / sub / ("cudart64_*.dll" if sys.platform == "win32"
                                                              else "libcudart.so*"))), reverse=True)
    return paths


class CudaRuntime:
    """The few libcudart entry points the runtime needs, with errors turned into BackendError."""

    _instance: CudaRuntime | None = None
    _lock = threading.Lock()

    def __init__(self, lib: ctypes.CDLL, path: str):
        self.lib, self.path = lib, path
        lib.cudaGetErrorString.restype = ctypes.c_char_p
        lib.cudaGetErrorString.argtypes = [ctypes.c_int]
        vp, size = ctypes.c_void_p, ctypes.c_size_t
        for name, args in {
            "cudaMalloc": [ctypes.POINTER(vp), size], "cudaFree": [vp], "cudaMemset": [vp, ctypes.c_int, size],
            "cudaMemcpy": [vp, vp, size, ctypes.c_int],
            "cudaMemcpy2D": [vp, size, vp, size, size, size, ctypes.c_int],
            "cudaStreamCreate": [ctypes.POINTER(vp)], "cudaStreamSynchronize": [vp], "cudaStreamDestroy": [vp],
            "cudaGetDeviceCount": [ctypes.POINTER(ctypes.c_int)], "cudaSetDevice": [ctypes.c_int],
            "cudaDeviceGetAttribute": [ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_int],
        }.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, ctypes.c_int

    @classmethod
    def load(cls) -> CudaRuntime:
        """The process-wide instance; BackendError naming the places searched when libcudart is missing."""
        with cls._lock:
            if cls._instance is None:
                errors = []
                for path in _candidates():
                    try:
                        cls._instance = cls(ctypes.CDLL(path), path)
                        break
                    except (OSError, AttributeError) as exc:
                        errors.append(f"{path}: {exc}")
                else:
                    raise BackendError(
                        "the CUDA runtime library (libcudart) cannot be loaded; install the CUDA toolkit or the "
                        "nvidia-cuda-runtime wheel, or set CUDA_HOME. Tried: " + "; ".join(errors[:6]))
            return cls._instance

    def check(self, status: int, what: str) -> None:
        if status != 0:
            message = self.lib.cudaGetErrorString(status).decode(errors="replace")
            raise BackendError(f"CUDA {what} failed: error {status} ({message})")

    def device_count(self) -> int:
        count = ctypes.c_int(0)
        return count.value if self.lib.cudaGetDeviceCount(ctypes.byref(count)) == 0 else 0

    def set_device(self, device: int) -> None:
        self.check(self.lib.cudaSetDevice(device), f"cudaSetDevice({device})")

    def compute_capability(self, device: int) -> tuple[int, int]:
        values = []
        for attribute in (_ATTR_CC_MAJOR, _ATTR_CC_MINOR):
            value = ctypes.c_int()
            status = self.lib.cudaDeviceGetAttribute(ctypes.byref(value), attribute, device)
            self.check(status, "cudaDeviceGetAttribute")
            values.append(value.value)
        return values[0], values[1]

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self.check(self.lib.cudaMalloc(ctypes.byref(ptr), max(nbytes, 1)), f"cudaMalloc({nbytes} bytes)")
        return int(ptr.value)

    def free(self, ptr: int) -> None:
        self.lib.cudaFree(ctypes.c_void_p(ptr))  # at teardown a failure can only be ignored

    def sync(self, stream: int = 0) -> None:
        self.check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")

    def memset(self, ptr: int, nbytes: int) -> None:
        self.check(self.lib.cudaMemset(ctypes.c_void_p(ptr), 0, nbytes), "cudaMemset")
        self.sync()

    def memcpy(self, dst: int, src: int, nbytes: int, kind: int) -> None:
        self.check(self.lib.cudaMemcpy(ctypes.c_void_p(dst), ctypes.c_void_p(src), nbytes, kind), "cudaMemcpy")
        self.sync()

    def memcpy2d(self, dst: int, dpitch: int, src: int, spitch: int, width: int, height: int) -> None:
        """Device-to-device copy of ``height`` rows of ``width`` bytes between pitched buffers."""
        self.check(self.lib.cudaMemcpy2D(ctypes.c_void_p(dst), dpitch, ctypes.c_void_p(src), spitch, width, height,
                                         _D2D), "cudaMemcpy2D")
        self.sync()

    def stream(self) -> int:
        handle = ctypes.c_void_p()
        self.check(self.lib.cudaStreamCreate(ctypes.byref(handle)), "cudaStreamCreate")
        return int(handle.value or 0)

    def destroy_stream(self, stream: int) -> None:
        self.lib.cudaStreamDestroy(ctypes.c_void_p(stream))


class CudaTensor:
    """A C-contiguous device buffer with a shape and dtype; freed when garbage-collected."""

    device = "cuda"

    def __init__(self, cuda: CudaRuntime, device_id: int, shape: tuple[int, ...], dtype: np.dtype):
        self.cuda, self.device_id = cuda, device_id
        self.shape, self.dtype = tuple(int(d) for d in shape), np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        cuda.set_device(device_id)
        self.ptr = cuda.malloc(self.nbytes)
        weakref.finalize(self, cuda.free, self.ptr)

    def read(self) -> np.ndarray:
        """A host copy of the contents."""
        out = np.empty(self.shape, dtype=self.dtype)
        self.cuda.set_device(self.device_id)
        self.cuda.memcpy(out.ctypes.data, self.ptr, self.nbytes, _D2H)
        return out

    def write(self, values: np.ndarray) -> None:
        """Overwrite the contents from a host array of the same shape."""
        host = np.ascontiguousarray(values, dtype=self.dtype)
        if host.shape != self.shape:
            raise BackendError(f"cannot write shape {host.shape} into a device buffer of shape {self.shape}")
        self.cuda.set_device(self.device_id)
        self.cuda.memcpy(self.ptr, host.ctypes.data, self.nbytes, _H2D)


class CudaMemory:
    """Allocation and copies of device buffers on one GPU."""

    device = "cuda"

    def __init__(self, cuda: CudaRuntime, device_id: int = 0):
        self.cuda, self.device_id = cuda, device_id

    def zeros(self, shape: tuple[int, ...], dtype) -> CudaTensor:
        t = CudaTensor(self.cuda, self.device_id, shape, dtype)
        self.cuda.memset(t.ptr, t.nbytes)
        return t

    def upload(self, array: np.ndarray) -> CudaTensor:
        host = np.ascontiguousarray(array)
        t = CudaTensor(self.cuda, self.device_id, host.shape, host.dtype)
        t.write(host)
        return t

    def copy_rows(self, dst: CudaTensor, src: CudaTensor, start: int) -> None:
        """``dst[:, :, start:start+L] = src`` for (B, H, S, D) / (B, H, L, D) buffers, on the device."""
        b, h, s, d = dst.shape
        length = src.shape[2]
        row = d * dst.dtype.itemsize
        self.cuda.set_device(self.device_id)
        self.cuda.memcpy2d(dst.ptr + start * row, s * row, src.ptr, length * row, length * row, b * h)
