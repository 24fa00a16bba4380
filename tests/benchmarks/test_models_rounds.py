"""benchmarks/models.py's merging of rounds: medians over every run, the largest peak RSS, ratios paired by round."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from models import merge_rounds, ratios_by_round  # noqa: E402


def child_result(totals: list[float], rss: float) -> dict:
    """What one bench child returns: its runs, their median per key, and the process's figures."""
    runs = [{"total_ms": t, "steps_ms": t / 2} for t in totals]
    mid = sorted(totals)[len(totals) // 2]
    return {"total_ms": mid, "steps_ms": mid / 2, "runs": runs, "peak_rss_mb": rss, "load_s": 1.0, "variant": "x"}


def test_merge_takes_the_median_over_all_rounds_runs():
    merged = merge_rounds([child_result([10, 30, 20], 100.0), child_result([50, 40, 60], 300.0)])
    assert merged["total_ms"] == 35.0 and merged["steps_ms"] == 17.5  # median of 10..60
    assert len(merged["runs"]) == 6 and merged["peak_rss_mb"] == 300.0
    assert merged["rounds"] == [{"total_ms": 20, "steps_ms": 10.0}, {"total_ms": 50, "steps_ms": 25.0}]


def test_one_round_keeps_the_child_figures():
    one = child_result([7, 9, 8], 50.0)
    merged = merge_rounds([one])
    assert merged["total_ms"] == 8 and merged["runs"] == one["runs"] and len(merged["rounds"]) == 1


def test_ratios_pair_each_round_with_the_same_rounds_official():
    results = {"official": merge_rounds([child_result([100], 1.0), child_result([200], 1.0)]),
               "fast": merge_rounds([child_result([10], 1.0), child_result([40], 1.0)])}
    by_round = ratios_by_round(results, lambda ref, r: {"speedup": ref["total_ms"] / r["total_ms"]})
    assert by_round["fast"]["speedup"] == pytest.approx([10.0, 5.0])  # not 300/50 = 6 from pooled medians
    assert by_round["official"]["speedup"] == pytest.approx([1.0, 1.0])
    assert ratios_by_round({"fast": results["fast"]}, lambda ref, r: {}) == {}
