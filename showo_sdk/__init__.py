"""showo-sdk: run Show-o (unified multimodal transformer) from an exported engine bundle.

The runtime side (this package minus ``showo_sdk.model`` / ``showo_sdk.train`` /
``showo_sdk.export``) imports no torch: numpy, onnxruntime (or TensorRT) and our C++ extension.
"""

from __future__ import annotations

from .errors import BackendError, BundleError, CheckpointError, ConfigError, InputError, ShowoError

__version__ = "0.1.0"

__all__ = [
    "__version__", "Runtime", "ShowoError", "InputError", "ConfigError", "CheckpointError",
    "BundleError", "BackendError",
]


def __getattr__(name: str):
    # Runtime is imported lazily so `import showo_sdk` stays cheap (no onnxruntime load).
    if name == "Runtime":
        from .runtime import Runtime

        return Runtime
    raise AttributeError(f"module 'showo_sdk' has no attribute {name!r}")
