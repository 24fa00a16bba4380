"""The export pipeline: checkpoint -> validated bundle directory, written atomically.

Stages: export the six graphs (fp32, or fp16 transformer graphs), quantize (int8), with the
transformer graphs' weights moved into one shared file as each graph is written
(``export.weights.WeightStore``: scratch disk stays near one graph plus that file), validate every
graph against the reference, compare greedy T2I/MMU decoding driven by the graphs with the
reference decoders, build TensorRT engines (if asked), write tokenizer and manifest, and read the
result back with the runtime's bundle reader. Everything happens in a temp directory beside the
output that replaces it only when complete: a failure never leaves a half bundle.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from showo_sdk.errors import BackendError, InputError
from showo_sdk.runtime.backends import Graphs
from showo_sdk.runtime.bundle import load_bundle
from showo_sdk.utils.atomic import atomic_dir

from . import tensorrt as trt_build
from .bundle_writer import creation_info, file_entry, graph_entry, model_section, write_manifest
from .common import MAX_BATCH, Graph, export_graph
from .decode_step import DecodeStep
from .forward import cast_model
from .mmu_prefill import MMUPrefill
from .quantize import INT8_SCHEMES, quantize_int8
from .sources import Sources, load_sources
from .t2i_prefix import T2IPrefix
from .t2i_step import T2IStep
from .transformer_graph import TORCH_DTYPES
from .weights import WeightStore
from .validate import (AGREEMENT_BUDGET_S, AGREEMENT_MAX_PROMPTS, FP32_TOLERANCE, GraphCheck, ValidationError,
                       check_graph, default_prompts, extra_prompts, generation_agreement)
from .vq_decoder import VQDecoder
from .vq_encoder import VQEncoder

PRECISIONS = ("fp32", "fp16", "int8")
TENSORRT_MODES = ("require", "auto")


@dataclass
class ExportOptions:
    """Choices of one export; ``tensorrt``: None (no engines), "require" (fail without TensorRT) or "auto"."""

    precision: str = "fp32"
    int8_scheme: str = INT8_SCHEMES[0]  # with precision int8: "accurate" (three int8 products) or "fast" (one)
    tensorrt: str | None = None
    force: bool = False
    tolerance: float = FP32_TOLERANCE
    max_batch: int = MAX_BATCH
    progress: bool = True
    agreement_budget_s: float = AGREEMENT_BUDGET_S  # seconds of extra greedy T2I prompts after the first 4

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.int8_scheme not in INT8_SCHEMES:
            raise InputError(f"int8_scheme must be one of {INT8_SCHEMES}, got {self.int8_scheme!r}")
        if self.tensorrt not in (None, *TENSORRT_MODES):
            raise InputError(f"tensorrt must be None, 'require' or 'auto', got {self.tensorrt!r}")
        if self.tensorrt and self.precision == "int8":
            raise InputError("TensorRT engines are built from fp32 or fp16 graphs (ONNX Runtime's dynamic int8 "
                             "graphs do not parse in TensorRT): use --precision fp16 --tensorrt")
        if not self.tolerance > 0:
            raise InputError(f"tolerance must be > 0, got {self.tolerance}")
        if self.max_batch < 1:
            raise InputError(f"max_batch must be >= 1, got {self.max_batch}")
        if not self.agreement_budget_s >= 0:
            raise InputError(f"agreement_budget_s must be >= 0, got {self.agreement_budget_s}")


@dataclass
class Row:
    """One line of the final table."""

    graph: str
    precision: str
    file: str
    bytes: int
    max_abs_diff: float | None
    export_s: float
    validate_s: float
    note: str = ""


@dataclass
class ExportResult:
    """The bundle written, its manifest, and the rows of the final table."""

    bundle: Path
    manifest: dict[str, Any]
    rows: list[Row] = field(default_factory=list)


def check_output(out: str | os.PathLike, force: bool) -> Path:
    """Refuse an output that exists (without ``force``), is not a directory, or cannot be written."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InputError(f"output {path} exists and is not a directory; choose another --out")
    if path.exists() and not force:
        raise InputError(f"output {path} already exists; pass --force to replace it")
    parent = path.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise InputError(f"cannot write the bundle into {parent}: {exc.strerror or exc}") from None
    return path


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, *, llm_config=None, tokenizer=None,
                      vq=None, options: ExportOptions | None = None) -> ExportResult:
    """Load a checkpoint (official layout or ours) with its tokenizers and export it as a bundle at ``out``."""
    options = options or ExportOptions()
    check_output(out, options.force)
    if options.tensorrt == "require":
        reason = trt_build.unavailable_reason()
        if reason:
            raise BackendError(f"--tensorrt: cannot build engines: {reason}. Use --tensorrt-auto to export "
                               f"the ONNX bundle anyway")
    return export_bundle(load_sources(checkpoint, llm_config, tokenizer, vq), out, options)


def _graphs(sources: Sources, precision: str, max_batch: int) -> tuple[list[Graph], list[Graph]]:
    """(VQ graphs, transformer graphs) in the precision the transformer graphs are traced in."""
    traced = "fp16" if precision == "fp16" else "fp32"
    cast = cast_model(sources.model, TORCH_DTYPES[traced])
    transformer = [cls(sources.model, sources.config, traced, max_batch, cast=cast)
                   for cls in (T2IPrefix, T2IStep, MMUPrefill, DecodeStep)]
    return [VQEncoder(sources.vq, max_batch), VQDecoder(sources.vq, max_batch)], transformer


def _file_name(name: str, precision: str) -> str:
    return f"{name}.onnx" if precision == "fp32" else f"{name}.{precision}.onnx"


def _bar(items=None, desc: str = "", progress: bool = True, unit: str = "graph", total: int | None = None):
    """A tqdm bar for one stage, on stderr."""
    return tqdm(items, desc=f"{desc:<9}", unit=unit, total=total, file=sys.stderr, disable=not progress, leave=True)


@dataclass
class _Run:
    """State of one export while its stages run in the temp directory ``tmp``."""

    sources: Sources
    options: ExportOptions
    tmp: Path
    scratch: Path
    vq_graphs: list[Graph]
    tf_graphs: list[Graph]
    final: dict[str, tuple[Graph, Path, str]] = field(default_factory=dict)  # name -> (graph, file, precision)
    exporters: dict[str, str] = field(default_factory=dict)
    rows: dict[str, Row] = field(default_factory=dict)
    checks: dict[str, GraphCheck] = field(default_factory=dict)
    fp32_sources: dict[str, GraphCheck] = field(default_factory=dict)
    engines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)

    def export(self) -> None:
        """VQ graphs into the bundle; transformer graphs into the bundle, or to scratch when they get quantized.

        Each transformer graph's weights join the shared file as soon as it is written (see WeightStore).
        """
        quantized = self.options.precision == "int8"
        store = WeightStore(self.scratch, "transformer.data") if quantized else self.store(self.options.precision)
        for graph in _bar(self.vq_graphs + self.tf_graphs, "export", self.options.progress):
            transformer = graph in self.tf_graphs
            path = (self.scratch if quantized and transformer else self.tmp) / _file_name(graph.name, graph.precision)
            start = time.perf_counter()
            self.exporters[graph.name] = export_graph(graph, path)
            if transformer:
                store.add(path)
            self.rows[graph.name] = Row(graph.name, graph.precision, path.name, 0, None,
                                        time.perf_counter() - start, 0.0)
            self.final[graph.name] = (graph, path, graph.precision)
        sizes = store.close()
        if not quantized:
            self.record_weights(store, sizes)

    def store(self, precision: str) -> WeightStore:
        """The bundle's shared weights file for transformer graphs of ``precision``."""
        return WeightStore(self.tmp, "transformer.data" if precision == "fp32" else f"transformer.{precision}.data")

    def record_weights(self, store: WeightStore, sizes: dict[str, int]) -> None:
        self.weights = {"file": store.data_name, "graphs": [g.name for g in self.tf_graphs],
                        "stored_bytes": sizes["stored"], "referenced_bytes": sizes["referenced"],
                        "seconds": round(store.seconds, 3)}

    def quantize(self) -> None:
        """int8: quantize the (validated) fp32 transformer graphs into the bundle."""
        store = self.store("int8")
        for graph in _bar(self.tf_graphs, "quantize", self.options.progress):
            src = self.final[graph.name][1]
            self.fp32_sources[graph.name] = check_graph(graph, src, "fp32", self.options.tolerance)
            dst = self.tmp / _file_name(graph.name, "int8")
            start = time.perf_counter()
            quantize_int8(src, dst, self.options.int8_scheme)
            store.add(dst)
            row = self.rows[graph.name]
            row.export_s += time.perf_counter() - start
            row.file, row.precision = dst.name, "int8"
            self.final[graph.name] = (graph, dst, "int8")
        self.record_weights(store, store.close())

    def validate(self) -> None:
        """Every graph file of the bundle against the reference; fp32 beyond tolerance fails the export."""
        for name in _bar(list(self.final), "validate", self.options.progress):
            graph, path, precision = self.final[name]
            check = self.checks[name] = check_graph(graph, path, precision, self.options.tolerance)
            row = self.rows[name]
            row.max_abs_diff, row.validate_s, row.note = check.max_abs_diff, check.seconds, check.note
        failed = [c for c in [*self.checks.values(), *self.fp32_sources.values()] if c.passed is False]
        if failed:
            raise ValidationError("exported graphs disagree with the PyTorch reference: " + "; ".join(
                f"{c.graph} ({c.precision}) max |diff| {c.max_abs_diff:.3g} > {c.tolerance:g} {c.outputs}"
                for c in failed) + ". Nothing was written; raise --tolerance only if the figure is expected")

    def generation(self) -> dict[str, Any]:
        """Greedy T2I codes and MMU tokens driven by the bundle's graphs vs the reference decoders."""
        if any(self.checks[g.name].max_abs_diff is None for g in self.tf_graphs):
            return {"skipped": "ONNX Runtime CPU cannot run these graphs here"}
        with _bar(desc="generate", progress=self.options.progress, unit="run", total=1) as bar:
            graphs = Graphs.from_paths({g.name: self.final[g.name][1] for g in self.tf_graphs}, low_memory=True)
            prompts, questions = default_prompts(self.sources.tokenizer)
            extra = [self.sources.tokenizer.encode(p) for p in extra_prompts(AGREEMENT_MAX_PROMPTS - len(prompts))]
            report = generation_agreement(graphs, self.sources.model, self.sources.config, prompts, questions,
                                          extra=extra, budget_s=self.options.agreement_budget_s)
            bar.update()
        return report

    def tensorrt(self) -> dict[str, Any]:
        """Engines from the bundle's ONNX where TensorRT and a GPU exist; says why not otherwise."""
        report: dict[str, Any] = {"requested": self.options.tensorrt, "built": False}
        if not self.options.tensorrt:
            return report
        reason = trt_build.unavailable_reason()
        if reason is not None:
            if self.options.tensorrt == "require":
                raise BackendError(f"--tensorrt: cannot build engines: {reason}")
            return {**report, "reason": reason}
        for name in _bar(list(self.final), "tensorrt", self.options.progress):
            graph, path, _ = self.final[name]
            engine = trt_build.build_engine(path, graph.spec(), self.tmp)
            self.engines[name] = [{**engine, **file_entry(self.tmp / engine["file"])}]
        return {**report, "built": True}

    def write(self, generation: dict[str, Any], tensorrt: dict[str, Any]) -> dict[str, Any]:
        """tokenizer.json and manifest.json (which lists every file with its sha256)."""
        tok = self.sources.tokenizer
        tok.save(self.tmp / "tokenizer.json")
        graphs = {}
        for name, (graph, path, precision) in self.final.items():
            graphs[name] = graph_entry(graph.spec(), path, precision, self.exporters[name])
            if name in self.engines:
                graphs[name]["tensorrt"] = self.engines[name]
            self.rows[name].bytes = path.stat().st_size  # the shared weights are reported once, in 'weights'
        validation: dict[str, Any] = {
            "tolerance": {"fp32": self.options.tolerance, "vq_decoder_pixels": self.checks["vq_decoder"].tolerance},
            "graphs": {n: c.to_json() for n, c in self.checks.items()}, "generation": generation}
        if self.fp32_sources:
            validation["fp32_source_graphs"] = {n: c.to_json() for n, c in self.fp32_sources.items()}
        quantization = {"int8_scheme": self.options.int8_scheme} if self.options.precision == "int8" else {}
        return write_manifest(self.tmp, {
            "created": creation_info(self.sources.describe()), "precision": self.options.precision, **quantization,
            "model": model_section(self.sources.config, self.sources.vq.config),
            "tokenizer": {"file": "tokenizer.json", "text_vocab_size": tok.text_vocab_size, "bos_id": tok.bos_id},
            "graphs": graphs, "weights": self.weights, "validation": validation, "tensorrt": tensorrt})


def export_bundle(sources: Sources, out: str | os.PathLike, options: ExportOptions | None = None) -> ExportResult:
    """Export, validate and write the bundle for already-loaded ``sources`` (see the module docstring)."""
    options = options or ExportOptions()
    out = check_output(out, options.force)
    vq_graphs, tf_graphs = _graphs(sources, options.precision, options.max_batch)
    with atomic_dir(out, overwrite=options.force) as tmp, \
            tempfile.TemporaryDirectory(prefix=f".{out.name}.{os.getpid()}.", suffix=".fp32", dir=tmp.parent) as scratch:
        run = _Run(sources, options, tmp, Path(scratch), vq_graphs, tf_graphs)
        run.export()
        if options.precision == "int8":
            run.quantize()
        run.validate()
        manifest = run.write(run.generation(), run.tensorrt())
        load_bundle(tmp)  # the runtime's reader must accept what was written
    return ExportResult(out, manifest, list(run.rows.values()))
