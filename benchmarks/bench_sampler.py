"""One MaskGIT re-masking step (CFG mix + softmax + sampling + selection): C++ vs numpy vs torch.

B=2, K=8192, guidance 1.75 (logits (4, N, K)), every position masked, for N=256 and N=1024.
The step function returns precomputed logits without copying, so only the sampler is timed.
The torch column is the official Python formulation (softmax, multinomial, gather, where, sort).
Run: ``python benchmarks/bench_sampler.py [--quick]``; writes benchmarks/results/sampler.{json,png}.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from common import print_table, save_plot, save_results, time_ms

from showo_sdk.sampling import HAVE_EXTENSION, maskgit_generate, maskgit_generate_reference

BATCH = 2
CODES = 8192
GUIDANCE = 1.75
STEPS = 18  # the step timed is step 0 of an 18-step cosine schedule


def torch_step(logits, canvas, generator):
    """Step 0 of the official t2i_generate loop, in torch, from (2B, N, K) logits."""
    import torch

    steps, temperature, n = STEPS, 1.0, canvas.shape[1]
    cond, uncond = logits.chunk(2)
    mixed = (1 + GUIDANCE) * cond - GUIDANCE * uncond
    probs = mixed.softmax(dim=-1)
    sampled = torch.multinomial(probs.reshape(-1, CODES), 1, generator=generator)[:, 0].view(*mixed.shape[:-1])
    unknown = canvas == CODES
    sampled = torch.where(unknown, sampled, canvas)
    ratio = 1.0 / steps
    mask_ratio = torch.cos(torch.tensor(ratio) * math.pi * 0.5)
    selected = torch.gather(probs, -1, sampled[..., None]).squeeze(-1)
    selected = torch.where(unknown, selected, torch.finfo(selected.dtype).max)
    mask_len = (n * mask_ratio).floor().unsqueeze(0)
    mask_len = torch.max(torch.tensor([1]), torch.min(unknown.sum(dim=-1, keepdim=True) - 1, mask_len))
    temperature = temperature * (1.0 - ratio)
    noise = torch.zeros_like(selected).uniform_(0, 1, generator=generator)
    gumbel = -torch.log(torch.clamp(-torch.log(torch.clamp(noise, min=1e-20)), min=1e-20))
    confidence = torch.log(torch.clamp(selected, min=1e-20)) + temperature * gumbel
    cut_off = torch.gather(torch.sort(confidence, dim=-1).values, 1, mask_len.long())
    return torch.where(confidence < cut_off, CODES, sampled)


def bench_size(n: int, repeat: int) -> dict[str, object]:
    rng = np.random.default_rng(n)
    logits = rng.standard_normal((2 * BATCH, n, CODES), dtype=np.float32) * np.float32(3.0)
    canvas = np.full((BATCH, n), CODES, dtype=np.int64)

    def step_fn(_canvas: np.ndarray) -> np.ndarray:
        return logits

    def run(generate, **kw):
        return lambda: generate(step_fn, canvas, 1, num_codes=CODES, guidance_scale=GUIDANCE, seed=0, **kw)

    times = {}
    if HAVE_EXTENSION:
        times["cpp_1_thread"] = time_ms(run(maskgit_generate, num_threads=1), repeat)
        times["cpp_all_threads"] = time_ms(run(maskgit_generate, num_threads=0), repeat)
    times["numpy_reference"] = time_ms(run(maskgit_generate_reference), max(3, repeat // 3), warmup=1)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        t_logits, t_canvas = torch.from_numpy(logits), torch.from_numpy(canvas)
        generator = torch.Generator().manual_seed(0)
        with torch.inference_mode():
            times["torch_official"] = time_ms(lambda: torch_step(t_logits, t_canvas, generator), repeat)
        times["torch_threads"] = torch.get_num_threads()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeat = 3 if args.quick else 9
    results = {}
    for n in (256, 1024):
        results[str(n)] = bench_size(n, repeat)
    rows, ratios = [], {}
    for n, t in results.items():
        med = {k: v["median_ms"] for k, v in t.items() if isinstance(v, dict)}
        best = min(med.get("cpp_1_thread", math.inf), med.get("cpp_all_threads", math.inf))
        ratios[n] = {f"{k}_over_cpp_best": v / best for k, v in med.items() if not k.startswith("cpp")}
        if "cpp_1_thread" in med:
            ratios[n]["cpp_1_thread_over_cpp_all_threads"] = med["cpp_1_thread"] / med["cpp_all_threads"]
        rows.append([n, *(med.get(k, float("nan")) for k in
                          ("cpp_1_thread", "cpp_all_threads", "numpy_reference", "torch_official")),
                     *(ratios[n].get(k, float("nan")) for k in ("numpy_reference_over_cpp_best",
                                                                "torch_official_over_cpp_best"))])
    print(f"one re-masking step, B={BATCH}, K={CODES}, guidance {GUIDANCE} (median ms)")
    print_table(["N", "C++ 1 thr", "C++ all", "numpy ref", "torch", "numpy/C++", "torch/C++"], rows)
    save_results("sampler", {
        "what": "one MaskGIT re-masking step: CFG mix + softmax + sampling + confidence + selection",
        "batch": BATCH, "num_codes": CODES, "guidance_scale": GUIDANCE, "timings": results, "ratios": ratios,
    })
    plot(results)


def plot(results: dict[str, dict[str, object]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["cpp_1_thread", "cpp_all_threads", "numpy_reference", "torch_official"]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.2
    for k, label in enumerate(labels):
        ys = [results[n][label]["median_ms"] if label in results[n] else 0.0 for n in results]
        ax.bar(np.arange(len(results)) + (k - 1.5) * width, ys, width, label=label.replace("_", " "))
    ax.set_xticks(np.arange(len(results)), [f"N={n}" for n in results])
    ax.set_yscale("log")
    ax.set_ylabel("median ms per step (log)")
    ax.set_title(f"MaskGIT step, B={BATCH}, K={CODES}, CFG")
    ax.legend()
    save_plot("sampler", fig)


if __name__ == "__main__":
    main()
