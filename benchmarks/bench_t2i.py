"""One T2I image (CFG, MaskGIT), five ways, side by side in one run:

  official  PyTorch reference, ``mode="official"``: the whole sequence recomputed every step with
            full-vocabulary logits, Python loop, torch eager fp32 (how upstream Show-o runs)
  cached    PyTorch reference, ``mode="cached"``: text prefix once, N+2 image rows per step
  ort-fp32  showo_sdk.Runtime on ONNX Runtime CPU, fp32 bundle (C++ MaskGIT loop)
  ort-int8  showo_sdk.Runtime on ONNX Runtime CPU, dynamic-int8 bundle (the exporter's default
            "accurate" scheme: three int8 products per weight, greedy codes as fp32's)
  ort-int8-fast  the same on the one-product "fast" int8 scheme

Per image: total ms, split into prefix, transformer steps, sampler (everything else in the loop)
and VQ decode; speed-ups over ``official`` (ratios within this run); peak RSS. Every variant runs in
its own process (clean peak RSS; a 24-layer model freed between variants). Timings are medians of
``--repeat`` runs after ``--warmup`` one-step runs. ``--rounds R`` runs the whole list R times in
rotated order and also reports each round's ratios (paired runs minutes apart: on a machine whose
speed drifts, the spread shows it).

Default: phi-1.5 width (hidden 2048, 32 heads, MLP 8192, vocabulary 58,498) with random weights at
4 layers, T=18, N=256, text block 129 (L=387), guidance 1.75, official-width MAGVIT-v2 decoder.
``--layers 24`` is the full depth (T=4, one run). ``--model shapes`` is the shipped model.
Run: ``python benchmarks/bench_t2i.py [--layers 24] [--quick]``; writes benchmarks/results/<name>.{json,png}.
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

import flops  # noqa: E402
from common import (  # noqa: E402
    Clock, median, peak_rss_mb, print_table, rss_mb, save_plot, save_results,
    usable_cores,
)
from models import (ModelSpec, add_model_args, add_run_args, bundle_bytes, chosen_variants, ratios_by_round,  # noqa: E402
                    results_name, run_variants, spec_from_args)

VARIANTS = ("official", "cached", "ort-fp32", "ort-int8", "ort-int8-fast")
STAGES = ("prefix_ms", "steps_ms", "sampler_ms", "vq_decode_ms")
PROMPT_TOKENS = 16  # a typical short prompt; the text block is padded to max_text_len + 1 anyway


def runtime_text_columns(config, batch: int) -> int:
    """Text-block columns the Runtime computes for this benchmark's prompts (from the first not-all-PAD one)."""
    from showo_sdk.prompting import Prompting

    t = config.text_block_len
    cond, uncond = prompt_ids(config, batch)
    return t - Prompting(config).t2i_block_start(np.concatenate([cond, uncond])[:, :t])


def prompt_ids(config, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """(cond, uncond) T2I sequences (B, L): a fixed random prompt of PROMPT_TOKENS text ids, and the null prompt."""
    from showo_sdk.prompting import Prompting

    lay = config.layout
    rng = np.random.default_rng(1234)
    text = rng.integers(0, lay.bos_id if lay.bos_id > 0 else lay.text_vocab_size, size=PROMPT_TOKENS).tolist()
    p = Prompting(config)
    return p.t2i_ids([text] * batch), p.t2i_null_ids(batch)


# ---- one variant, in a child process ----------------------------------------------------------------
def _torch_variant(p: dict[str, Any]) -> dict[str, Any]:
    import torch

    from models import build_torch
    from showo_sdk.model.generate import t2i_generate

    torch.set_num_threads(p["threads"])
    spec = ModelSpec(**p["spec"])
    start = time.perf_counter()
    model, config, vq = build_torch(spec)
    load_s = time.perf_counter() - start
    cond, uncond = (torch.from_numpy(a) for a in prompt_ids(config, p["batch"]))
    mode = p["variant"]
    clock = Clock()
    if mode == "official":
        model.forward = clock.wrap("forward", model.forward)
    else:
        model.hidden_states = clock.wrap("hidden", model.hidden_states)
        model.lm_logits = clock.wrap("head", model.lm_logits)
    grid = tuple(config.image_grid)

    def once(steps: int) -> tuple[dict[str, float], np.ndarray]:
        clock.reset()
        t0 = time.perf_counter()
        codes = t2i_generate(model, config, cond, uncond, steps=steps, guidance_scale=p["guidance"],
                             generator=torch.Generator().manual_seed(p["seed"]), greedy=p["greedy"], mode=mode)
        t1 = time.perf_counter()
        with torch.no_grad():
            vq.decode(codes, grid=grid)
        t2 = time.perf_counter()
        codes_ms = (t1 - t0) * 1e3
        if mode == "official":
            prefix, steps_ms = 0.0, clock.total_ms("forward")
        else:
            first = clock.events[0]
            prefix = (first[2] - first[1]) * 1e3
            steps_ms = clock.total_ms("hidden", "head") - prefix
        return {"codes_ms": codes_ms, "prefix_ms": prefix, "steps_ms": steps_ms,
                "sampler_ms": codes_ms - prefix - steps_ms, "vq_decode_ms": (t2 - t1) * 1e3,
                "total_ms": (t2 - t0) * 1e3}, codes.numpy()

    return _measure(p, once, load_s)


def _ort_variant(p: dict[str, Any]) -> dict[str, Any]:
    import showo_sdk

    start = time.perf_counter()
    rt = showo_sdk.Runtime(p["bundle"], backend="ort-cpu", num_threads=p["threads"], verify_checksums=False)
    cond, uncond = prompt_ids(rt.config, p["batch"])
    rt.decode_codes(rt.generate_codes(cond, uncond, steps=1, guidance_scale=p["guidance"], greedy=True))  # loads
    load_s = time.perf_counter() - start

    def once(steps: int) -> tuple[dict[str, float], np.ndarray]:
        codes = rt.generate_codes(cond, uncond, steps=steps, guidance_scale=p["guidance"], seed=p["seed"],
                                  greedy=p["greedy"])
        made = rt.last_timings  # the Runtime's own per-stage split
        rt.decode_codes(codes)
        decoded = rt.last_timings
        prefix, steps_ms = made.stages["t2i_prefix"].ms, made.stages["t2i_step"].ms
        out = {"codes_ms": made.total_ms, "prefix_ms": prefix, "steps_ms": steps_ms, "sampler_ms": made.host_ms,
               "vq_decode_ms": decoded.total_ms, "total_ms": made.total_ms + decoded.total_ms}
        return out, codes

    return _measure(p, once, load_s)


def _measure(p: dict[str, Any], once, load_s: float) -> dict[str, Any]:
    load_rss = rss_mb()
    for _ in range(p["warmup"]):
        once(1)
    runs, codes = [], None
    for _ in range(p["repeat"]):
        r, codes = once(p["steps"])
        runs.append(r)
    out: dict[str, Any] = {k: median([r[k] for r in runs]) for k in runs[0]}
    out["per_step_ms"] = out["steps_ms"] / p["steps"]
    out.update(variant=p["variant"], runs=runs, load_s=load_s, rss_after_load_mb=load_rss, peak_rss_mb=peak_rss_mb(),
               threads=p["threads"], codes=codes[0].tolist())
    return out


def child(p: dict[str, Any]) -> dict[str, Any]:
    return _torch_variant(p) if p["variant"] in ("official", "cached") else _ort_variant(p)


# ---- the whole run --------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_model_args(parser)
    parser.add_argument("--steps", type=int, default=None, help="MaskGIT steps T (default 18; 4 at >= 24 layers)")
    parser.add_argument("--guidance", type=float, default=1.75, help="CFG scale (default 1.75, the 256-px setting)")
    parser.add_argument("--batch", type=int, default=1, help="images per call (default 1)")
    add_run_args(parser, "t2i", VARIANTS, warmup_help="untimed one-step runs per variant first (default 1)",
                 quick_help="T=4, one timed run (a check that everything runs)")
    parser.add_argument("--greedy", action="store_true",
                        help="argmax sampling, no noise: records how many codes each variant shares with 'cached'")
    parser.add_argument("--seed", dest="sample_seed", type=int, default=0, help="sampling seed (default 0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return
    spec = spec_from_args(args)
    deep = spec.layers >= 24
    steps = args.steps or (4 if deep or args.quick else 18)
    repeat = args.repeat or (1 if deep or args.quick else 3)
    variants = chosen_variants(args, VARIANTS)
    threads = args.threads or usable_cores()
    config = spec.config()
    base = {"spec": spec.describe(), "threads": threads, "steps": steps, "guidance": args.guidance,
            "batch": args.batch, "repeat": repeat, "warmup": args.warmup, "greedy": args.greedy,
            "seed": args.sample_seed}
    results, bundles = run_variants(__file__, "t2i", spec, args, variants, base,
                                    lambda r: f"{r['total_ms']:.0f} ms per call")
    report(args, spec, config, steps, repeat, threads, variants, results, bundles)


def report(args, spec, config, steps, repeat, threads, variants, results, bundles) -> None:
    guided = args.guidance > 0
    cols = {"cached": config.text_block_len, "runtime": runtime_text_columns(config, args.batch)}
    fl = {"official": flops.t2i_image(config, steps, args.batch, guided, official=True),
          **{k: flops.t2i_image(config, steps, args.batch, guided, columns=c) for k, c in cols.items()}}
    step_flops = {"official": flops.t2i_official_step(config, args.batch, guided).total,
                  **{k: flops.t2i_step(config, args.batch, guided, columns=c).total for k, c in cols.items()}}
    prefix_flops = {k: flops.t2i_prefix(config, args.batch, guided, columns=c).total for k, c in cols.items()}
    ref = results.get("official")
    ratios: dict[str, dict[str, float]] = {}
    for v, r in results.items():
        kind = v if v in ("official", "cached") else "runtime"
        r["steps_gflops_per_s"] = step_flops[kind] * steps / (r["steps_ms"] * 1e-3) / 1e9
        if kind != "official" and r["prefix_ms"] > 0:
            r["prefix_gflops_per_s"] = prefix_flops[kind] / (r["prefix_ms"] * 1e-3) / 1e9
        r["per_step_ms"] = r["steps_ms"] / steps  # again: merged rounds take a median of steps_ms
        if ref is not None:
            ratios[v] = _speedups(ref, r)
    by_round = ratios_by_round(results, _speedups)
    agreement = None
    if args.greedy and "cached" in results:
        want = np.array(results["cached"]["codes"])
        agreement = {v: float(np.mean(np.array(r["codes"]) == want)) for v, r in results.items()}
    rows = []
    for v in variants:
        r = results[v]
        rows.append([v, r["total_ms"], r["prefix_ms"], r["steps_ms"], r["per_step_ms"], r["sampler_ms"],
                     r["vq_decode_ms"], ratios.get(v, {}).get("speedup_total", float("nan")),
                     r["steps_gflops_per_s"], r["peak_rss_mb"]])
    desc = (f"{spec.model} Show-o, {config.transformer.num_layers} layers, hidden {config.transformer.hidden_size}, "
            f"V={config.layout.vocab_size}, N={config.num_image_tokens}, L={config.t2i_seq_len}, T={steps}, "
            f"CFG {args.guidance}, batch {args.batch}, {threads} threads, VQ {spec.vq}")
    print(f"one T2I call: {desc} (median of {repeat} runs x {args.rounds} rounds, ms)")
    print_table(["variant", "total", "prefix", "steps", "per step", "sampler", "VQ dec", "x official",
                 "step GFLOP/s", "peak RSS MB"], rows)
    if args.rounds > 1 and by_round:
        print("x official, round by round (paired):", "; ".join(
            f"{v} {' / '.join(f'{x:.2f}' for x in by_round[v]['speedup_total'])}" for v in variants if v != "official"))
    if agreement:
        print("greedy codes equal to 'cached':", ", ".join(f"{v} {a:.1%}" for v, a in agreement.items()))
    name = args.name or results_name("t2i", spec)
    for r in results.values():
        r.pop("codes", None)
    payload = {
        "what": "one T2I call (CFG MaskGIT + VQ decode): official recompute vs cached prefix vs Runtime ORT fp32/int8 "
                "(accurate, fast)",
        "config": {"description": desc, "spec": spec.describe(), "showo_config": config.to_dict(), "steps": steps,
                   "guidance_scale": args.guidance, "batch": args.batch, "repeat": repeat, "rounds": args.rounds,
                   "warmup_runs": args.warmup, "threads": threads, "greedy": args.greedy, "prompt_tokens": PROMPT_TOKENS},
        "bundles": {p: {"path": str(b), "bytes": bundle_bytes(b)} for p, b in bundles.items()},
        "flops": {"image_official": fl["official"].to_json(), "image_cached": fl["cached"].to_json(),
                  "image_runtime": fl["runtime"].to_json(), "step_official": step_flops["official"],
                  "step_cached": step_flops["cached"], "step_runtime": step_flops["runtime"],
                  "prefix_cached": prefix_flops["cached"], "prefix_runtime": prefix_flops["runtime"],
                  "text_columns": cols, "vq_decode": _vq_flops(spec, config, args.batch)},
        "stages": "prefix = t2i_prefix graph / first hidden_states call (official: none, it recomputes); steps = "
                  "transformer calls of the loop; sampler = the rest of the loop (CFG mix, softmax, sampling, "
                  "re-masking, glue); vq_decode = codes -> pixels. total = codes + VQ decode.",
        "timings": results, "ratios_vs_official": ratios, "ratios_by_round": by_round,
        "greedy_agreement_vs_cached": agreement,
        "command": " ".join(["python", "benchmarks/bench_t2i.py", *sys.argv[1:]]),
    }
    path = save_results(name, payload, args.out_dir)
    if not args.no_plot:
        plot(name, desc, variants, results, ratios, args.out_dir)
    print(f"wrote {path}")


def _speedups(ref: dict[str, Any], r: dict[str, Any]) -> dict[str, float]:
    """How many times faster than the official way ``r`` is: whole call, code generation, transformer steps."""
    return {"speedup_total": ref["total_ms"] / r["total_ms"], "speedup_codes": ref["codes_ms"] / r["codes_ms"],
            "speedup_steps": ref["steps_ms"] / r["steps_ms"]}


def _vq_flops(spec: ModelSpec, config, batch: int) -> float | None:
    try:
        vq_cfg = None if spec.from_checkpoint else spec.vq_config()
        if vq_cfg is None:
            from models import build_torch

            vq_cfg = build_torch(spec)[2].config
        return flops.vq_decode(vq_cfg, tuple(config.image_grid), batch)
    except Exception:  # FLOP counting is informative only
        return None


def plot(name: str, desc: str, variants: list[str], results: dict[str, Any], ratios: dict[str, Any],
         out_dir: Path | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.7 * len(variants) + 1.8))
    colors = {"prefix_ms": "#8c564b", "steps_ms": "#1f77b4", "sampler_ms": "#ff7f0e", "vq_decode_ms": "#2ca02c"}
    longest = max(results[v]["total_ms"] for v in variants)
    scale, unit = (1e3, "s") if longest > 2000 else (1.0, "ms")
    y = np.arange(len(variants))[::-1]
    for i, v in enumerate(variants):
        left = 0.0
        for stage in STAGES:
            val = results[v][stage] / scale
            if not np.isfinite(val):
                continue
            val = max(0.0, val)
            ax.barh(y[i], val, left=left, color=colors[stage], label=stage[:-3].replace("_", " ") if i == 0 else None)
            left += val
        speed = ratios.get(v, {}).get("speedup_total")
        total = results[v]["total_ms"] / scale
        ax.text(left, y[i], f"  {total:.3g} {unit}" + (f"  ({speed:.2f}x)" if speed else ""), va="center")
    ax.set_yticks(y, variants)
    ax.set_xlabel(f"{unit} per call (median); stages: prefix, transformer steps, sampler, VQ decode")
    ax.set_title(desc, fontsize=8)
    ax.set_xlim(0, longest / scale * 1.4)
    ax.legend(loc="lower right", fontsize=8)
    save_plot(name, fig, out_dir)


if __name__ == "__main__":
    main()
