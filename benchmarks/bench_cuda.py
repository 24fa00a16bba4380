"""The PyTorch reference on a CUDA GPU at the real Show-o size: upstream's way vs ours, side by side.

  official  ``t2i_generate(mode="official")``: the whole sequence recomputed every step with
            full-vocabulary logits (how upstream Show-o runs on its GPUs); MMU recomputes per token
  cached    text prefix once, N+2 image rows and codebook logits per step; MMU with a KV cache

Each in fp32 (upstream's inference dtype) and with bfloat16 weights. Also checked in the same run:
greedy codes of official and cached agree (the fraction is printed and saved), so the speed-up is
of the same computation. Neither ONNX Runtime's CUDA provider nor TensorRT can be installed on
the machines this project has (see README), so the Runtime's GPU backends are not timed here.

Default: phi-1.5 width (hidden 2048, 32 heads, MLP 8192, vocabulary 58,498), random weights,
24 layers, T=18, N=256, text block 129, CFG 1.75, one image; MMU: 64 new tokens after N=256 image
tokens and a 16-token question. Timings are medians of ``--repeat`` runs after ``--warmup``, with
``torch.cuda.synchronize()`` around each. Run: ``python benchmarks/bench_cuda.py`` on a CUDA machine;
writes benchmarks/results/cuda_<L>l.{json,png}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median, print_table, save_plot, save_results  # noqa: E402
from models import add_model_args, build_torch, never_eot, spec_from_args  # noqa: E402

MODES = ("official", "cached")
DTYPES = ("fp32", "bf16")


def gpu_description(device: str) -> dict[str, Any]:
    import torch

    if not device.startswith("cuda"):
        return {"gpu": "none (CPU dry run)", "torch": torch.__version__}
    props = torch.cuda.get_device_properties(0)
    return {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count, "torch": torch.__version__,
            "cuda": torch.version.cuda, "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn) -> tuple[float, Any]:
    _sync()
    start = time.perf_counter()
    out = fn()
    _sync()
    return (time.perf_counter() - start) * 1e3, out


def bench_t2i(model, config, vq, args) -> dict[str, Any]:
    """ms per image (codes + VQ decode) for each mode, and official-vs-cached greedy code agreement."""
    import torch

    from bench_t2i import prompt_ids
    from showo_sdk.model.generate import t2i_generate

    cond, uncond = (torch.from_numpy(a) for a in prompt_ids(config, 1))
    grid = tuple(config.image_grid)

    def image(mode: str, steps: int, greedy: bool = False):
        gen = torch.Generator(args.device).manual_seed(0)
        codes = t2i_generate(model, config, cond, uncond, steps=steps, guidance_scale=args.guidance,
                             generator=gen, greedy=greedy, mode=mode)
        with torch.no_grad():
            vq.decode(codes, grid=grid)
        return codes

    out: dict[str, Any] = {}
    for mode in MODES:
        for _ in range(args.warmup):
            _timed(lambda: image(mode, args.steps))
        runs = [_timed(lambda: image(mode, args.steps))[0] for _ in range(args.repeat)]
        out[mode] = {"ms_per_image": median(runs), "runs_ms": runs}
    greedy = {mode: image(mode, args.steps, greedy=True).cpu() for mode in MODES}
    out["greedy_agreement"] = float((greedy["official"] == greedy["cached"]).float().mean())
    out["speedup_cached"] = out["official"]["ms_per_image"] / out["cached"]["ms_per_image"]
    return out


def bench_mmu(model, config, args) -> dict[str, Any]:
    """Time to first token and tokens/s of a 64-token answer, recompute vs KV cache; greedy token agreement."""
    import torch

    from bench_mmu import mmu_inputs
    from showo_sdk.model.generate import mmu_generate
    from showo_sdk.prompting import Prompting

    codes, question = mmu_inputs(config, 1, args.question_len)
    prompt = torch.from_numpy(Prompting(config).mmu_ids(codes, question))
    eot = never_eot(config)

    def answer(use_cache: bool, tokens: int):
        return mmu_generate(model, config, prompt, max_new_tokens=tokens, eot_id=eot, greedy=True, use_cache=use_cache)

    out: dict[str, Any] = {}
    tokens = {}
    for mode, use_cache in (("official", False), ("cached", True)):
        for _ in range(args.warmup):
            _timed(lambda: answer(use_cache, 2))
        first = median([_timed(lambda: answer(use_cache, 1))[0] for _ in range(args.repeat)])
        runs = []
        for _ in range(args.repeat):
            ms, toks = _timed(lambda: answer(use_cache, args.tokens))
            runs.append(ms)
            tokens[mode] = toks[0]
        out[mode] = {"ttft_ms": first, "total_ms": median(runs), "tokens_per_s": args.tokens / (median(runs) * 1e-3),
                     "runs_ms": runs}
    out["token_agreement"] = float(np.mean([a == b for a, b in zip(tokens["official"], tokens["cached"])]))
    out["speedup_cached"] = out["cached"]["tokens_per_s"] / out["official"]["tokens_per_s"]
    return out


def run(args) -> dict[str, Any]:
    import torch

    spec = spec_from_args(args)
    results: dict[str, Any] = {"spec": spec.describe(), "steps": args.steps, "guidance": args.guidance,
                               "mmu_tokens": args.tokens, "repeat": args.repeat, "gpu": gpu_description(args.device),
                               "t2i": {}, "mmu": {}}
    for dtype in args.dtypes:
        model, config, vq = build_torch(spec)
        model = model.to(args.device, torch.float32 if dtype == "fp32" else torch.bfloat16)
        vq = vq.to(args.device)
        print(f"[{dtype}] T2I ...", flush=True)
        results["t2i"][dtype] = bench_t2i(model, config, vq, args)
        print(f"[{dtype}] MMU ...", flush=True)
        results["mmu"][dtype] = bench_mmu(model, config, args)
        del model, vq
        if args.device.startswith("cuda"):
            results.setdefault("peak_gpu_memory_gib", {})[dtype] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    return results


def report(results: dict[str, Any], name: str, out_dir: Path | None, plot: bool) -> None:
    base = results["t2i"][next(iter(results["t2i"]))]["official"]["ms_per_image"]
    rows = []
    for dtype, r in results["t2i"].items():
        for mode in MODES:
            rows.append([f"t2i {mode} {dtype}", r[mode]["ms_per_image"], base / r[mode]["ms_per_image"],
                         r["greedy_agreement"]])
    mbase = results["mmu"][next(iter(results["mmu"]))]["official"]["tokens_per_s"]
    for dtype, r in results["mmu"].items():
        for mode in MODES:
            rows.append([f"mmu {mode} {dtype} (tok/s)", r[mode]["tokens_per_s"], r[mode]["tokens_per_s"] / mbase,
                         r["token_agreement"]])
    print(f"{results['gpu']['gpu']}, {results['spec']['layers']} layers, T={results['steps']}")
    print_table(["variant", "ms/image or tok/s", "x official fp32", "greedy agreement"], rows)
    path = save_results(name, results, out_dir)
    print(f"wrote {path}")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        labels = [f"{m}\n{d}" for d in results["t2i"] for m in MODES]
        axes[0].bar(labels, [results["t2i"][d][m]["ms_per_image"] for d in results["t2i"] for m in MODES])
        axes[0].set_ylabel("ms per image")
        axes[0].set_title(f"T2I, T={results['steps']} (lower is better)")
        axes[1].bar(labels, [results["mmu"][d][m]["tokens_per_s"] for d in results["mmu"] for m in MODES])
        axes[1].set_ylabel("tokens / s")
        axes[1].set_title(f"MMU, {results['mmu_tokens']} new tokens (higher is better)")
        fig.suptitle(f"PyTorch reference on {results['gpu']['gpu']}, {results['spec']['layers']} layers")
        print(f"wrote {save_plot(name, fig, out_dir)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser, layers=24)
    parser.add_argument("--steps", type=int, default=18, help="MaskGIT steps (default 18)")
    parser.add_argument("--guidance", type=float, default=1.75)
    parser.add_argument("--tokens", type=int, default=64, help="MMU new tokens (default 64)")
    parser.add_argument("--question-len", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--name", default=None, help="results name (default cuda_<L>l or cuda_shapes)")
    parser.add_argument("--out-dir", type=Path, default=None)
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for a dry run of the script")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench_cuda.py needs a CUDA GPU and a CUDA build of torch (torch.cuda.is_available() is False)")
    results = run(args)
    name = args.name or (f"cuda_{args.layers}l" if args.model == "random" else "cuda_shapes")
    if args.checkpoint and not args.name:
        name = f"cuda_{Path(args.checkpoint).name}"
    report(results, name, args.out_dir, not args.no_plot)


if __name__ == "__main__":
    main()
