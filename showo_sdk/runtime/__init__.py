"""Runtime side of showo-sdk (numpy, ONNX Runtime / TensorRT; no torch): bundle reading and the Runtime."""

from .backends import BACKENDS
from .runtime import Runtime

__all__ = ["BACKENDS", "Runtime"]
