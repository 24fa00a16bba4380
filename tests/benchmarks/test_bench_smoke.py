"""The benchmark scripts run end to end at a toy size and write the JSON they promise (no timing asserts).

The default run covers the torch variants of bench_t2i and bench_mmu (no export: a few seconds each);
the ``slow`` test also exports a toy bundle and runs the Runtime variants, roofline and bench_scaling.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
TOY = ["--layers", "1", "--hidden", "64", "--text-vocab", "300", "--codebook-bits", "5", "--grid", "2",
       "--text-len", "8", "--vq", "tiny", "--repeat", "1", "--threads", "1"]


def run(script: str, *args: str, tmp: Path, timeout: int = 600) -> dict:
    out = tmp / "results"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(BENCH / script), *TOY, "--cache-dir", str(tmp / "cache"),
                           "--out-dir", str(out), "--name", "smoke", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "smoke.png").is_file()
    data = json.loads((out / "smoke.json").read_text())
    machine = data["machine"]
    for key in ("cpu", "logical_cores", "numpy", "torch", "onnxruntime", "load_average_1m"):
        assert key in machine
    return data


T2I_KEYS = {"total_ms", "codes_ms", "prefix_ms", "steps_ms", "per_step_ms", "sampler_ms", "vq_decode_ms",
            "peak_rss_mb", "runs", "threads", "load_s"}
MMU_KEYS = {"ttft_ms", "total_ms", "tokens_per_s", "decode_tokens_per_s", "new_tokens", "peak_rss_mb", "runs",
            "prompt_len"}


def test_t2i_torch_variants(tmp_path):
    data = run("bench_t2i.py", "--variants", "official,cached", "--steps", "2", "--warmup", "0", "--greedy",
               tmp=tmp_path)
    assert set(data["timings"]) == {"official", "cached"}
    for r in data["timings"].values():
        assert T2I_KEYS <= set(r)
        assert r["runs"] and len(r["runs"]) == 1
    assert set(data["ratios_vs_official"]["cached"]) >= {"speedup_total", "speedup_steps"}
    assert data["greedy_agreement_vs_cached"]["official"] == 1.0  # the two reference modes agree exactly
    assert data["config"]["steps"] == 2 and data["flops"]["step_official"] > data["flops"]["step_cached"] > 0


def test_mmu_torch_variants(tmp_path):
    data = run("bench_mmu.py", "--variants", "official,cached", "--tokens", "4", "--warmup", "0", tmp=tmp_path)
    assert set(data["timings"]) == {"official", "cached"}
    for r in data["timings"].values():
        assert MMU_KEYS <= set(r)
        assert r["new_tokens"] == 4  # the eot never comes: every run makes the asked tokens
    assert set(data["ratios_vs_official"]["cached"]) >= {"tokens_per_s", "ttft_speedup"}
    assert data["greedy_agreement_vs_cached"]["official"] == 1.0


def test_t2i_rounds_pair_the_ratios(tmp_path):
    data = run("bench_t2i.py", "--variants", "official,cached", "--steps", "2", "--warmup", "0", "--rounds", "2",
               tmp=tmp_path)
    assert data["config"]["rounds"] == 2
    for r in data["timings"].values():
        assert len(r["runs"]) == 2 and len(r["rounds"]) == 2  # --repeat 1 in each of two rounds
        assert r["total_ms"] == pytest.approx(sum(run["total_ms"] for run in r["runs"]) / 2)  # median of two
        assert r["per_step_ms"] == pytest.approx(r["steps_ms"] / 2)
    ref, cached = data["timings"]["official"], data["timings"]["cached"]
    want = [a["total_ms"] / b["total_ms"] for a, b in zip(ref["rounds"], cached["rounds"])]
    assert data["ratios_by_round"]["cached"]["speedup_total"] == pytest.approx(want)


def test_mmu_rounds_pair_the_ratios(tmp_path):
    data = run("bench_mmu.py", "--variants", "official,cached", "--tokens", "3", "--warmup", "0", "--rounds", "2",
               tmp=tmp_path)
    assert data["config"]["rounds"] == 2
    assert all(len(r["runs"]) == 2 for r in data["timings"].values())
    assert len(data["ratios_by_round"]["cached"]["tokens_per_s"]) == 2


def test_cuda_bench_dry_run_on_the_cpu(tmp_path):
    """bench_cuda.py's logic, on the CPU at toy size (the GPU figures come from a CUDA machine)."""
    toy = TOY[:TOY.index("--threads")]  # torch's threads are not this script's business
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(BENCH / "bench_cuda.py"), *toy, "--device", "cpu", "--steps", "2",
                           "--tokens", "3", "--warmup", "0", "--out-dir", str(out), "--name", "smoke"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((out / "smoke.json").read_text())
    assert (out / "smoke.png").is_file() and data["spec"]["layers"] == 1
    for dtype in ("fp32", "bf16"):
        t2i, mmu = data["t2i"][dtype], data["mmu"][dtype]
        assert t2i["official"]["ms_per_image"] > 0 and t2i["cached"]["ms_per_image"] > 0
        assert mmu["official"]["tokens_per_s"] > 0 and 0.0 <= mmu["token_agreement"] <= 1.0
    assert data["t2i"]["fp32"]["greedy_agreement"] == 1.0  # fp32: cached decoding gives the official codes
    assert data["mmu"]["fp32"]["token_agreement"] == 1.0


@pytest.mark.slow
def test_runtime_variants_roofline_scaling(tmp_path):
    data = run("bench_t2i.py", "--steps", "2", "--warmup", "1", "--greedy", tmp=tmp_path)
    assert set(data["timings"]) == {"official", "cached", "ort-fp32", "ort-int8", "ort-int8-fast"}
    assert T2I_KEYS <= set(data["timings"]["ort-fp32"])
    assert data["greedy_agreement_vs_cached"]["ort-fp32"] == 1.0
    assert set(data["bundles"]) == {"fp32", "int8", "int8-fast"}
    data = run("bench_mmu.py", "--tokens", "4", "--warmup", "1", tmp=tmp_path)
    assert set(data["timings"]) == {"official", "cached", "ort-fp32", "ort-int8", "ort-int8-fast"}
    assert data["greedy_agreement_vs_cached"]["ort-fp32"] == 1.0
    data = run("roofline.py", "--steps", "2", "--mmu-tokens", "3", "--quick", tmp=tmp_path)
    assert data["peaks"]["sgemm_peak_gflops"] > 0 and data["stages"] and "target" in data
    data = run("bench_scaling.py", "--steps-list", "1,2", "--tokens-list", "4", "--batch-list", "1,2",
               "--fixed-steps", "1", tmp=tmp_path)
    assert len(data["vs_steps"]) == 2 and len(data["vs_tokens"]) == 1 and len(data["vs_batch"]) == 2
    data = run("profile_step.py", "--steps", "2", tmp=tmp_path)
    for r in data["results"].values():
        assert r["per_op_ms"] and 0 < r["matmul_share"] <= 1 and r["kernel_ms_per_step"] > 0
    assert "MatMulIntegerToFloat" in data["results"]["int8"]["per_op_ms"]  # the int8 graphs are really quantized
    assert "DynamicQuantizeMatMul" in data["results"]["int8-fast"]["per_op_ms"]


def test_memory_default_vs_low_memory(tiny, tmp_path):
    """bench_memory on the tiny test bundle: both variants load all four graphs and are reported."""
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(BENCH / "bench_memory.py"), "--engine", str(tiny.bundle), "--repeat", "1",
                           "--threads", "1", "--out-dir", str(out), "--name", "smoke"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "smoke.png").is_file()
    data = json.loads((out / "smoke.json").read_text())
    assert set(data["results"]) == {"default", "low_memory"}
    for r in data["results"].values():
        assert {"load_s", "anon_mb", "file_mb", "t2i_ms", "mmu_ms", "weights_file_mb"} <= set(r)
        assert r["t2i_ms"] > 0 and r["mmu_ms"] > 0 and r["weights_file_mb"] > 0
    assert set(data["low_memory_over_default"]) == {"anon_memory", "t2i_time", "mmu_time", "load_time"}


def test_glue_ops_ways_compute_the_same_function(tmp_path):
    """bench_glue_ops: every way of writing an operator gives the first way's numbers (what makes its ratios fair)."""
    pytest.importorskip("onnxruntime")
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(BENCH / "bench_glue_ops.py"), "--repeat", "2", "--threads", "1",
                           "--out-dir", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "glue_ops.png").is_file()
    data = json.loads((out / "glue_ops.json").read_text())
    ways = [w for group in data["results"].values() for w in group]
    assert "SkipLayerNormalization" in ways and "FastGelu" in ways
    for group in data["results"].values():
        for r in group.values():
            assert r["kernel_ms"] > 0 and r["max_abs_diff_vs_first"] <= 1e-5
