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


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
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
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "onnxruntime": _version("onnxruntime"),
        "showo_sdk": _version("showo-sdk"),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,  # busy machine = noisy figures
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


def save_results(name: str, payload: dict[str, Any]) -> Path:
    """Write payload (plus the machine description) to benchmarks/results/<name>.json atomically."""
    path = RESULTS_DIR / f"{name}.json"
    atomic_write_text(path, json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


def save_plot(name: str, figure: Any) -> Path:
    """Save a matplotlib figure to benchmarks/results/<name>.png atomically."""
    path = RESULTS_DIR / f"{name}.png"
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return path
