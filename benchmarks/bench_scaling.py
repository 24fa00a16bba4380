"""How the Runtime's T2I time scales: with the steps T (4, 8, 16, 32), the image tokens N (64, 256,
1024: 128, 256 and 512 px) and the batch (1, 2, 4 prompts; CFG doubles the rows), on ONNX Runtime CPU.

Each point is one process running bench_t2i's ``ort-*`` variant (medians of ``--repeat`` runs after
a one-step warm-up): codes time (prefix + steps + sampler) and VQ decode, per call and per image.
The T sweep also gives the fixed cost (intercept) and the cost per step (slope) of a linear fit.
Run: ``python benchmarks/bench_scaling.py [--precision int8] [--quick]``; writes
benchmarks/results/scaling.{json,png}.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import flops  # noqa: E402
from bench_t2i import runtime_text_columns  # noqa: E402
from common import print_table, run_child, save_plot, save_results, usable_cores  # noqa: E402
from models import BUNDLE_KINDS, ModelSpec, add_model_args, ensure_bundles, spec_from_args  # noqa: E402

HERE = Path(__file__).resolve().parent


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_model_args(parser)
    parser.add_argument("--precision", choices=tuple(BUNDLE_KINDS), default="fp32",
                        help="bundle kind (default fp32; int8 is the accurate scheme, int8-fast the one-product one)")
    parser.add_argument("--steps-list", type=_ints, default=[4, 8, 16, 32], help="T sweep (default 4,8,16,32)")
    parser.add_argument("--tokens-list", type=_ints, default=[64, 256, 1024],
                        help="N sweep, squares of the grid side (default 64,256,1024)")
    parser.add_argument("--batch-list", type=_ints, default=[1, 2, 4], help="batch sweep (default 1,2,4)")
    parser.add_argument("--fixed-steps", type=int, default=8, help="T for the N and batch sweeps (default 8)")
    parser.add_argument("--guidance", type=float, default=1.75, help="CFG scale (default 1.75)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per point (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default all cores)")
    parser.add_argument("--quick", action="store_true", help="one timed run per point")
    parser.add_argument("--name", default=None, help="results name (default scaling, scaling_int8 ...)")
    parser.add_argument("--out-dir", type=Path, default=None, help="results directory (default benchmarks/results)")
    parser.add_argument("--no-plot", action="store_true")
    return parser.parse_args(argv)


def point(spec: ModelSpec, bundle: Path, variant: str, steps: int, batch: int, args, threads: int,
          repeat: int) -> dict[str, Any]:
    params = {"spec": spec.describe(), "threads": threads, "steps": steps, "guidance": args.guidance, "batch": batch,
              "repeat": repeat, "warmup": 1, "greedy": False, "seed": 0, "variant": variant, "bundle": str(bundle)}
    r = run_child(HERE / "bench_t2i.py", params)
    config = spec.config()
    keep = ("total_ms", "codes_ms", "prefix_ms", "steps_ms", "per_step_ms", "sampler_ms", "vq_decode_ms",
            "peak_rss_mb", "load_s")
    out = {k: r[k] for k in keep}
    out.update(steps=steps, batch=batch, num_image_tokens=config.num_image_tokens, t2i_seq_len=config.t2i_seq_len,
               ms_per_image=r["total_ms"] / batch, runs=r["runs"],
               step_gflop=flops.t2i_step(config, batch, args.guidance > 0,
                                         columns=runtime_text_columns(config, batch)).total / 1e9)
    out["step_gflops_per_s"] = out["step_gflop"] / (r["per_step_ms"] * 1e-3)
    print(f"[scaling] T={steps} N={config.num_image_tokens} B={batch}: {r['total_ms']:.0f} ms", file=sys.stderr,
          flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    base = spec_from_args(args)
    threads = args.threads or usable_cores()
    repeat = args.repeat or (1 if args.quick else 3)
    variant = f"ort-{args.precision}"
    sides = []
    if base.from_checkpoint and args.tokens_list != [base.grid ** 2]:
        print(f"[scaling] a checkpoint has one image grid: the N sweep is its N={base.grid ** 2} only", file=sys.stderr)
        args.tokens_list = [base.grid ** 2]
    for n in args.tokens_list:
        side = int(round(n ** 0.5))
        if side * side != n:
            raise SystemExit(f"--tokens-list: {n} is not a square (N = grid side^2)")
        sides.append(side)
    bundle = ensure_bundles(base, (args.precision,), args.cache_dir)[args.precision]

    sweep_t = [point(base, bundle, variant, t, 1, args, threads, repeat) for t in args.steps_list]
    sweep_n = []
    for side in sides:
        spec = replace(base, grid=side)
        b = bundle if spec == base else ensure_bundles(spec, (args.precision,), args.cache_dir)[args.precision]
        sweep_n.append(point(spec, b, variant, args.fixed_steps, 1, args, threads, repeat))
    sweep_b = [point(base, bundle, variant, args.fixed_steps, b, args, threads, repeat) for b in args.batch_list]

    ts = np.array([p["steps"] for p in sweep_t], dtype=float)
    codes = np.array([p["codes_ms"] for p in sweep_t])
    fit = None
    if len(ts) >= 2:
        slope, intercept = np.polyfit(ts, codes, 1)
        fit = {"ms_per_step": float(slope), "fixed_ms": float(intercept)}

    def rows(points, key):
        return [[p[key], p["total_ms"], p["codes_ms"], p["per_step_ms"], p["vq_decode_ms"], p["ms_per_image"],
                 p["step_gflops_per_s"], p["peak_rss_mb"]] for p in points]

    head = ["total ms", "codes ms", "ms/step", "VQ ms", "ms/image", "step GFLOP/s", "peak RSS MB"]
    desc = (f"Runtime ORT CPU {args.precision}, {base.layers} layers, hidden {base.hidden}, CFG {args.guidance}, "
            f"{threads} threads")
    print(f"scaling: {desc} (median of {repeat} runs)")
    print(f"vs steps T (N={base.grid ** 2}, batch 1)")
    print_table(["T", *head], rows(sweep_t, "steps"))
    if fit:
        print(f"  linear fit of codes ms: {fit['fixed_ms']:.0f} ms + {fit['ms_per_step']:.0f} ms x T")
    print(f"vs image tokens N (T={args.fixed_steps}, batch 1)")
    print_table(["N", *head], rows(sweep_n, "num_image_tokens"))
    print(f"vs batch (T={args.fixed_steps}, N={base.grid ** 2})")
    print_table(["batch", *head], rows(sweep_b, "batch"))
    name = args.name or ("scaling" if base == ModelSpec(layers=4) and args.precision == "fp32" else
                         f"scaling_{args.precision}" if base == ModelSpec(layers=4) else
                         f"scaling_{args.precision}_{base.key()}")
    payload = {"what": "Runtime T2I time vs steps T, image tokens N and batch", "description": desc,
               "config": {"spec": base.describe(), "precision": args.precision, "guidance_scale": args.guidance,
                          "fixed_steps": args.fixed_steps, "repeat": repeat, "threads": threads},
               "vs_steps": sweep_t, "vs_tokens": sweep_n, "vs_batch": sweep_b, "steps_fit": fit,
               "command": " ".join(["python", "benchmarks/bench_scaling.py", *sys.argv[1:]])}
    path = save_results(name, payload, args.out_dir)
    if not args.no_plot:
        plot(name, desc, sweep_t, sweep_n, sweep_b, fit, args.fixed_steps, args.out_dir)
    print(f"wrote {path}")


def plot(name, desc, sweep_t, sweep_n, sweep_b, fit, fixed_steps, out_dir) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    t = [p["steps"] for p in sweep_t]
    ax.plot(t, [p["codes_ms"] / 1e3 for p in sweep_t], "o-", label="codes (prefix+steps+sampler)")
    ax.plot(t, [p["total_ms"] / 1e3 for p in sweep_t], "s--", label="+ VQ decode")
    if fit:
        xs = np.array([min(t), max(t)])
        ax.plot(xs, (fit["fixed_ms"] + fit["ms_per_step"] * xs) / 1e3, ":", color="gray",
                label=f"{fit['fixed_ms']:.0f} + {fit['ms_per_step']:.0f}·T ms")
    ax.set_xlabel("MaskGIT steps T")
    ax.set_ylabel("seconds per image")
    ax.set_title("vs steps (N=256, batch 1)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    n = [p["num_image_tokens"] for p in sweep_n]
    ax.loglog(n, [p["codes_ms"] / 1e3 for p in sweep_n], "o-", label="codes")
    ax.loglog(n, [p["vq_decode_ms"] / 1e3 for p in sweep_n], "^-", label="VQ decode")
    ax.loglog(n, [p["total_ms"] / 1e3 for p in sweep_n], "s--", label="total")
    ax.set_xticks(n, [str(v) for v in n])
    ax.set_xlabel("image tokens N")
    ax.set_title(f"vs image tokens (T={fixed_steps}, batch 1)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[2]
    b = [p["batch"] for p in sweep_b]
    ax.plot(b, [p["total_ms"] / 1e3 for p in sweep_b], "o-", label="per call")
    ax.plot(b, [p["ms_per_image"] / 1e3 for p in sweep_b], "s--", label="per image")
    ax.set_xticks(b)
    ax.set_xlabel("batch (prompts; CFG rows = 2x)")
    ax.set_title(f"vs batch (T={fixed_steps}, N=256)", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(desc, fontsize=9)
    fig.tight_layout()
    save_plot(name, fig, out_dir)


if __name__ == "__main__":
    main()
