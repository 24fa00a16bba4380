"""Exception hierarchy: every error the SDK raises on purpose is a ShowoError."""


class ShowoError(Exception):
    """Base class of all errors raised deliberately by showo-sdk."""


class InputError(ShowoError, ValueError):
    """A caller passed a bad argument (type, shape, dtype, range); the message says what is accepted."""


class ConfigError(ShowoError, ValueError):
    """A configuration file or dataclass is inconsistent or malformed."""


class CheckpointError(ShowoError):
    """A checkpoint directory is missing files, has the wrong layout, or has mismatched tensors."""


class BundleError(ShowoError):
    """An engine bundle is missing, corrupt, tampered with, or from an incompatible SDK version."""


class BackendError(ShowoError):
    """A requested inference backend (TensorRT, ONNX Runtime CUDA/CPU) is unavailable or failed."""
