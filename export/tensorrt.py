"""TensorRT engines (``*.trt{version}.sm{cc}.plan``) built from the bundle's ONNX graphs, where TensorRT and a GPU exist.

TensorRT 10/11 Python API: a strongly typed network (precision comes from the ONNX: build from an
fp16 export for fp16 engines; TensorRT 11 has no FP16/INT8 builder flags), ``trt.OnnxParser``, one
optimization profile per graph from the graph's declared (min, opt, max) axes (batch, and
past_len for decode_step), a workspace limit, and the serialized engine written atomically. An
engine only runs on the TensorRT version and GPU compute capability it was built for, so both are
in its name. Nothing here is imported unless ``--tensorrt`` is asked for.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from showo_sdk.errors import BackendError
from showo_sdk.utils.atomic import atomic_write_bytes

from .common import GraphSpec

WORKSPACE_BYTES = 4 << 30


def compute_capability() -> tuple[int, int] | None:
    """(major, minor) of GPU 0, from torch's CUDA build or nvidia-smi; None without a visible GPU."""
    try:
        import torch

        if torch.cuda.is_available():
            return tuple(torch.cuda.get_device_capability(0))  # type: ignore[return-value]
    except Exception:  # a broken CUDA install: fall through to nvidia-smi
        pass
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.split()
        major, minor = out[0].split(".")
        return int(major), int(minor)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def unavailable_reason() -> str | None:
    """Why engines cannot be built here (TensorRT not importable, or no GPU), or None when they can."""
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        return (f"TensorRT is not installed here (import tensorrt: {exc}); engines are built on the target "
                f"machine: `pip install tensorrt` there (NVIDIA GPU required), then run showo-export --tensorrt")
    if compute_capability() is None:
        return "no NVIDIA GPU is visible here (nvidia-smi / CUDA); TensorRT builds an engine for the GPU it runs on"
    return None


def engine_file_name(onnx_file: str, trt_version: str, capability: tuple[int, int]) -> str:
    """``t2i_step.fp16.onnx`` -> ``t2i_step.fp16.trt10.8.0.sm90.plan``."""
    stem = onnx_file[: -len(".onnx")] if onnx_file.endswith(".onnx") else onnx_file
    return f"{stem}.trt{trt_version}.sm{capability[0]}{capability[1]}.plan"


def _profile_json(spec: GraphSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in spec.inputs:
        if t.values is not None:
            out[t.name] = {"values": {"min": list(t.values[0]), "opt": list(t.values[1]), "max": list(t.values[2])}}
        elif any(isinstance(d, str) for d in t.shape):
            out[t.name] = {k: list(spec.profile_shape(t, k)) for k in ("min", "opt", "max")}
    return out


def build_engine(onnx_path: Path, spec: GraphSpec, out_dir: Path, workspace_bytes: int = WORKSPACE_BYTES,
                 ) -> dict[str, Any]:
    """Build and write one engine for ``onnx_path``; returns its manifest entry (file, versions, profile)."""
    import tensorrt as trt

    capability = compute_capability()
    if capability is None:
        raise BackendError("cannot build TensorRT engines: no NVIDIA GPU is visible")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    profile = builder.create_optimization_profile()
    for t in spec.inputs:
        if t.values is not None:  # a shape tensor (vq_decoder's grid): bounds on its values
            profile.set_shape_input(t.name, *t.values)
        elif any(isinstance(d, str) for d in t.shape):
            profile.set_shape(t.name, *(spec.profile_shape(t, k) for k in ("min", "opt", "max")))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine for {onnx_path.name} (see the TensorRT log above)")
    name = engine_file_name(onnx_path.name, trt.__version__, capability)
    atomic_write_bytes(out_dir / name, bytes(serialized))
    return {"file": name, "trt_version": trt.__version__, "compute_capability": f"{capability[0]}.{capability[1]}",
            "strongly_typed": True, "workspace_bytes": workspace_bytes, "profile": _profile_json(spec)}
