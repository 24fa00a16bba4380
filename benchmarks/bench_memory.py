"""Memory of a loaded Runtime, default vs ``low_memory=True``, side by side on one bundle.

With all four transformer graphs in use (one T2I call and one MMU answer), each variant in its own
process reports: the time to load the graphs, its anonymous memory (private: ONNX Runtime's
prepacked weight copies, activations, the KV cache), its file-backed resident memory (the bundle's
memory-mapped weights file: page cache, shared between graphs and processes, counted by Linux once
per mapping) and the steady T2I and MMU latency. ``low_memory=True`` turns ONNX Runtime's weight
prepacking off, so the graphs compute from the mapped file instead of private copies.
Run: ``python benchmarks/bench_memory.py [--engine DIR | --checkpoint DIR]``; writes
benchmarks/results/<name>.{json,png}. The default is the shipped model's bundle (exported on first use).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, print_table, run_child, save_plot, save_results, usable_cores  # noqa: E402
from models import add_output_args  # noqa: E402

VARIANTS = ("default", "low_memory")


def _memory_mb() -> dict[str, float]:
    """RssAnon and RssFile of this process (Linux), in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {"anon_mb": int(fields["RssAnon"].split()[0]) / 1024, "file_mb": int(fields["RssFile"].split()[0]) / 1024}


def _child(p: dict[str, Any]) -> dict[str, Any]:
    from showo_sdk import Runtime

    before = _memory_mb()
    rt = Runtime(p["bundle"], backend="ort-cpu", num_threads=p["threads"], low_memory=p["variant"] == "low_memory")
    cfg = rt.config
    codes = np.random.default_rng(0).integers(0, cfg.layout.codebook_size, (1, cfg.num_image_tokens))
    question = np.array(rt.tokenizer.encode("What color is the circle?"), dtype=np.int64)

    def t2i() -> None:
        rt.generate_codes(rt.prompting.t2i_ids([[1, 2, 3]]), rt.prompting.t2i_null_ids(1), steps=p["steps"],
                          guidance_scale=1.75, greedy=True)

    def mmu() -> None:
        rt.understand_ids(codes, question, max_new_tokens=p["tokens"], eot_id=cfg.layout.mask_id)

    load_s = 0.0
    for first_call in (t2i, mmu):  # the first use of each graph loads it, timed as "<graph> (load)"
        first_call()
        load_s += sum(t.ms for name, t in rt.last_timings.stages.items() if name.endswith("(load)")) / 1e3
    loaded = _memory_mb()
    runs = {"t2i": [], "mmu": []}
    for _ in range(p["repeat"]):
        for name, fn in (("t2i", t2i), ("mmu", mmu)):
            start = time.perf_counter()
            fn()
            runs[name].append((time.perf_counter() - start) * 1e3)
    weights = rt.bundle.manifest.get("weights") or {}
    return {"load_s": load_s, "anon_mb": loaded["anon_mb"] - before["anon_mb"], "file_mb": loaded["file_mb"],
            "t2i_ms": median(runs["t2i"]), "mmu_ms": median(runs["mmu"]), "runs": runs,
            "weights_file_mb": (weights.get("stored_bytes") or 0) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", type=Path, help="the bundle to measure (default: the shipped model's)")
    parser.add_argument("--checkpoint", type=Path, help="export this checkpoint (cached) and measure its bundle")
    parser.add_argument("--steps", type=int, default=4, help="MaskGIT steps per T2I call (default 4)")
    parser.add_argument("--tokens", type=int, default=16, help="new tokens per MMU call (default 16)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls of each kind (default 3)")
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--child", help=argparse.SUPPRESS)
    add_output_args(parser, "memory")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return
    from showo_sdk.cli import SHIPPED_MODEL, ensure_bundle

    engine = args.engine or ensure_bundle(args.checkpoint or SHIPPED_MODEL, progress=True,
                                          shipped=args.checkpoint is None)
    base = {"bundle": str(engine), "steps": args.steps, "tokens": args.tokens, "repeat": args.repeat,
            "threads": args.threads}
    results = {v: run_child(__file__, {**base, "variant": v}) for v in VARIANTS}
    manifest = json.loads((Path(engine) / "manifest.json").read_text())
    model = manifest["model"]["config"]["transformer"]
    kind = manifest["precision"] + ("-fast" if manifest.get("int8_scheme") == "fast" else "")  # as benchmarks/models
    desc = (f"{model['num_layers']} layers, hidden {model['hidden_size']}, {kind}, "
            f"weights file {results['default']['weights_file_mb']:.0f} MiB, {args.threads} threads")
    print(f"Runtime with all four transformer graphs loaded: {desc} (median of {args.repeat})")
    rows = [[v, r["load_s"], r["anon_mb"], r["file_mb"], r["t2i_ms"], r["mmu_ms"]] for v, r in results.items()]
    print_table(["variant", "load s", "anon MiB", "file MiB", f"T2I ms (T={args.steps})",
                 f"MMU ms ({args.tokens} tok)"], rows)
    d, lm = results["default"], results["low_memory"]
    ratios = {"anon_memory": lm["anon_mb"] / d["anon_mb"], "t2i_time": lm["t2i_ms"] / d["t2i_ms"],
              "mmu_time": lm["mmu_ms"] / d["mmu_ms"], "load_time": lm["load_s"] / max(d["load_s"], 1e-9)}
    print("low_memory / default: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    name = args.name or f"memory_{model['num_layers']}l_{kind}"
    path = save_results(name, {"bundle": str(engine), "description": desc, "settings": base, "results": results,
                               "low_memory_over_default": ratios}, args.out_dir)
    print(f"wrote {path}")
    if not args.no_plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        x = np.arange(len(VARIANTS))
        axes[0].bar(x - 0.2, [results[v]["anon_mb"] for v in VARIANTS], 0.4, label="anonymous (private)")
        axes[0].bar(x + 0.2, [results[v]["file_mb"] for v in VARIANTS], 0.4, label="file-backed (mapped weights)")
        axes[0].set_ylabel("MiB")
        axes[0].legend(fontsize=7)
        axes[1].bar(x - 0.2, [results[v]["t2i_ms"] for v in VARIANTS], 0.4, label=f"T2I (T={args.steps})")
        axes[1].bar(x + 0.2, [results[v]["mmu_ms"] for v in VARIANTS], 0.4, label=f"MMU ({args.tokens} tokens)")
        axes[1].set_ylabel("ms")
        axes[1].legend(fontsize=7)
        for ax in axes:
            ax.set_xticks(x, VARIANTS)
        fig.suptitle(desc, fontsize=9)
        save_plot(name, fig, args.out_dir)


if __name__ == "__main__":
    main()
