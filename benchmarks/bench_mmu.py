"""MMU: a 64-token answer after a prompt of N=256 image tokens + a question, five ways, side by side:

  official  PyTorch reference, ``use_cache=False``: the whole sequence recomputed for every new
            token with full-vocabulary logits on every row (how upstream ``mmu_generate`` runs)
  cached    PyTorch reference with a KV cache (prefill, then one-token steps)
  ort-fp32  showo_sdk.Runtime on ONNX Runtime CPU, fp32 bundle (mmu_prefill + decode_step over a
            fixed-capacity cache bound once)
  ort-int8  the same on the dynamic-int8 bundle (default "accurate" scheme)
  ort-int8-fast  the same on the one-product "fast" int8 scheme

Reported: time to first token (TTFT: prefill + the first pick), decode tokens/s after it, overall
tokens/s (all new tokens / whole call), ratios to ``official`` (same run), peak RSS. Greedy; the
eot id is [MASK], which the random models never emit, so every run makes exactly ``--tokens``.
Each variant runs in its own process; medians of ``--repeat`` runs after a 2-token warm-up;
``--rounds R`` repeats the list R times in rotated order and reports each round's ratios too.
Run: ``python benchmarks/bench_mmu.py [--layers 24] [--quick]``; writes benchmarks/results/<name>.{json,png}.
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
from models import (ModelSpec, add_model_args, add_run_args, bundle_bytes, chosen_variants, never_eot,  # noqa: E402
                    ratios_by_round, results_name, run_variants, spec_from_args)

VARIANTS = ("official", "cached", "ort-fp32", "ort-int8", "ort-int8-fast")


def mmu_inputs(config, batch: int, question_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(image codes (B, N), question ids (Lq,)): random codes and a fixed random question."""
    rng = np.random.default_rng(4321)
    codes = rng.integers(0, config.layout.codebook_size, size=(batch, config.num_image_tokens), dtype=np.int64)
    question = rng.integers(0, min(config.layout.bos_id, config.layout.text_vocab_size) or 1, size=question_len)
    return codes, question.astype(np.int64)


def _timing(t0: float, t_end: float, first_step_start: float | None, tokens: int) -> dict[str, float]:
    total = (t_end - t0) * 1e3
    ttft = (first_step_start - t0) * 1e3 if first_step_start is not None else total
    decode = total - ttft
    return {"total_ms": total, "ttft_ms": ttft, "decode_ms": decode, "new_tokens": tokens,
            "tokens_per_s": tokens / (total * 1e-3),
            "decode_tokens_per_s": (tokens - 1) / (decode * 1e-3) if tokens > 1 and decode > 0 else float("nan"),
            "decode_ms_per_token": decode / (tokens - 1) if tokens > 1 else float("nan")}


def _torch_variant(p: dict[str, Any]) -> dict[str, Any]:
    import torch

    from models import build_torch
    from showo_sdk.model.generate import mmu_generate
    from showo_sdk.prompting import Prompting

    torch.set_num_threads(p["threads"])
    spec = ModelSpec(**p["spec"])
    start = time.perf_counter()
    model, config, _ = build_torch(spec, with_vq=False)
    load_s = time.perf_counter() - start
    codes, question = mmu_inputs(config, p["batch"], p["question_len"])
    prompt = torch.from_numpy(Prompting(config).mmu_ids(codes, question))
    clock = Clock()
    model.forward = clock.wrap("forward", model.forward)
    use_cache = p["variant"] == "cached"

    def once(tokens: int) -> tuple[dict[str, float], list[int]]:
        clock.reset()
        t0 = time.perf_counter()
        out = mmu_generate(model, config, prompt, max_new_tokens=tokens, eot_id=never_eot(config), greedy=True,
                           use_cache=use_cache)
        t1 = time.perf_counter()
        starts = clock.starts("forward")
        return _timing(t0, t1, starts[1] if len(starts) > 1 else None, len(out[0])), out[0]

    return _measure(p, once, load_s, prompt.shape[1])


def _ort_variant(p: dict[str, Any]) -> dict[str, Any]:
    import showo_sdk

    start = time.perf_counter()
    rt = showo_sdk.Runtime(p["bundle"], backend="ort-cpu", num_threads=p["threads"], verify_checksums=False)
    codes, question = mmu_inputs(rt.config, p["batch"], p["question_len"])
    eot = never_eot(rt.config)
    rt.understand_ids(codes, question, max_new_tokens=2, eot_id=eot)  # loads both graphs
    load_s = time.perf_counter() - start

    def once(tokens: int) -> tuple[dict[str, float], list[int]]:
        out = rt.understand_ids(codes, question, max_new_tokens=tokens, eot_id=eot)
        t = rt.last_timings  # the Runtime's own per-stage split
        decode = t.stages.get("decode_step")
        r = _timing(0.0, t.total_ms / 1e3, decode.first_start_ms / 1e3 if decode else None, len(out[0]))
        r["prefill_graph_ms"] = t.stages["mmu_prefill"].ms
        r["decode_graph_ms"] = decode.ms if decode else 0.0
        return r, out[0]

    prompt_len = rt.prompting.mmu_ids(codes, question).shape[1]
    return _measure(p, once, load_s, prompt_len)


def _measure(p: dict[str, Any], once, load_s: float, prompt_len: int) -> dict[str, Any]:
    load_rss = rss_mb()
    for _ in range(p["warmup"]):
        once(2)
    runs, tokens = [], []
    for _ in range(p["repeat"]):
        r, tokens = once(p["tokens"])
        runs.append(r)
    out: dict[str, Any] = {k: median([r[k] for r in runs]) for k in runs[0]}
    out.update(variant=p["variant"], runs=runs, load_s=load_s, rss_after_load_mb=load_rss, peak_rss_mb=peak_rss_mb(),
               threads=p["threads"], prompt_len=prompt_len, tokens=tokens)
    return out


def child(p: dict[str, Any]) -> dict[str, Any]:
    return _torch_variant(p) if p["variant"] in ("official", "cached") else _ort_variant(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_model_args(parser)
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per answer (default 64)")
    parser.add_argument("--question-len", type=int, default=16, help="question template tokens (default 16)")
    parser.add_argument("--batch", type=int, default=1, help="answers per call (default 1, as upstream)")
    add_run_args(parser, "mmu", VARIANTS, warmup_help="untimed 2-token runs per variant first (default 1)",
                 quick_help="16 tokens, one timed run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return
    spec = spec_from_args(args)
    deep = spec.layers >= 24
    tokens = 16 if args.quick and args.tokens == 64 else args.tokens
    repeat = args.repeat or (1 if deep or args.quick else 3)
    variants = chosen_variants(args, VARIANTS)
    threads = args.threads or usable_cores()
    config = spec.config()
    base = {"spec": spec.describe(), "threads": threads, "tokens": tokens, "question_len": args.question_len,
            "batch": args.batch, "repeat": repeat, "warmup": args.warmup}
    results, bundles = run_variants(__file__, "mmu", spec, args, variants, base,
                                    lambda r: f"{r['tokens_per_s']:.2f} tokens/s")
    report(args, spec, config, tokens, repeat, threads, variants, results, bundles)


def report(args, spec, config, tokens, repeat, threads, variants, results, bundles) -> None:
    prompt_len = next(iter(results.values()))["prompt_len"]
    fl = {"official": flops.mmu_answer(config, prompt_len, tokens, official=True, batch=args.batch),
          "cached": flops.mmu_answer(config, prompt_len, tokens, batch=args.batch),
          "runtime": flops.mmu_answer(config, prompt_len, tokens, capacity=prompt_len + tokens - 1, batch=args.batch)}
    ref = results.get("official")
    ratios: dict[str, dict[str, float]] = {}
    for v, r in results.items():
        kind = "official" if v == "official" else ("cached" if v == "cached" else "runtime")
        r["gflops_per_s"] = fl[kind].total / (r["total_ms"] * 1e-3) / 1e9
        if ref is not None:
            ratios[v] = _speedups(ref, r)
    by_round = ratios_by_round(results, _speedups)
    want = results.get("cached", {}).get("tokens")
    agreement = None
    if want:
        agreement = {v: float(np.mean([a == b for a, b in zip(r["tokens"], want)])) for v, r in results.items()}
    rows = [[v, r["ttft_ms"], r["decode_ms_per_token"], r["decode_tokens_per_s"], r["tokens_per_s"],
             ratios.get(v, {}).get("tokens_per_s", float("nan")), r["total_ms"], r["peak_rss_mb"]]
            for v, r in ((v, results[v]) for v in variants)]
    desc = (f"{spec.model} Show-o, {config.transformer.num_layers} layers, hidden {config.transformer.hidden_size}, "
            f"V={config.layout.vocab_size}, prompt {prompt_len} tokens (N={config.num_image_tokens}), {tokens} new "
            f"tokens, batch {args.batch}, {threads} threads")
    print(f"MMU answer: {desc} (median of {repeat} runs x {args.rounds} rounds)")
    print_table(["variant", "TTFT ms", "ms/token", "decode tok/s", "tok/s", "x official", "total ms", "peak RSS MB"],
                rows)
    if args.rounds > 1 and by_round:
        print("tokens/s x official, round by round (paired):", "; ".join(
            f"{v} {' / '.join(f'{x:.2f}' for x in by_round[v]['tokens_per_s'])}" for v in variants if v != "official"))
    if agreement:
        print("greedy tokens equal to 'cached':", ", ".join(f"{v} {a:.1%}" for v, a in agreement.items()))
    name = args.name or results_name("mmu", spec)
    for r in results.values():
        r.pop("tokens", None)
    payload = {
        "what": "MMU greedy answer: official recompute vs KV cache (torch) vs Runtime ORT fp32/int8 (accurate, fast)",
        "config": {"description": desc, "spec": spec.describe(), "showo_config": config.to_dict(),
                   "new_tokens": tokens, "prompt_len": prompt_len, "question_len": args.question_len,
                   "batch": args.batch, "repeat": repeat, "rounds": args.rounds, "warmup_runs": args.warmup,
                   "threads": threads},
        "bundles": {p: {"path": str(b), "bytes": bundle_bytes(b)} for p, b in bundles.items()},
        "flops": {k: v.to_json() for k, v in fl.items()},
        "definitions": "TTFT = call start to the first token chosen (start of the 2nd model call / first decode_step); "
                       "decode tokens/s = (tokens - 1) / (total - TTFT); tokens/s = tokens / total",
        "timings": results, "ratios_vs_official": ratios, "ratios_by_round": by_round,
        "greedy_agreement_vs_cached": agreement,
        "command": " ".join(["python", "benchmarks/bench_mmu.py", *sys.argv[1:]]),
    }
    path = save_results(name, payload, args.out_dir)
    if not args.no_plot:
        plot(name, desc, variants, results, ratios, args.out_dir)
    print(f"wrote {path}")


def _speedups(ref: dict[str, Any], r: dict[str, Any]) -> dict[str, float]:
    """How many times the official way's throughput (whole answer, decoding) and first-token speed ``r`` has."""
    return {"tokens_per_s": r["tokens_per_s"] / ref["tokens_per_s"],
            "decode_tokens_per_s": r["decode_tokens_per_s"] / ref["decode_tokens_per_s"],
            "ttft_speedup": ref["ttft_ms"] / r["ttft_ms"]}


def plot(name: str, desc: str, variants: list[str], results: dict[str, Any], ratios: dict[str, Any],
         out_dir: Path | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    x = np.arange(len(variants))
    tps = [results[v]["tokens_per_s"] for v in variants]
    a1.bar(x, tps, color="#1f77b4")
    for i, v in enumerate(variants):
        r = ratios.get(v, {}).get("tokens_per_s")
        a1.text(i, tps[i], f"{tps[i]:.3g}" + (f"\n{r:.1f}x" if r else ""), ha="center", va="bottom", fontsize=8)
    a1.set_xticks(x, variants)
    a1.set_ylabel("tokens/s (whole answer, median)")
    a1.set_yscale("log")
    a1.set_title("throughput")
    ttft = [results[v]["ttft_ms"] for v in variants]
    a2.bar(x, ttft, color="#ff7f0e")
    for i in range(len(variants)):
        a2.text(i, ttft[i], f"{ttft[i]:.0f}", ha="center", va="bottom", fontsize=8)
    a2.set_xticks(x, variants)
    a2.set_ylabel("time to first token, ms (median)")
    a2.set_title("TTFT")
    fig.suptitle(desc, fontsize=8)
    fig.tight_layout()
    save_plot(name, fig, out_dir)


if __name__ == "__main__":
    main()
