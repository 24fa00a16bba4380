"""How close the Runtime gets to this machine's limit: FLOP/s of each T2I stage against the measured
fp32 matmul peak, and MMU decode bytes/s against the measured memory bandwidth, in one run.

1. Peaks, each measured in a fresh subprocess with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
   (so OpenBLAS picks its kernel for this CPU; the kernel it ran is recorded): numpy sgemm of
   2048^2 and 4096^2 on all cores and on one; ONNX Runtime's own MatMul (MLAS) and torch.mm on the
   shapes the T2I step multiplies; a large array copy (memory bandwidth).
2. The stages: bench_t2i's variants (own processes, ``--steps`` steps, medians) split into prefix,
   steps, sampler, VQ decode; FLOPs counted from the config (benchmarks/flops.py); achieved
   GFLOP/s and the fraction of the sgemm peak. MMU decode (bench_mmu's runtime variants): weight
   bytes streamed per token / ms per token against the copy bandwidth.
Run: ``python benchmarks/roofline.py [--layers 24] [--quick]``; writes benchmarks/results/roofline.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import flops  # noqa: E402
from bench_t2i import runtime_text_columns  # noqa: E402
from common import print_table, run_child, save_plot, save_results, usable_cores  # noqa: E402
from models import (BUNDLE_KINDS, ModelSpec, add_model_args, add_output_args, ensure_bundles,  # noqa: E402
                    results_name, spec_from_args)

HERE = Path(__file__).resolve().parent
TARGET_FRACTION = 0.70

_SGEMM = r"""
import json, os, statistics, sys, time
import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
out = {"env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                               "OMP_NUM_THREADS")}}
out["blas"] = [{k: i.get(k) for k in ("internal_api", "prefix", "version", "architecture", "num_threads",
                                      "threading_layer")} for i in threadpool_info() if i.get("user_api") == "blas"]
def bench(n, repeat):
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=c); np.matmul(a, b, out=c)
    runs = []
    for _ in range(repeat):
        t = time.perf_counter(); np.matmul(a, b, out=c); runs.append(time.perf_counter() - t)
    return {"n": n, "median_s": statistics.median(runs), "gflops": 2 * n ** 3 / statistics.median(runs) / 1e9,
            "best_gflops": 2 * n ** 3 / min(runs) / 1e9, "runs": repeat}
repeat = int(sys.argv[1])
out["all_threads"] = [bench(n, repeat) for n in (2048, 4096)]
with threadpool_limits(1, user_api="blas"):
    out["one_thread"] = [bench(2048, max(3, repeat // 2))]
# memory bandwidth: copy of a 512 MiB array (read + write)
src = np.ones(2 ** 27, dtype=np.float32); dst = np.empty_like(src)
np.copyto(dst, src); runs = []
for _ in range(5):
    t = time.perf_counter(); np.copyto(dst, src); runs.append(time.perf_counter() - t)
out["copy_gb_per_s"] = 2 * src.nbytes / statistics.median(runs) / 1e9
print(json.dumps(out))
"""

_ORT_MATMUL = r"""
import json, statistics, sys, time
import numpy as np, onnx, onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
shapes, threads, repeat = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
res = []
for m, k, n in shapes:
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((k, n), dtype=np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], [w])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.inter_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((m, k), dtype=np.float32)
    s.run(None, {"x": x}); s.run(None, {"x": x}); runs = []
    for _ in range(repeat):
        t = time.perf_counter(); s.run(None, {"x": x}); runs.append(time.perf_counter() - t)
    entry = {"m": m, "k": k, "n": n, "ort_gflops": 2 * m * k * n / statistics.median(runs) / 1e9}
    try:
        import torch
        torch.set_num_threads(threads)
        a, b = torch.from_numpy(x), torch.from_numpy(numpy_helper.to_array(w).copy())
        torch.mm(a, b); runs = []
        for _ in range(repeat):
            t = time.perf_counter(); torch.mm(a, b); runs.append(time.perf_counter() - t)
        entry["torch_gflops"] = 2 * m * k * n / statistics.median(runs) / 1e9
    except ImportError:
        pass
    res.append(entry)
print(json.dumps(res))
"""


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(key, None)
    return env


def measure_peaks(repeat: int, threads: int, step_shapes: list[tuple[int, int, int]] | None) -> dict[str, Any]:
    """sgemm / memory peaks (numpy + OpenBLAS) and ORT/torch matmul GFLOP/s, each in a fresh subprocess
    (``step_shapes`` None: numpy only)."""
    sgemm = json.loads(subprocess.run([sys.executable, "-c", _SGEMM, str(repeat)], env=_clean_env(), check=True,
                                      stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1])
    mm: list[dict[str, Any]] = []
    if step_shapes is not None:
        shapes = [(2048, 2048, 2048), (4096, 4096, 4096)] + step_shapes
        mm = json.loads(subprocess.run([sys.executable, "-c", _ORT_MATMUL, json.dumps(shapes), str(threads),
                                        str(repeat)], env=_clean_env(), check=True, stdout=subprocess.PIPE,
                                       text=True).stdout.strip().splitlines()[-1])
    peak = max(r["gflops"] for r in sgemm["all_threads"])
    return {"sgemm": sgemm, "sgemm_peak_gflops": peak, "matmul_engines": mm,
            "blas_kernel": ", ".join(f"{b.get('prefix')} {b.get('version')} {b.get('architecture')}"
                                     for b in sgemm["blas"]) or "unknown"}


def nominal_peak(machine_mhz: float | None, cores: int) -> float | None:
    """cores x clock x 32 fp32 FLOP/cycle (two 256-bit FMA pipes: Zen 4, Skylake-class); informative only."""
    return cores * machine_mhz * 1e6 * 32 / 1e9 if machine_mhz else None


def _cpu_mhz() -> float | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    except (OSError, ValueError):
        pass
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_model_args(parser)
    parser.add_argument("--steps", type=int, default=4, help="MaskGIT steps per timed T2I call (default 4)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs (default 3; 1 at >= 24 layers)")
    parser.add_argument("--threads", type=int, default=None, help="threads (default all cores)")
    parser.add_argument("--variants", default="cached,ort-fp32,ort-int8",
                        help="bench_t2i variants to place on the roofline (default cached,ort-fp32,ort-int8)")
    parser.add_argument("--mmu-tokens", type=int, default=16, help="MMU decode tokens measured (0 = skip MMU)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    add_output_args(parser, "roofline")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    spec = spec_from_args(args)
    config = spec.config()
    threads = args.threads or usable_cores()
    repeat = args.repeat or (1 if spec.layers >= 24 or args.quick else 3)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    rows_step = 2 * (config.num_image_tokens + 2)  # CFG rows x image-segment rows
    d, m = config.transformer.hidden_size, config.transformer.intermediate_size
    step_shapes = [(rows_step, d, d), (rows_step, d, m), (rows_step, m, d),
                   (2 * config.num_image_tokens, d, config.layout.codebook_size)]

    print("[roofline] measuring peaks ...", file=sys.stderr, flush=True)
    peaks = measure_peaks(5 if args.quick else 9, threads, step_shapes)
    peak = peaks["sgemm_peak_gflops"]
    nominal = nominal_peak(_cpu_mhz(), threads)

    kinds = tuple(k for k in BUNDLE_KINDS if f"ort-{k}" in variants)
    bundles = ensure_bundles(spec, kinds, args.cache_dir) if kinds else {}
    base = {"spec": spec.describe(), "threads": threads, "steps": args.steps, "guidance": 1.75, "batch": 1,
            "repeat": repeat, "warmup": 1, "greedy": False, "seed": 0}
    t2i: dict[str, Any] = {}
    for v in variants:
        params = {**base, "variant": v}
        if v.startswith("ort-"):
            params["bundle"] = str(bundles[v[4:]])
        print(f"[roofline] t2i {v} ...", file=sys.stderr, flush=True)
        t2i[v] = run_child(HERE / "bench_t2i.py", params)

    # the peaks again after the stages: a busy machine shows a low peak; keep the higher of the two
    print("[roofline] measuring peaks again ...", file=sys.stderr, flush=True)
    again = measure_peaks(5 if args.quick else 9, threads, None)
    peaks["sgemm_again"] = again["sgemm"]
    peaks["sgemm_peak_gflops"] = peak = max(peak, again["sgemm_peak_gflops"])
    peaks["copy_gb_per_s"] = max(peaks["sgemm"]["copy_gb_per_s"], again["sgemm"]["copy_gb_per_s"])

    cols = runtime_text_columns(config, 1)
    step_f = {"official": flops.t2i_official_step(config).total, "cached": flops.t2i_step(config).total,
              "runtime": flops.t2i_step(config, columns=cols).total}
    prefix_f = {"cached": flops.t2i_prefix(config).total, "runtime": flops.t2i_prefix(config, columns=cols).total}
    stages: list[dict[str, Any]] = []
    for v, r in t2i.items():
        kind = v if v in ("official", "cached") else "runtime"
        step_ms = r["steps_ms"] / args.steps
        gf = step_f[kind] / (step_ms * 1e-3) / 1e9
        stages.append({"variant": v, "stage": "step", "ms": step_ms, "gflop": step_f[kind] / 1e9, "gflops_per_s": gf,
                       "fraction_of_sgemm_peak": gf / peak})
        if kind != "official" and r["prefix_ms"] > 0:
            gf = prefix_f[kind] / (r["prefix_ms"] * 1e-3) / 1e9
            stages.append({"variant": v, "stage": "prefix", "ms": r["prefix_ms"], "gflop": prefix_f[kind] / 1e9,
                           "gflops_per_s": gf, "fraction_of_sgemm_peak": gf / peak})
        for extra in ("sampler_ms", "vq_decode_ms"):
            stages.append({"variant": v, "stage": extra[:-3], "ms": r[extra] / (args.steps if extra == "sampler_ms"
                                                                                 else 1),
                           "per": "step" if extra == "sampler_ms" else "image"})

    mmu: dict[str, Any] = {}
    if args.mmu_tokens > 1:
        for v in [x for x in variants if x.startswith("ort-")]:
            print(f"[roofline] mmu {v} ...", file=sys.stderr, flush=True)
            r = run_child(HERE / "bench_mmu.py", {
                "spec": spec.describe(), "threads": threads, "tokens": args.mmu_tokens, "question_len": 16, "batch": 1,
                "repeat": repeat, "warmup": 1, "variant": v, "bundle": str(bundles[v[4:]])})
            weights = _decode_weight_bytes(config, v[4:] if v.startswith("ort-") else "fp32")
            per_token_s = r["decode_ms_per_token"] * 1e-3
            mmu[v] = {"decode_ms_per_token": r["decode_ms_per_token"], "weight_bytes_per_token": weights,
                      "gb_per_s": weights / per_token_s / 1e9,
                      "fraction_of_copy_bandwidth": weights / per_token_s / 1e9 / peaks["copy_gb_per_s"],
                      "prompt_len": r["prompt_len"]}

    print(f"fp32 sgemm peak (numpy, {peaks['blas_kernel']}, {threads} threads): {peak:.1f} GFLOP/s"
          + (f"; nominal {nominal:.0f} GFLOP/s at {_cpu_mhz():.0f} MHz x 32 FLOP/cycle" if nominal else ""))
    print_table(["m x k x n", "ORT MatMul GFLOP/s", "torch.mm GFLOP/s"],
                [[f"{e['m']}x{e['k']}x{e['n']}", e["ort_gflops"], e.get("torch_gflops", float("nan"))]
                 for e in peaks["matmul_engines"]])
    print_table(["variant", "stage", "ms", "GFLOP", "GFLOP/s", "of sgemm peak"],
                [[s["variant"], s["stage"] + (f" (per {s['per']})" if "per" in s else ""), s["ms"],
                  s.get("gflop", float("nan")), s.get("gflops_per_s", float("nan")),
                  s.get("fraction_of_sgemm_peak", float("nan"))] for s in stages])
    if mmu:
        print(f"memory copy bandwidth: {peaks['copy_gb_per_s']:.1f} GB/s")
        print_table(["variant", "decode ms/token", "weights GB/token", "GB/s", "of copy bandwidth"],
                    [[v, x["decode_ms_per_token"], x["weight_bytes_per_token"] / 1e9, x["gb_per_s"],
                      x["fraction_of_copy_bandwidth"]] for v, x in mmu.items()])
    target = next((s for s in stages if s["variant"] == "ort-fp32" and s["stage"] == "step"), None)
    verdict = None
    if target:
        verdict = {"target_fraction": TARGET_FRACTION, "ort_fp32_step_fraction": target["fraction_of_sgemm_peak"],
                   "met": target["fraction_of_sgemm_peak"] >= TARGET_FRACTION}
        print(f"Runtime fp32 transformer step: {target['fraction_of_sgemm_peak']:.0%} of the sgemm peak "
              f"(target {TARGET_FRACTION:.0%})")
    name = args.name or results_name("roofline", spec)
    payload = {
        "what": "achieved FLOP/s of T2I stages vs measured sgemm peak; MMU decode bytes/s vs copy bandwidth",
        "config": {"spec": spec.describe(), "steps": args.steps, "repeat": repeat, "threads": threads,
                   "flop_convention": "2*m*n*k per matrix product (benchmarks/flops.py)"},
        "peaks": peaks, "nominal_peak_gflops": nominal, "stages": stages, "mmu_decode": mmu, "t2i_timings": t2i,
        "target": verdict, "command": " ".join(["python", "benchmarks/roofline.py", *sys.argv[1:]]),
    }
    path = save_results(name, payload, args.out_dir)
    if not args.no_plot:
        plot(name, stages, peaks, nominal, args.out_dir, spec)
    print(f"wrote {path}")


def _decode_weight_bytes(config, kind: str) -> float:
    """Bytes of weights one decode step reads: every layer's matrices + the full lm_head (+1 embedding row).

    ``kind`` as in BUNDLE_KINDS: int8-fast stores one int8 byte per weight, the accurate int8 scheme two
    (the weight and its int8 residual), fp32 four.
    """
    tc = config.transformer
    d, m = tc.hidden_size, tc.intermediate_size
    per = {"int8-fast": 1, "int8": 2}.get(kind, 4)
    return float(tc.num_layers * (4 * d * d + 2 * d * m) * per + d * tc.vocab_size * per)


def plot(name: str, stages: list[dict[str, Any]], peaks: dict[str, Any], nominal: float | None,
         out_dir: Path | None, spec: ModelSpec) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rated = [s for s in stages if "gflops_per_s" in s]
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [f"{s['variant']}\n{s['stage']}" for s in rated]
    ax.bar(range(len(rated)), [s["gflops_per_s"] for s in rated],
           color=["#2ca02c" if s["variant"].startswith("ort") else "#1f77b4" for s in rated])
    for i, s in enumerate(rated):
        ax.text(i, s["gflops_per_s"], f"{s['fraction_of_sgemm_peak']:.0%}", ha="center", va="bottom", fontsize=8)
    peak = peaks["sgemm_peak_gflops"]
    ax.axhline(peak, color="k", ls="--", lw=1, label=f"numpy sgemm peak {peak:.0f} GFLOP/s")
    ax.axhline(TARGET_FRACTION * peak, color="r", ls=":", lw=1, label=f"target {TARGET_FRACTION:.0%} of peak")
    ort_best = max(e["ort_gflops"] for e in peaks["matmul_engines"])
    ax.axhline(ort_best, color="g", ls="-.", lw=1, label=f"ORT MatMul best {ort_best:.0f} GFLOP/s")
    ax.set_xticks(range(len(rated)), labels, fontsize=8)
    ax.set_ylabel("achieved GFLOP/s (matmul FLOPs / wall time)")
    ax.set_title(f"T2I stages vs fp32 matmul peak ({spec.layers} layers, hidden {spec.hidden}); "
                 f"int8 runs int8 products", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    save_plot(name, fig, out_dir)


if __name__ == "__main__":
    main()
