"""int8 variants: dynamic int8 quantization of the transformer graphs for ONNX Runtime's CPU path.

Every MatMul whose right-hand side is a constant 2-D float weight used by that node alone (the
Linear layers, the lm_head) becomes ONNX Runtime's ``com.microsoft.DynamicQuantizeMatMul``: int8
weights, symmetric per output column (scale = max|w| / 127); activations quantized to uint8 on the
fly. This is the kernel ORT fuses ``quantize_dynamic(per_channel=True, QInt8)`` output into, written
directly, one weight at a time from memory-mapped data, so memory stays near one weight matrix
where ``quantize_dynamic`` holds ~3.2x the graph (18 GB for a 24-layer Show-o graph). Attention
score MatMuls (both sides activations) and the embedding stay float; the VQ graphs are not quantized.
The int8 graph then gets ONNX Runtime's fused operators (``export.ort_fusion``: biases inside the
int8 products; FastGelu for graphs that spell GELU out), since its products are fast enough that
the element-wise passes around them weigh as much.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .common import ExportError
from .ort_fusion import fuse_for_ort
from .weights import PAGE, THRESHOLD, TensorReader, point_at

#: The contrib domain DynamicQuantizeMatMul lives in.
MS_DOMAIN = "com.microsoft"


def quantize_targets(graph: onnx.GraphProto) -> set[str]:
    """Names of the weights to quantize: 2-D float initializers that are the B input of exactly one MatMul."""
    inits = {t.name: t for t in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    return {n.input[1] for n in graph.node if n.op_type == "MatMul" and n.input[1] in inits
            and uses[n.input[1]] == 1 and len(inits[n.input[1]].dims) == 2
            and inits[n.input[1]].data_type == onnx.TensorProto.FLOAT}


def quantize_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 (K, N), float32 scale (N,)): symmetric per output column, round half to even."""
    scale = np.maximum(np.abs(w).max(axis=0), np.float32(1e-12)) / np.float32(127.0)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def quantize_int8(src: Path, dst: Path) -> int:
    """Write the dynamic-int8 version of ``src`` to ``dst`` with its weights in ``{dst.name}.data``; check it.

    Returns the number of MatMuls quantized; raises ExportError when there is none to quantize.
    """
    model = onnx.load(str(src), load_external_data=False)
    graph = model.graph
    targets = quantize_targets(graph)
    if not targets:
        raise ExportError(f"int8: {src.name} has no MatMul with a constant float weight to quantize")
    reader = TensorReader(src.parent)
    data_name = dst.name + ".data"
    new_inits: list[onnx.TensorProto] = []
    tmp = dst.parent / f".{data_name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as fh:
            def put(name: str, array: np.ndarray) -> None:
                tensor = numpy_helper.from_array(np.require(array, requirements="C"), name)  # keeps 0-d arrays 0-d
                if array.nbytes >= THRESHOLD:
                    fh.write(b"\0" * ((-fh.tell()) % PAGE))
                    offset = fh.tell()
                    fh.write(tensor.raw_data)
                    point_at(tensor, data_name, offset, array.nbytes)
                new_inits.append(tensor)

            for t in graph.initializer:
                dtype = helper.tensor_dtype_to_np_dtype(t.data_type)
                w = np.frombuffer(reader.raw(t), dtype=dtype).reshape(tuple(t.dims))
                if t.name in targets:
                    q, scale = quantize_weight(w)
                    put(t.name + "_int8", q)
                    put(t.name + "_scale", scale)
                else:
                    put(t.name, w)
        os.replace(tmp, dst.parent / data_name)
    finally:
        reader.close()
        tmp.unlink(missing_ok=True)
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    nodes = []
    for n in graph.node:
        if n.op_type == "MatMul" and n.input[1] in targets:
            w = n.input[1]
            n = helper.make_node("DynamicQuantizeMatMul", [n.input[0], w + "_int8", w + "_scale"], list(n.output),
                                 name=(n.name or w) + "_int8", domain=MS_DOMAIN)
        nodes.append(n)
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    fuse_for_ort(model)
    onnx.save_model(model, str(dst))
    try:
        onnx.checker.check_model(str(dst), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{dst.name} fails onnx.checker (full check): {exc}") from exc
    return len(targets)
