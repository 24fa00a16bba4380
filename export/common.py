"""What every exported graph shares: tensor/graph declarations, the Graph base class, the ONNX export call.

A graph module subclasses :class:`Graph` and declares its inputs and outputs (names, dtypes, shapes
with named dynamic axes) once, in :meth:`Graph.spec`; the export call, the TensorRT profiles, the
manifest entry and the validation all read that one declaration.
"""

from __future__ import annotations

import abc
import contextlib
import io
import logging
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from showo_sdk.errors import ShowoError

#: ONNX opset of every graph: 20 for the standard ``Gelu`` (tanh approximation), which ONNX Runtime's CPU
#: kernel runs 3.6-5.3x faster than the Pow/Tanh/Mul chain opset 18 spells out (benchmarks/bench_glue_ops.py);
#: TensorRT 10 parses opsets 9-20.
OPSET = 20
#: Default upper bound of every batch axis (export bound, TensorRT profile max); T2I with CFG doubles B.
MAX_BATCH = 8
#: Above this many bytes of weights a graph is written with one external ``.data`` file (protobuf limit 2 GiB).
EXTERNAL_DATA_BYTES = 1_800_000_000

_ONNX_DTYPES = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16, "int64": onnx.TensorProto.INT64}


class ExportError(ShowoError):
    """Exporting, checking or validating a graph failed; the message names the graph and the stage."""


@dataclass(frozen=True)
class Dim:
    """A dynamic axis: its name in the manifest and ONNX, (min, opt, max) for profiles and export
    bounds, and ``multiple_of`` for axes that must stay a multiple of a factor (pixels per token)."""

    name: str
    min: int
    opt: int
    max: int
    multiple_of: int = 1

    def to_json(self) -> dict[str, int]:
        out = {"min": self.min, "opt": self.opt, "max": self.max}
        if self.multiple_of > 1:
            out["multiple_of"] = self.multiple_of
        return out

    def torch_dim(self):
        """The torch.export dimension (a derived ``k * Dim`` when ``multiple_of`` > 1)."""
        name = self.name.replace(".", "_")
        if self.multiple_of == 1:
            return torch.export.Dim(name, min=self.min, max=self.max)
        k = self.multiple_of
        return k * torch.export.Dim(f"{name}_div{k}", min=self.min // k, max=self.max // k)


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output. ``shape`` holds ints (static) and Dim names (dynamic)."""

    name: str
    dtype: str  # "float32" | "float16" | "int64"
    shape: tuple[int | str, ...]
    #: For small int64 inputs whose *values* set shapes (TensorRT shape tensors): (min, opt, max) per element.
    values: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.values is not None:
            out["values"] = {"min": list(self.values[0]), "opt": list(self.values[1]), "max": list(self.values[2])}
        return out


@dataclass(frozen=True)
class GraphSpec:
    """Names, dtypes and shapes of one graph, the dynamic axes they use, and notes for the runtime."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dims: tuple[Dim, ...]
    notes: dict[str, Any] = field(default_factory=dict)

    def dim(self, name: str) -> Dim:
        for d in self.dims:
            if d.name == name:
                return d
        raise KeyError(f"{self.name}: no dynamic axis {name!r}")

    def profile_shape(self, tensor: TensorSpec, which: str) -> tuple[int, ...]:
        """A concrete shape of ``tensor`` with every dynamic axis at its ``which`` ("min"/"opt"/"max") value."""
        return tuple(d if isinstance(d, int) else getattr(self.dim(d), which) for d in tensor.shape)

    def to_json(self) -> dict[str, Any]:
        return {"inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs],
                "dims": {d.name: d.to_json() for d in self.dims}, "notes": self.notes}


def kv_specs(prefix: str, num_layers: int, dtype: str, shape: tuple[int | str, ...]) -> tuple[TensorSpec, ...]:
    """``{prefix}.{i}.key`` / ``.value`` for every layer, in layer order (ORT GenAI / optimum names)."""
    return tuple(TensorSpec(f"{prefix}.{i}.{kv}", dtype, shape) for i in range(num_layers) for kv in ("key", "value"))


class Graph(abc.ABC):
    """One exported graph: declaration, torch module, example inputs, and validation cases.

    ``module()`` takes the inputs positionally in ``spec().inputs`` order and returns the outputs in
    ``spec().outputs`` order. Each validation case pairs inputs at a shape other than the example
    with the outputs the plain reference computes (the reference model over whole sequences).
    """

    name: str
    #: "fp32" or "fp16": the dtype the graph's weights and activations run in.
    precision: str = "fp32"

    @abc.abstractmethod
    def spec(self) -> GraphSpec:
        """The declaration: names, dtypes, shapes, dynamic axes, notes."""

    @abc.abstractmethod
    def module(self) -> nn.Module:
        """The torch module to trace."""

    @abc.abstractmethod
    def example_inputs(self) -> dict[str, np.ndarray]:
        """Inputs used for tracing: batch >= 2 and every dynamic length >= 2, so no axis is baked in."""

    @abc.abstractmethod
    def validation_cases(self) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """(inputs, expected outputs) at other shapes (batch 1 and 3, other lengths) for the ORT check."""

    def trace_spec(self) -> GraphSpec:
        """The declaration the torch module is traced with; ``postprocess`` turns its ONNX into ``spec()``."""
        return self.spec()

    def postprocess(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """Edit the exported ONNX before it is saved (default: nothing)."""
        return model


class _FlatInputs(nn.Module):
    """Adapter: positional ``*inputs`` in spec order, so one dynamic_shapes layout fits every graph."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, *inputs: torch.Tensor):
        return self.inner(*inputs)


def _param_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress prints and warnings; errors still propagate with their text."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def _export_dynamo(module: nn.Module, args: tuple[torch.Tensor, ...], spec: GraphSpec, path: Path,
                   external: bool) -> None:
    dims = {d.name: d.torch_dim() for d in spec.dims}
    shapes = []
    for t in spec.inputs:
        axes = {i: dims[d] for i, d in enumerate(t.shape) if isinstance(d, str)}
        shapes.append(axes or None)
    with _quiet():
        program = torch.onnx.export(
            _FlatInputs(module), args, dynamo=True, dynamic_shapes=(tuple(shapes),),
            input_names=[t.name for t in spec.inputs], output_names=[t.name for t in spec.outputs],
            opset_version=OPSET, optimize=True, verbose=False)
        program.save(str(path), external_data=external)  # weights stream to {path}.data when external


def _export_torchscript(module: nn.Module, args: tuple[torch.Tensor, ...], spec: GraphSpec, path: Path,
                        external: bool) -> None:
    axes = {t.name: {i: d for i, d in enumerate(t.shape) if isinstance(d, str)} for t in spec.inputs + spec.outputs}
    with _quiet(), tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        # large models come out with one file per tensor: export aside, then re-save with one .data file
        tmp = Path(scratch) / path.name
        torch.onnx.export(
            module, args, str(tmp), dynamo=False, input_names=[t.name for t in spec.inputs],
            output_names=[t.name for t in spec.outputs], dynamic_axes={k: v for k, v in axes.items() if v},
            opset_version=OPSET, do_constant_folding=True)
        save_model(onnx.load(str(tmp), load_external_data=True), path, external)


def _name_dims(model: onnx.ModelProto, spec: GraphSpec) -> None:
    """Give graph inputs/outputs exactly the declared shapes (the exporters name dynamic axes their own way)."""
    declared = {t.name: t for t in spec.inputs + spec.outputs}
    for value in list(model.graph.input) + list(model.graph.output):
        t = declared[value.name]
        tensor_type = value.type.tensor_type
        tensor_type.elem_type = _ONNX_DTYPES[t.dtype]
        tensor_type.shape.ClearField("dim")
        for d in t.shape:
            dim = tensor_type.shape.dim.add()
            if isinstance(d, int):
                dim.dim_value = d
            else:
                dim.dim_param = d


def check_io(model: onnx.ModelProto, spec: GraphSpec) -> None:
    """Raise ExportError unless the graph's inputs/outputs are exactly the declared names and dtypes, in order."""
    for kind, values, declared in (("inputs", model.graph.input, spec.inputs), ("outputs", model.graph.output, spec.outputs)):
        got = [(v.name, v.type.tensor_type.elem_type) for v in values]
        want = [(t.name, _ONNX_DTYPES[t.dtype]) for t in declared]
        if got != want:
            raise ExportError(f"{spec.name}: exported {kind} {got} differ from the declaration {want}")


def export_graph(graph: Graph, path: Path, external: bool | None = None) -> str:
    """Export ``graph`` to ``path`` (ONNX, opset ``OPSET``), check it in full; returns the exporter used.

    The dynamo exporter is tried first; if it fails, the TorchScript exporter with dynamic_axes.
    With ``external`` (default: weights above ~1.8 GB) the weights go to one ``{path}.data`` file;
    the graph is then edited (declared names and shapes, ``postprocess``) without loading them.
    """
    spec, trace = graph.spec(), graph.trace_spec()
    module = graph.module().eval()
    example = graph.example_inputs()
    args = tuple(torch.from_numpy(np.ascontiguousarray(example[t.name])) for t in trace.inputs)
    if external is None:
        external = _param_bytes(module) > EXTERNAL_DATA_BYTES
    exporter = "dynamo"
    with torch.no_grad():
        try:
            _export_dynamo(module, args, trace, path, external)
        except Exception as dynamo_exc:  # any exporter failure: fall back, keep both messages if that fails too
            exporter = "torchscript"
            try:
                _export_torchscript(module, args, trace, path, external)
            except Exception as ts_exc:
                first = str(dynamo_exc).strip().splitlines()
                raise ExportError(
                    f"{spec.name}: both exporters failed; dynamo: {type(dynamo_exc).__name__}: "
                    f"{first[0] if first else ''}; torchscript: {type(ts_exc).__name__}: {ts_exc}") from ts_exc
    model = graph.postprocess(onnx.load(str(path), load_external_data=False))
    _name_dims(model, spec)
    check_io(model, spec)
    model.producer_name = "showo-sdk"
    onnx.save_model(model, str(path))  # external tensors keep pointing at the same .data file
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"{spec.name}: {path.name} fails onnx.checker (full check): {exc}") from exc
    return exporter


def save_model(model: onnx.ModelProto, path: Path, external: bool) -> None:
    """Write ``model`` as one file, or with all weights in ``{name}.data`` beside it when ``external``."""
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(model, str(path))


def _tensors(graph: onnx.GraphProto):
    """Every tensor stored in ``graph``: initializers and tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _tensors(sub)


def graph_files(path: Path) -> list[Path]:
    """The ONNX file, then the external data files its tensors point to (none for a single-file graph)."""
    model = onnx.load(str(path), load_external_data=False)
    locations = sorted({entry.value for t in _tensors(model.graph) if t.data_location == onnx.TensorProto.EXTERNAL
                        for entry in t.external_data if entry.key == "location"})
    return [path] + [path.parent / loc for loc in locations]
