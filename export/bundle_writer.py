"""The bundle's manifest: graph entries, the list of every file with its sha256, and writing it.

The manifest is the contract the runtime reads (``showo_sdk.runtime.bundle``): format version,
SDK version, creation info, the model section (configs and every derived id/size), one entry per
graph (file, sha256, bytes, precision, exporter, inputs/outputs with dtypes and shapes, dynamic
axes, notes, TensorRT engines), the tokenizer, the validation report, and ``files``.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import onnx
import onnxruntime
import torch

import showo_sdk
from showo_sdk.config import ShowoConfig, VQConfig
from showo_sdk.runtime.bundle import FORMAT, FORMAT_VERSION, MANIFEST, model_summary, seal_manifest, sha256_file

from .common import OPSET, GraphSpec, graph_files


def file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def graph_entry(spec: GraphSpec, path: Path, precision: str, exporter: str) -> dict[str, Any]:
    """Manifest entry of one ONNX graph (with its external data file, if any)."""
    files = graph_files(path)
    entry: dict[str, Any] = {"file": path.name, **file_entry(path), "precision": precision, "exporter": exporter,
                             "opset": OPSET, **spec.to_json()}
    if len(files) > 1:
        entry["external_data"] = {"file": files[1].name, **file_entry(files[1])}
    return entry


def creation_info(source: dict[str, str]) -> dict[str, Any]:
    return {"utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "tool": "showo-export",
            "python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "opset": OPSET, "source": source}


def model_section(config: ShowoConfig, vq: VQConfig) -> dict[str, Any]:
    return {"config": config.to_dict(), "vq_config": vq.to_dict(), **model_summary(config, vq)}


def write_manifest(root: Path, body: dict[str, Any]) -> dict[str, Any]:
    """Add format/version fields, ``files`` (every file under ``root`` with sha256 and size) and the manifest's own
    ``manifest_sha256`` (see ``showo_sdk.runtime.bundle.canonical_manifest``), write manifest.json."""
    files = {p.relative_to(root).as_posix(): file_entry(p)
             for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "sdk_version": showo_sdk.__version__,
                **body, "files": files}
    manifest = seal_manifest(manifest)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
