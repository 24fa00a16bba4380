"""Fusions for ONNX Runtime CPU graphs: fewer passes over the activations around the int8 matrix products.

With int8 products (AMX / VNNI) a transformer step spends as long in element-wise glue as in the
products themselves, and ONNX Runtime's own load-time fusions do not match the graphs torch.export
writes (its GELU pattern wants another operand order). This pass rewrites the tanh-GELU chain
``x * 0.5 * (1 + tanh(0.7978846 * (x + 0.044715 * x^3)))`` over ``x = y + bias`` into
``com.microsoft.FastGelu(y, bias)`` (graphs exported at opset 18 spell GELU out this way; at our
opset 20 it is already the standard ``Gelu``, the same ORT kernel). The int8 products take their
biases inside when they are written (``export.quantize``), with :class:`GraphIndex`'s lookups.

Residual sums stay ``Add`` + ``LayerNormalization``: ONNX Runtime 1.32's CPU SkipLayerNormalization
kernel takes 3.2-3.8 ms on a 516x2048 input where the two operators take 0.55-0.71 ms (AMX Xeon,
2 threads; benchmarks/bench_glue_ops.py), so fusing them cost ~50 ms per 24-layer step; the Runtime
also turns off ORT's own load-time SkipLayerNormFusion on CPU sessions (``runtime.backends``).
Only exact rewrites of what the nodes compute (float rounding aside); nothing is matched by name.
The contrib operators exist only in ONNX Runtime, so this runs on the int8 graphs, which are
ONNX-Runtime-only anyway (TensorRT engines are built from the fp32/fp16 graphs).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import onnx
from onnx import helper, numpy_helper

MS_DOMAIN = "com.microsoft"
_GELU_CONSTANTS = {"cube": 3.0, "cubic": 0.044715, "scale": 0.7978845608028654, "one": 1.0, "half": 0.5}


class GraphIndex:
    """Producer/consumer maps and constant lookup over one GraphProto, with deferred node removal."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.inits = {t.name: t for t in graph.initializer}
        self.consts = {n.output[0]: n for n in graph.node if n.op_type == "Constant" and n.domain == ""}
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for n in graph.node:
            for i in n.input:
                self.consumers[i].append(n)
        self.outputs = {o.name for o in graph.output}
        self.removed: set[int] = set()

    def _tensor(self, name: str) -> onnx.TensorProto | None:
        if name in self.inits:
            return self.inits[name]
        node = self.consts.get(name)
        if node is not None and node.attribute and node.attribute[0].name == "value":
            return node.attribute[0].t
        return None

    def is_const(self, name: str) -> bool:
        return self._tensor(name) is not None

    def const_rank(self, name: str) -> int | None:
        t = self._tensor(name)
        return None if t is None else len(t.dims)

    def is_scalar(self, name: str, want: float) -> bool:
        """``name`` is a one-element constant equal to ``want`` (such constants are never external data)."""
        t = self._tensor(name)
        if t is None or int(np.prod(t.dims)) != 1 or t.data_location == onnx.TensorProto.EXTERNAL:
            return False
        v = float(numpy_helper.to_array(t).reshape(-1)[0])
        return abs(v - want) <= 1e-6 * max(1.0, abs(want))

    def op(self, name: str, op_type: str) -> onnx.NodeProto | None:
        """The live node producing ``name`` if it is a default-domain ``op_type``."""
        node = self.producer.get(name)
        if node is None or id(node) in self.removed or node.op_type != op_type or node.domain not in ("", "ai.onnx"):
            return None
        return node

    def only_use(self, name: str, node: onnx.NodeProto) -> bool:
        """``name`` is read by ``node`` alone and is not a graph output."""
        users = self.consumers.get(name, [])
        return name not in self.outputs and len(users) == 1 and users[0] is node

    def split(self, node: onnx.NodeProto, want: float) -> str | None:
        """For a binary node with the constant ``want`` on either side, the other input."""
        a, b = node.input
        if self.is_scalar(b, want):
            return a
        if self.is_scalar(a, want):
            return b
        return None

    def bias_add(self, name: str) -> tuple[onnx.NodeProto, str, str] | None:
        """If ``name`` = Add(y, bias) with a constant 1-D bias: (the Add, y, bias name)."""
        node = self.op(name, "Add")
        if node is None:
            return None
        for y, bias in (node.input, node.input[::-1]):
            if self.const_rank(bias) == 1 and not self.is_const(y):
                return node, y, bias
        return None

    def drop(self, *nodes: onnx.NodeProto) -> None:
        self.removed.update(id(n) for n in nodes)

    def rebuild(self, added: dict[int, list[onnx.NodeProto]]) -> None:
        """Replace the node list: removed nodes out, each new node where the node it replaces stood."""
        nodes = []
        for n in self.graph.node:
            nodes.extend(added.get(id(n), []))
            if id(n) not in self.removed:
                nodes.append(n)
        del self.graph.node[:]
        self.graph.node.extend(nodes)


def _gelu(g: GraphIndex, tanh: onnx.NodeProto) -> tuple[list[onnx.NodeProto], onnx.NodeProto] | None:
    """Match the tanh-GELU chain around ``tanh``: (its nodes, the FastGelu replacing them)."""
    c = _GELU_CONSTANTS
    scaled = g.op(tanh.input[0], "Mul")
    inner_name = scaled and g.split(scaled, c["scale"])
    inner = inner_name and g.op(inner_name, "Add")
    if not inner:
        return None
    for x, cube_term in (inner.input, inner.input[::-1]):
        mul = g.op(cube_term, "Mul")
        pow_name = mul and g.split(mul, c["cubic"])
        power = pow_name and g.op(pow_name, "Pow")
        if power and power.input[0] == x and g.is_scalar(power.input[1], c["cube"]):
            break
    else:
        return None
    plus = g.consumers.get(tanh.output[0], [])
    if len(plus) != 1 or plus[0].op_type != "Add" or g.split(plus[0], c["one"]) != tanh.output[0]:
        return None
    half = g.consumers.get(plus[0].output[0], [])
    if len(half) != 1 or half[0].op_type != "Mul" or g.split(half[0], c["half"]) != plus[0].output[0]:
        return None
    last = g.consumers.get(half[0].output[0], [])
    if len(last) != 1 or last[0].op_type != "Mul" or sorted(last[0].input) != sorted([x, half[0].output[0]]):
        return None
    chain = [power, mul, inner, scaled, tanh, plus[0], half[0], last[0]]  # power reads x: y and bias are ready
    for node in chain[:-1]:
        if not g.only_use(node.output[0], next(n for n in chain if node.output[0] in n.input)):
            return None
    inputs = [x]
    bias = g.bias_add(x)
    if bias is not None and {id(n) for n in g.consumers[x]} <= {id(power), id(inner), id(last[0])}:
        chain.append(bias[0])
        inputs = [bias[1], bias[2]]
    fused = helper.make_node("FastGelu", inputs, list(last[0].output), name=last[0].name + "_fastgelu",
                             domain=MS_DOMAIN)
    return chain, fused


def fuse_for_ort(model: onnx.ModelProto) -> Counter:
    """Apply the fusion in place; returns counts per kind."""
    counts: Counter = Counter()
    g = GraphIndex(model.graph)
    added: dict[int, list[onnx.NodeProto]] = {}
    for node in list(model.graph.node):
        if node.op_type != "Tanh" or node.domain != "" or id(node) in g.removed:
            continue
        found = _gelu(g, node)
        if found is None:
            continue
        chain, fused = found  # chain[0]: a node where every input of ``fused`` is already computed
        g.drop(*chain)
        added[id(chain[0])] = [fused]
        counts["FastGelu"] += 1
    g.rebuild(added)
    if counts:
        _drop_unused_constants(model.graph)
        if not any(o.domain == MS_DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    return counts


def _drop_unused_constants(graph: onnx.GraphProto) -> None:
    """Initializers and Constant nodes no node reads any more (the fused chains' scalars)."""
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] not in used)]
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)
    inits = [t for t in graph.initializer if t.name in used]
    if len(inits) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(inits)
