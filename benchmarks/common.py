"""Helpers shared by the benchmark scripts: machine description, timing, saving results.

Every script records the machine it ran on next to its figures, times with warm-up and
reports the median, and writes ``benchmarks/results/<name>.json`` and ``<name>.png`` atomically.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from showo_sdk.utils.atomic import atomic_path, atomic_write_text

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_detail() -> dict[str, Any]:
    """Family/model (which core generation a generic "AMD EPYC" is), SIMD flags that matter, cache sizes."""
    info: dict[str, Any] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key in ("vendor_id", "cpu family", "model", "stepping", "cpu MHz", "cache size") and key not in info:
                info[key.replace(" ", "_")] = value
            elif key == "flags" and "simd" not in info:
                wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_int8", "amx_bf16")
                info["simd"] = [f for f in wanted if f in value.split()]
            if line == "" and info:
                break
    except OSError:
        pass
    return info


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, OS, library versions (no heavy imports)."""
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    return {
        "cpu": _cpu_model(),
        "cpu_detail": _cpu_detail(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime"),
        "showo_sdk": _version("showo-sdk"),
        "onnx": _version("onnx"),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,  # busy machine = noisy figures
        "load_average_1_5_15m": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "memory_gib": _memory_gib(),
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def time_ms(fn: Callable[[], object], repeat: int = 7, warmup: int = 2) -> dict[str, float]:
    """Run fn ``warmup`` times untimed, then ``repeat`` times; median / min / max wall time in ms."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(runs), "min_ms": min(runs), "max_ms": max(runs), "runs": repeat}


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows as an aligned plain-text table."""
    cells = [[str(h) for h in headers]] + [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for k, row in enumerate(cells):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def save_results(name: str, payload: dict[str, Any], directory: str | os.PathLike | None = None) -> Path:
    """Write payload (plus the machine description) to <directory or benchmarks/results>/<name>.json atomically."""
    path = Path(directory or RESULTS_DIR) / f"{name}.json"
    atomic_write_text(path, json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


def save_plot(name: str, figure: Any, directory: str | os.PathLike | None = None) -> Path:
    """Save a matplotlib figure to <directory or benchmarks/results>/<name>.png atomically."""
    path = Path(directory or RESULTS_DIR) / f"{name}.png"
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path


# ---- shared by bench_t2i, bench_mmu, bench_scaling and roofline ---------------------------------
def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB.

    Linux's VmHWM (the high-water mark of this process image); ru_maxrss is not used because it
    keeps the parent's peak across fork + exec, so a small child would report its parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> float | None:
    """Current resident set size in MiB (None without psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / 2**20


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_child(script: str | os.PathLike, params: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run ``python script --child JSON`` in a fresh process and return the JSON object it prints last.

    One process per measured variant: its peak RSS is its own, and a big model is freed when it exits.
    The child's stderr (progress, warnings) is passed on when it ends; a failing child raises with its
    exit code and the end of its stderr.
    """
    import subprocess

    cmd = [sys.executable, str(script), "--child", json.dumps(params)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if proc.stderr:
        sys.stderr.write(proc.stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise RuntimeError(f"child {params.get('variant')} of {Path(script).name} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1])


class Clock:
    """Start/end times of named events (the PyTorch model's calls) within one measured call."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float, float]] = []

    def reset(self) -> None:
        self.events = []

    def add(self, name: str, start: float, end: float) -> None:
        self.events.append((name, start, end))

    def total_ms(self, *names: str) -> float:
        return sum(e - s for n, s, e in self.events if n in names) * 1e3

    def starts(self, name: str) -> list[float]:
        return [s for n, s, _ in self.events if n == name]

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, start, time.perf_counter())
        return timed
