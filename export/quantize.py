"""int8 variants: dynamic int8 quantization of the transformer graphs for ONNX Runtime's CPU path.

Every MatMul whose right-hand side is a constant 2-D float weight used by that node alone (the
Linear layers, the lm_head) becomes int8 products: weights symmetric per output column (scale =
max|w| / 127), activations quantized to uint8 on the fly (per tensor, as ONNX's
DynamicQuantizeLinear). Two schemes:

- ``fast``: one int8 product, ONNX Runtime's ``com.microsoft.DynamicQuantizeMatMul`` (the kernel ORT
  fuses ``quantize_dynamic(per_channel=True, QInt8)`` output into). Its rounding changes 13-15% of
  greedy T2I codes of the shipped model (one changed code cascades through MaskGIT's later steps).
- ``accurate`` (default): the activation and the weight are each split into an int8 part and an
  int8 residual (``x = a1*s1 + a2*s2`` with ``a2`` the quantized ``x - a1*s1``; the same for the
  weight, offline), and the three products that matter (``a1 w1``, ``a2 w1``, ``a1 w2``; ``a2 w2``
  is below float32 rounding of the sum) run as ``com.microsoft.MatMulIntegerToFloat``. Each
  product keeps ~15 significant bits where one int8 product keeps ~7, so greedy codes match fp32 as
  often as fp32 graphs match PyTorch (99.7-99.98% on the shipped model), at three int8 products'
  cost: ~2x an fp32 step on an AMX CPU, where ``fast`` is ~4.6x.

Weights are written one at a time from memory-mapped data, so memory stays near one weight matrix
where ``quantize_dynamic`` holds ~3.2x the graph (18 GB for a 24-layer Show-o graph). A bias ``Add``
after a product goes inside it (both operators take a ``bias``). Attention score MatMuls (both sides
activations) and the embedding stay float; the VQ graphs are not quantized. The graph then gets
``export.ort_fusion`` (FastGelu for graphs that spell GELU out), since int8 products are fast enough
that the element-wise passes around them weigh as much.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .common import ExportError
from .ort_fusion import GraphIndex, fuse_for_ort
from .weights import PAGE, THRESHOLD, TensorReader, point_at

#: The contrib domain DynamicQuantizeMatMul and MatMulIntegerToFloat live in.
MS_DOMAIN = "com.microsoft"
#: int8 schemes (see the module docstring); the first is the default.
INT8_SCHEMES = ("accurate", "fast")
#: Initializer suffixes of a quantized weight ``w``: its int8 part and scale, then (accurate scheme)
#: the int8 residual and its scale; the fast scheme writes the first two.
WEIGHT_PARTS = ("_int8", "_scale", "_int8_residual", "_scale_residual")


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


def split_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(q1, scale1, q2, scale2) with ``w ~ q1 * scale1 + q2 * scale2``: ``q2`` quantizes what ``q1`` leaves."""
    q1, s1 = quantize_weight(w)
    q2, s2 = quantize_weight(w - q1.astype(np.float32) * s1)
    return q1, s1, q2, s2


def _fast_product(x: str, w: str, out: str, bias: str | None, name: str) -> list[onnx.NodeProto]:
    """``out = x @ w (+ bias)`` as one DynamicQuantizeMatMul (it quantizes ``x`` itself)."""
    inputs = [x, w + WEIGHT_PARTS[0], w + WEIGHT_PARTS[1]] + (["", bias] if bias else [])
    return [helper.make_node("DynamicQuantizeMatMul", inputs, [out], name=name, domain=MS_DOMAIN)]


def _accurate_product(x: str, w: str, out: str, bias: str | None, name: str,
                      shared: dict[str, str]) -> list[onnx.NodeProto]:
    """``out = x @ w (+ bias)`` as three int8 products of split activations and weights (module docstring).

    ``x``'s two int8 parts are computed once per activation (q, k, v and fc1 read the same one):
    ``shared`` maps each activation already split to the prefix of its parts' names.
    """
    nodes = []
    if x not in shared:
        t = shared[x] = f"{out}/int8_"
        nodes = [
            helper.make_node("DynamicQuantizeLinear", [x], [t + "a1", t + "a1_scale", t + "a1_zero_point"],
                             name=f"{name}/quantize"),
            helper.make_node("DequantizeLinear", [t + "a1", t + "a1_scale", t + "a1_zero_point"], [t + "x1"],
                             name=f"{name}/dequantize"),
            helper.make_node("Sub", [x, t + "x1"], [t + "r"], name=f"{name}/residual"),
            helper.make_node("DynamicQuantizeLinear", [t + "r"], [t + "a2", t + "a2_scale", t + "a2_zero_point"],
                             name=f"{name}/quantize_residual"),
        ]
    a, p = shared[x], f"{out}/int8_"
    q1, s1, q2, s2 = (w + suffix for suffix in WEIGHT_PARTS)

    def product(part: str, q: str, s: str, result: str, with_bias: bool) -> onnx.NodeProto:
        inputs = [a + part, q, a + part + "_scale", s, a + part + "_zero_point"] + (["", bias] if with_bias else [])
        return helper.make_node("MatMulIntegerToFloat", inputs, [p + result], name=f"{name}/{result}",
                                domain=MS_DOMAIN)

    return nodes + [
        product("a1", q1, s1, "p11", bool(bias)),
        product("a2", q1, s1, "p21", False),
        product("a1", q2, s2, "p12", False),
        helper.make_node("Add", [p + "p21", p + "p12"], [p + "small"], name=f"{name}/sum_small"),
        helper.make_node("Add", [p + "p11", p + "small"], [out], name=f"{name}/sum"),
    ]


def _bias_after(index: GraphIndex, matmul: onnx.NodeProto) -> tuple[onnx.NodeProto, str] | None:
    """(the Add, the bias name) when ``matmul``'s output goes only to ``Add(it, constant 1-D bias)``."""
    users = index.consumers.get(matmul.output[0], [])
    if len(users) != 1 or not index.only_use(matmul.output[0], users[0]):
        return None
    found = index.bias_add(users[0].output[0])
    if found is None or found[1] != matmul.output[0]:
        return None
    return found[0], found[2]


def quantize_int8(src: Path, dst: Path, scheme: str = INT8_SCHEMES[0]) -> int:
    """Write the dynamic-int8 version of ``src`` to ``dst`` with its weights in ``{dst.name}.data``; check it.

    ``scheme``: one of :data:`INT8_SCHEMES`. Returns the number of MatMuls quantized; raises
    ExportError when there is none to quantize.
    """
    if scheme not in INT8_SCHEMES:
        raise ExportError(f"int8 scheme must be one of {INT8_SCHEMES}, got {scheme!r}")
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
                if t.name not in targets:
                    put(t.name, w)
                    continue
                parts = quantize_weight(w) if scheme == "fast" else split_weight(w)
                for suffix, array in zip(WEIGHT_PARTS, parts):  # fast: the first two suffixes
                    put(t.name + suffix, array)
        os.replace(tmp, dst.parent / data_name)
    finally:
        reader.close()
        tmp.unlink(missing_ok=True)
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    index = GraphIndex(graph)
    replaced: dict[int, list[onnx.NodeProto]] = {}
    shared: dict[str, str] = {}
    for n in graph.node:
        if n.op_type == "MatMul" and n.input[1] in targets:
            bias = _bias_after(index, n)
            out = bias[0].output[0] if bias else n.output[0]
            args = (n.input[0], n.input[1], out, bias and bias[1], (n.name or n.input[1]) + "_int8")
            replaced[id(n)] = _fast_product(*args) if scheme == "fast" else _accurate_product(*args, shared)
            if bias:
                replaced[id(bias[0])] = []
    nodes = [m for n in graph.node for m in replaced.get(id(n), [n])]
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
