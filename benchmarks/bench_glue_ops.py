"""The element-wise operators around a T2I step's matrix products, one ONNX Runtime CPU kernel at a time.

Each group is one function computed several ways (the way our graphs write it first); every way runs
as its own ONNX graph on the same input at the 24-layer step's shapes (CFG batch 2 x (N+2) = 516
rows of width 2048, MLP 8192), timed by ONNX Runtime's profiler (kernel time, median over runs),
and checked to give the same numbers as the first way. Why it exists: which fusions pay on this
CPU. ORT's SkipLayerNormalization, for one, is several times slower than the Add and
LayerNormalization it replaces, so the int8 graphs no longer use it (``export/ort_fusion.py``), and
the standard Gelu (opset 20) is several times faster than the chain opset 18 spells out.
Run: ``python benchmarks/bench_glue_ops.py [--repeat 20]``; writes benchmarks/results/glue_ops.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from common import machine, median, print_table, save_plot, save_results, usable_cores

ROWS, WIDTH, MLP = 516, 2048, 8192
EPS = 1e-5
MS = "com.microsoft"


def _graphs() -> tuple[dict[str, dict[str, tuple[list[Any], dict[str, tuple[int, ...]]]]], dict[str, float]]:
    """({group: {way: (nodes, input shapes)}}, scalar constants); every graph writes ``y``."""
    from onnx import helper as h

    c = {"half": 0.5, "one": 1.0, "scale": 0.7978845608028654, "cubic": 0.044715, "three": 3.0}
    norm_in = {"a": (2, ROWS // 2, WIDTH), "b": (2, ROWS // 2, WIDTH)}
    gelu_in = {"x": (2, ROWS // 2, MLP)}
    tanh_gelu = [h.make_node("Pow", ["x", "three"], ["p"]), h.make_node("Mul", ["p", "cubic"], ["m"]),
                 h.make_node("Add", ["x", "m"], ["i"]), h.make_node("Mul", ["i", "scale"], ["s"]),
                 h.make_node("Tanh", ["s"], ["t"]), h.make_node("Add", ["t", "one"], ["o"]),
                 h.make_node("Mul", ["o", "half"], ["hh"]), h.make_node("Mul", ["x", "hh"], ["y"])]
    return {
        "residual sum + LayerNorm (516 x 2048)": {
            "Add + LayerNormalization": ([h.make_node("Add", ["a", "b"], ["s"]),
                                          h.make_node("LayerNormalization", ["s", "gamma", "beta"], ["y"],
                                                      axis=-1, epsilon=EPS)], norm_in),
            "SkipLayerNormalization": ([h.make_node("SkipLayerNormalization", ["a", "b", "gamma", "beta"], ["y"],
                                                    domain=MS, epsilon=EPS)], norm_in),
        },
        "tanh GELU (516 x 8192)": {
            "Gelu-20 (approximate=tanh)": ([h.make_node("Gelu", ["x"], ["y"], approximate="tanh")], gelu_in),
            "FastGelu": ([h.make_node("FastGelu", ["x"], ["y"], domain=MS)], gelu_in),
            "decomposed (torch's export at opset 18)": (tanh_gelu, gelu_in),
        },
        "q/k LayerNorm over the head (2 x 32 x 258 x 64)": {
            "LayerNormalization": ([h.make_node("LayerNormalization", ["x", "gamma64", "beta64"], ["y"],
                                                axis=-1, epsilon=EPS)], {"x": (2, 32, ROWS // 2, 64)}),
        },
    }, c


def _model(nodes: list[Any], shapes: dict[str, tuple[int, ...]], consts: dict[str, float]) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(np.float32(v).reshape(()), k) for k, v in consts.items()]
    for name, n in (("gamma", WIDTH), ("beta", WIDTH), ("gamma64", 64), ("beta64", 64)):
        inits.append(numpy_helper.from_array(rng.uniform(0.5, 1.5, n).astype(np.float32), name))
    used = {i for n in nodes for i in n.input}
    inits = [t for t in inits if t.name in used]
    inputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v)) for k, v in shapes.items()]
    graph = helper.make_graph(nodes, "op", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(MS, 1)]
                             ).SerializeToString()


def measure(nodes: list[Any], shapes: dict[str, tuple[int, ...]], consts: dict[str, float], threads: int,
            repeat: int) -> tuple[float, np.ndarray]:
    """(median kernel ms per run, the output) of one graph under ORT's profiler, ORT's fusions off."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    feed = {k: rng.standard_normal(v).astype(np.float32) for k, v in shapes.items()}
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # time what is written
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "showo_glue_ops")
    session = ort.InferenceSession(_model(nodes, shapes, consts), options, providers=["CPUExecutionProvider"])
    out = session.run(None, feed)[0]
    for _ in range(repeat):
        session.run(None, feed)
    path = Path(session.end_profiling())
    try:
        events = json.loads(path.read_text())
    finally:
        path.unlink(missing_ok=True)
    per_run: dict[int, float] = defaultdict(float)
    run = -1
    for e in events:
        if e.get("cat") == "Session" and e.get("name") == "model_run":
            run += 1
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_run[run] += float(e["dur"]) / 1e3
    runs = [per_run[i] for i in sorted(per_run) if i >= 1]  # the first run (allocation) is dropped
    return median(runs), out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="profiled runs per graph (default 20)")
    parser.add_argument("--threads", type=int, default=None, help="threads (default all cores)")
    parser.add_argument("--out-dir", default=None, help="results directory (default benchmarks/results)")
    args = parser.parse_args(argv)
    threads = args.threads or usable_cores()
    groups, consts = _graphs()
    results: dict[str, dict[str, Any]] = {}
    rows = []
    for group, ways in groups.items():
        results[group] = {}
        first_ms = first_out = None
        for way, (nodes, shapes) in ways.items():
            ms, out = measure(nodes, shapes, consts, threads, args.repeat)
            diff = 0.0 if first_out is None else float(np.max(np.abs(out - first_out)))
            if first_out is None:
                first_ms, first_out = ms, out
            results[group][way] = {"kernel_ms": ms, "vs_first": ms / first_ms, "max_abs_diff_vs_first": diff}
            rows.append([group, way, f"{ms:.3f}", f"{ms / first_ms:.2f}x", f"{diff:.1e}"])
    print_table(["function", "written as", "kernel ms", "vs first", "max |diff|"], rows)
    save_results("glue_ops", {"machine": machine(), "what": __doc__.splitlines()[0],
                              "config": {"rows": ROWS, "width": WIDTH, "mlp": MLP, "threads": threads,
                                         "repeat": args.repeat}, "results": results}, args.out_dir)
    plot(results, args.out_dir)


def plot(results: dict[str, dict[str, Any]], out_dir: str | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values = [], []
    for group, ways in results.items():
        for way, r in ways.items():
            labels.append(f"{group.split(' (')[0]}: {way}")
            values.append(r["kernel_ms"])
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(labels) + 1))
    ax.barh(range(len(labels)), values)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ONNX Runtime CPU kernel ms (one call)")
    ax.set_title("element-wise operators of a 24-layer T2I step, each way of writing them", fontsize=9)
    fig.tight_layout()
    save_plot("glue_ops", fig, out_dir)
    plt.close(fig)


if __name__ == "__main__":
    main()
