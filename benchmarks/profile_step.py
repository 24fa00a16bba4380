"""Where a T2I step's time goes, operator by operator: ONNX Runtime's own profiler on the Runtime's graphs.

For each precision the bundle's ``t2i_step`` session is created with profiling on and driven by the
Runtime's T2I driver (``--steps`` greedy steps after a warm-up call); the profile's kernel times are
summed per operator type. What it answers: how much of a step is matrix products (bounded by the
sgemm peak, see roofline.py) and how much is the element-wise glue (Add, Mul, Where, Concat, Split,
LayerNorm) that graph fusions could remove.
Run: ``python benchmarks/profile_step.py [--layers 24]``; writes benchmarks/results/profile_step.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table, save_plot, save_results, usable_cores  # noqa: E402
from models import add_model_args, add_output_args, ensure_bundles, results_name, spec_from_args  # noqa: E402

#: Operators that multiply matrices (everything else is element-wise or data movement).
MATMUL_OPS = ("MatMul", "FusedMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger",
              "MatMulNBits", "Gemm")


def op_times(profile: list[dict[str, Any]]) -> tuple[dict[str, float], int]:
    """(microseconds per operator type, number of session runs) from an ORT profile's events."""
    per_op: dict[str, float] = defaultdict(float)
    runs = 0
    for event in profile:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += float(event["dur"])
        elif event.get("cat") == "Session" and event.get("name") == "model_run":
            runs += 1
    return dict(per_op), runs


def profile_precision(bundle: Path, steps: int, threads: int, repeat: int = 1) -> dict[str, Any]:
    """Profile ``repeat`` x ``steps`` greedy T2I steps of ``bundle``'s t2i_step graph; per-op ms per step."""
    import onnxruntime as ort

    import showo_sdk
    from bench_t2i import prompt_ids
    from showo_sdk.runtime.backends import CPU_DISABLED_FUSIONS, OrtGraph
    from showo_sdk.runtime.timing import TimedGraph

    rt = showo_sdk.Runtime(bundle, backend="ort-cpu", num_threads=threads, verify_checksums=False)
    info = rt.bundle.graphs["t2i_step"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "showo_profile_t2i_step")
    session = ort.InferenceSession(str(info.path), options, providers=["CPUExecutionProvider"],
                                   disabled_optimizers=CPU_DISABLED_FUSIONS)  # as the Runtime's own sessions
    graphs = rt._graphs  # the profiled session goes into the Runtime's graph table, timed like its own
    graphs._graphs["t2i_step"] = TimedGraph(OrtGraph("t2i_step", session), graphs.recorder)
    cond, uncond = prompt_ids(rt.config, 1)
    rt.generate_codes(cond, uncond, steps=1, guidance_scale=1.75, greedy=True)  # warm-up (also profiled: dropped)
    warm_runs = 1
    wall_ms = 0.0
    for _ in range(repeat):
        rt.generate_codes(cond, uncond, steps=steps, guidance_scale=1.75, greedy=True)
        wall_ms += rt.last_timings.stages["t2i_step"].ms
    wall_step_ms = wall_ms / (steps * repeat)
    path = Path(session.end_profiling())
    try:
        events = json.loads(path.read_text())
    finally:
        path.unlink(missing_ok=True)
    per_op, runs = op_times(events)
    if runs != steps * repeat + warm_runs:
        raise RuntimeError(f"profile holds {runs} runs, expected {steps * repeat + warm_runs}")
    scale = 1e-3 / runs  # us over all runs -> ms per step (the warm-up run is typical of a step: averaged in)
    ms = {op: t * scale for op, t in sorted(per_op.items(), key=lambda kv: -kv[1])}
    kernels = sum(ms.values())
    matmul = sum(t for op, t in ms.items() if op in MATMUL_OPS)
    return {"per_op_ms": ms, "kernel_ms_per_step": kernels, "wall_ms_per_step": wall_step_ms,
            "matmul_ms_per_step": matmul, "matmul_share": matmul / kernels if kernels else float("nan")}


def plot(name: str, results: dict[str, dict[str, Any]], out_dir: Path | None, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    for row, (precision, r) in enumerate(results.items()):
        left = 0.0
        top = list(r["per_op_ms"].items())
        shown, rest = top[:6], sum(t for _, t in top[6:])
        for op, t in shown + [("other", rest)]:
            ax.barh(row, t, left=left)
            if t > 0.04 * r["kernel_ms_per_step"]:
                ax.text(left + t / 2, row, op, ha="center", va="center", fontsize=7, rotation=90 if t < 120 else 0)
            left += t
    ax.set_yticks(range(len(results)), list(results))
    ax.set_xlabel("ms per T2I step (ONNX Runtime kernel time)")
    ax.set_title(title, fontsize=9)
    save_plot(name, fig, out_dir)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_model_args(parser)
    parser.add_argument("--steps", type=int, default=3, help="profiled MaskGIT steps (default 3)")
    parser.add_argument("--precisions", default="fp32,int8,int8-fast",
                        help="bundle kinds to profile (default fp32,int8,int8-fast)")
    parser.add_argument("--threads", type=int, default=None, help="threads (default all cores)")
    parser.add_argument("--repeat", type=int, default=1, help="profiled calls of --steps steps (default 1)")
    add_output_args(parser, "profile_step")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    spec = spec_from_args(args)
    threads = args.threads or usable_cores()
    precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
    bundles = ensure_bundles(spec, precisions, args.cache_dir)
    results = {}
    for precision in precisions:
        print(f"[profile] {precision} ...", file=sys.stderr, flush=True)
        results[precision] = profile_precision(bundles[precision], args.steps, threads, args.repeat)
    ops = sorted({op for r in results.values() for op in r["per_op_ms"]},
                 key=lambda op: -max(r["per_op_ms"].get(op, 0.0) for r in results.values()))
    print(f"t2i_step per operator (ms per step, {threads} threads, {args.repeat} x {args.steps} steps + 1 warm-up)")
    print_table(["operator", *precisions], [[op, *(r["per_op_ms"].get(op, 0.0) for r in results.values())]
                                            for op in ops[:12]])
    for precision, r in results.items():
        print(f"{precision}: kernels {r['kernel_ms_per_step']:.1f} ms per step (wall {r['wall_ms_per_step']:.1f} ms), "
              f"matrix products {r['matmul_share']:.0%}")
    name = args.name or results_name("profile_step", spec)
    path = save_results(name, {
        "what": "ONNX Runtime profile of the Runtime's t2i_step graph: kernel time per operator type",
        "config": {"spec": spec.describe(), "steps": args.steps, "repeat": args.repeat, "threads": threads},
        "matmul_ops": list(MATMUL_OPS), "results": results,
        "command": " ".join(["python", "benchmarks/profile_step.py", *sys.argv[1:]]),
    }, args.out_dir)
    if not args.no_plot:
        plot(name, results, args.out_dir, f"t2i_step operators: {spec.describe()['layers']} layers, "
                                          f"hidden {spec.hidden}, {threads} threads")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
