"""int8 variants: dynamic quantization of the transformer graphs with ONNX Runtime (CPU path).

Weights of every MatMul with a constant right-hand side (the Linear layers, lm_head) become int8
per output channel; activations are quantized on the fly. Attention score MatMuls (both sides
activations) stay float. The VQ graphs are not quantized.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx

from .common import ExportError, graph_files


def quantize_int8(src: Path, dst: Path, per_channel: bool = True) -> None:
    """Write the dynamic-int8 version of ``src`` to ``dst`` (external data kept if ``src`` has it) and check it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    external = len(graph_files(src)) > 1
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs advice on the root logger for every model
    try:
        quantize_dynamic(
            src, dst, weight_type=QuantType.QInt8, per_channel=per_channel, op_types_to_quantize=["MatMul", "Gemm"],
            use_external_data_format=external, extra_options={"MatMulConstBOnly": True})
    except Exception as exc:  # quantization tooling raises plain exceptions
        raise ExportError(f"int8 quantization of {src.name} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        root.setLevel(level)
    try:
        onnx.checker.check_model(str(dst), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{dst.name} fails onnx.checker (full check): {exc}") from exc
