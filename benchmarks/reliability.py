"""Reliability figures: integrity, bad input, fuzzing, concurrency, long runs, atomic writes, sanitizers.

Runs the hardening suite's batteries (tests/hardening) at full counts and records what happened:
cases tried, refused, crashes, hangs, RSS growth, kill points, sanitizer status. Prints a table and
writes ``benchmarks/results/reliability.json``. Known defects found by the batteries are listed
(``known_bugs``) rather than hidden: a case that is not refused counts as not refused.

    python benchmarks/reliability.py                  # everything, full counts (~10 min on 2 quiet cores)
    python benchmarks/reliability.py --quick          # reduced counts, no sanitizer build (~3 min)
    python benchmarks/reliability.py --only soak,fuzz # some sections

The long runs use the shipped "shapes" model when it is installed (showo_sdk/assets/shapes), else
the tests' tiny random model; the JSON says which.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common import print_table, save_results

ROOT = Path(__file__).resolve().parents[1]
HARDENING = ROOT / "tests" / "hardening"
FULL_COUNTS = {"soak_calls": 500, "rounds": 25, "manifest_flips": None, "export_kill_points": 40}
SECTIONS = ("integrity", "checkpoints", "bad_input", "fuzz", "concurrency", "soak", "atomic", "sanitizers")


def _load(name: str):
    import importlib.util

    key = f"showo_hardening_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, HARDENING / f"{name}.py")
        module = sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[key]


harness = _load("harness")


# ---- sections -------------------------------------------------------------------------------------------
def integrity(tiny, work: Path, flips: int | None) -> dict[str, Any]:
    """Every corruption of the catalog on copies of the bundle, plus single-byte flips of manifest.json."""
    from showo_sdk.errors import BundleError
    from showo_sdk.runtime.bundle import load_bundle

    catalog = _load("integrity")
    cases = catalog.catalog("outside")
    refused, not_refused, wrong_message = 0, [], []
    for i, case in enumerate(cases):
        base = work / f"integrity{i}"
        (base / "outside").mkdir(parents=True)
        root = harness.copy_bundle(tiny.bundle, base / "engine.plan")
        names = case.apply(root, base / "outside")
        try:
            catalog.open_and_use(root)
            not_refused.append({"case": case.id, "outcome": "loaded and ran", "bug": case.bug})
        except BundleError as exc:
            refused += 1
            if not any(n in str(exc) for n in names):
                wrong_message.append(case.id)
        except Exception as exc:  # noqa: BLE001 - refused, but not the way promised
            not_refused.append({"case": case.id, "outcome": f"{type(exc).__name__}: {str(exc)[:160]}", "bug": case.bug})
        shutil.rmtree(base, ignore_errors=True)
    root = harness.copy_bundle(tiny.bundle, work / "flips" / "engine.plan")
    manifest = root / catalog.MANIFEST
    original = manifest.read_bytes()
    offsets = catalog.manifest_flip_offsets(len(original), flips)
    accepted, fields = 0, {}
    for offset in offsets:
        catalog.flip_byte(manifest, offset)
        try:
            load_bundle(root)
            accepted += 1
            line = original.split(b"\n")[original[:offset].count(b"\n")].decode(errors="replace").strip()
            key = line.split('"')[1] if line.startswith('"') and line.count('"') >= 2 else line[:20]
            fields[key] = fields.get(key, 0) + 1
        except BundleError:
            pass
        manifest.write_bytes(original)
    shutil.rmtree(work / "flips", ignore_errors=True)
    return {
        "bundle_corruptions": {"tried": len(cases), "refused_with_bundle_error": refused,
                               "message_names_the_file": refused - len(wrong_message),
                               "not_refused": not_refused, "message_misses_the_file": wrong_message,
                               "kinds": sorted({c.kind for c in cases})},
        "manifest_byte_flips": {"tried": len(offsets), "refused": len(offsets) - accepted, "accepted": accepted,
                                "accepted_by_field": dict(sorted(fields.items(), key=lambda kv: -kv[1])[:15]),
                                "bug": catalog.BUG_MANIFEST_FLIP},
    }


def checkpoints(tiny, work: Path) -> dict[str, Any]:
    mod = _load("test_checkpoint_integrity")
    ctx = {"bundle": str(tiny.bundle), "ckpt": str(tiny.checkpoint)}
    results, expect = mod.damage_and_load(tiny.checkpoint, ctx, work / "checkpoints")
    verdicts = {c.id: mod.judge(results[c.id], *expect[c.id]) for c in mod.CASES}
    crashes = [k for k, r in results.items() if r["outcome"] in ("signal", "died")]
    return {"tried": len(mod.CASES), "refused_with_checkpoint_error": sum(ok for ok, _ in verdicts.values()),
            "payloads_executed": sum(marker.exists() for _, marker in expect.values()),
            "payload_cases": sum("payload" in c.id for c in mod.CASES), "crashes": crashes,
            "controls_loaded": all(results[name]["outcome"] == "returned" for name, _ in mod.CONTROLS),
            "not_refused": [{"case": c.id, "why": verdicts[c.id][1][:200], "bug": c.bug}
                            for c in mod.CASES if not verdicts[c.id][0]]}


def bad_input(tiny, work: Path) -> dict[str, Any]:
    calls = _load("bad_calls")
    ctx = {"bundle": str(tiny.bundle), "ckpt": str(tiny.checkpoint)}
    jobs = [{"id": c.id, "func": c.id, "timeout": c.timeout} for c in calls.CASES]
    results = harness.run_jobs(Path(calls.__file__), jobs, ctx, work / "bad_input",
                               preload=_load("test_bad_input").PRELOAD)
    by_surface: dict[str, dict[str, int]] = {}
    unclean = []
    for c in calls.CASES:
        ok, why = calls.judge(c, results[c.id])
        row = by_surface.setdefault(c.surface, {"tried": 0, "refused_cleanly": 0})
        row["tried"] += 1
        row["refused_cleanly"] += ok
        if not ok:
            unclean.append({"case": c.id, "call": c.call, "why": why[:240], "bug": c.bug})
    outcomes = [r["outcome"] for r in results.values()]
    return {"tried": len(calls.CASES), "distinct_calls": len({c.call for c in calls.CASES}),
            "refused_cleanly": sum(r["refused_cleanly"] for r in by_surface.values()),
            "crashes": outcomes.count("signal") + outcomes.count("died"), "hangs": outcomes.count("timeout"),
            "memory_capped_mib_above_start": 2048, "by_surface": by_surface, "not_clean": unclean}


def _hypothesis_stats(output: str) -> dict[str, int]:
    """Examples of the largest hypothesis test in a ``--hypothesis-show-statistics`` report."""
    found = [tuple(map(int, m)) for m in re.findall(r"(\d+) passing, (\d+) failing, and (\d+) invalid", output)]
    if not found:
        return {}
    passing, failing, invalid = max(found)
    return {"passing": passing, "failing": failing, "invalid": invalid,
            "tests": len(found), "failing_all_tests": sum(f for _, f, _ in found)}


def fuzz() -> dict[str, Any]:
    """tests/sampling/test_fuzz.py's long fuzz (hypothesis, 2,000 examples) against the regular build."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/sampling/test_fuzz.py", "-m", "slow", "--hypothesis-show-statistics"], cwd=ROOT,
                          capture_output=True, text=True, timeout=3600, env=harness.subprocess_env())
    return {"test": "tests/sampling/test_fuzz.py::test_fuzz_long", "passed": proc.returncode == 0,
            "examples": _hypothesis_stats(proc.stdout + proc.stderr), "crashes": int(proc.returncode < 0)}


def concurrency(tiny, work: Path, rounds: int) -> dict[str, Any]:
    from showo_sdk import Runtime

    mod = _load("test_concurrent_runtimes")
    jobs = mod.generation_jobs(mod.THREADS * rounds)
    reference = Runtime(tiny.bundle, backend="ort-cpu", num_threads=2)
    start = time.perf_counter()
    sequential = [mod.generate(reference, j) for j in jobs]
    seq_s = time.perf_counter() - start
    shared = Runtime(tiny.bundle, backend="ort-cpu", num_threads=2)
    start = time.perf_counter()
    concurrent = mod.run_threads([lambda j=j: mod.generate(shared, j) for j in jobs])
    conc_s = time.perf_counter() - start
    other = harness.derive_bundle(tiny.bundle, work / "other.plan", seed=1)
    rt_b = Runtime(other, backend="ort-cpu", num_threads=2)
    few = jobs[: mod.THREADS * 10]
    want_b = [mod.generate(rt_b, j) for j in few]
    work_items = []
    for j in few:
        work_items += [lambda j=j: mod.generate(shared, j), lambda j=j: mod.generate(rt_b, j)]
    got = mod.run_threads(work_items)
    return {"threads": mod.THREADS, "generations_per_thread": rounds,
            "one_runtime": {"calls": len(jobs), "mismatches": len(mod.mismatches(sequential, concurrent)),
                            "sequential_s": round(seq_s, 2), "concurrent_s": round(conc_s, 2)},
            "two_runtimes_two_bundles": {"calls": len(work_items),
                                         "mismatches": len(mod.mismatches(sequential[:len(few)], got[0::2]))
                                         + len(mod.mismatches(want_b, got[1::2])),
                                         "models_differ": bool(mod.mismatches(sequential[:len(few)], want_b))}}


def soak(tiny, work: Path, calls: int) -> dict[str, Any]:
    model, bundle = harness.soak_bundle(tiny.bundle, work)
    out: dict[str, Any] = {"model": model, "bundle": str(bundle)}
    for kind in ("generate", "understand"):
        figures = harness.run_soak(bundle, kind, calls)
        out[kind] = {k: v for k, v in figures.items() if k != "kind"}
        out[kind]["passes_5pct"] = figures["growth_pct"] < 5.0
    return out


def atomic(tiny, work: Path, export_points: int) -> dict[str, Any]:
    jobs_mod = _load("jobs")
    kill = _load("test_atomic_kill")
    ctx = {"bundle": str(tiny.bundle), "ckpt": str(tiny.checkpoint)}
    step1 = work / "kills" / "step1" / "scratch" / "run"
    jobs = [{"id": "step1", "func": "train", "ctx": {"stop": 1}},
            {"id": "step2", "func": "train", "ctx": {"stop": 2, "start_from": str(step1)}},
            {"id": "save", "func": "train", "ctx": {"stop": 2, "start_from": str(step1)}, "sweep": True,
             "sweep_limit": 400}]
    if export_points:
        jobs.append({"id": "export", "func": "export", "ctx": {}, "sweep": True, "sweep_limit": export_points,
                     "timeout": 900})
    results = harness.run_jobs(Path(jobs_mod.__file__), jobs, ctx, work / "kills", preload=kill.PRELOAD, warmup="warm")
    kills = work / "kills"
    old = jobs_mod.tree_digest(kills / "step1" / "scratch" / "run" / "s")
    new = jobs_mod.tree_digest(kills / "step2" / "scratch" / "run" / "s")
    states: dict[str, int] = {}
    lost = []
    leftovers = 0
    for key in kill._sweep(results, "save"):
        if results[key]["outcome"] != "signal":
            continue
        state = kill._state(kills, key, old, new)
        states[state] = states.get(state, 0) + 1
        leftovers += bool(jobs_mod.leftovers(kills / key / "scratch" / "run", "s"))
        if state not in ("old", "new"):
            lost.append({"kill_point": key, "state": state, "died_before": kill._victim(kills, key)[1:]})
    out: dict[str, Any] = {"checkpoint_save": {"kill_points": sum(states.values()), "states": states,
                                               "lost_or_mixed": lost, "runs_leaving_temp_dirs": leftovers,
                                               "bugs": [kill.BUG_SWAP, kill.BUG_LEFTOVERS]}}
    if export_points:
        from showo_sdk.runtime.bundle import load_bundle

        exp_states: dict[str, int] = {}
        exp_lost = []
        manifest = (tiny.bundle / "manifest.json").read_bytes()
        for key in kill._sweep(results, "export"):
            if results[key]["outcome"] != "signal":
                continue
            out_dir = kills / key / "scratch" / "engine.plan"
            try:
                load_bundle(out_dir)
                state = "old" if (out_dir / "manifest.json").read_bytes() == manifest else "new"
            except Exception:  # noqa: BLE001
                state = "unloadable"
                exp_lost.append({"kill_point": key, "died_before": kill._victim(kills, key)[1:]})
            exp_states[state] = exp_states.get(state, 0) + 1
        out["export"] = {"kill_points": sum(exp_states.values()), "states": exp_states, "lost": exp_lost,
                         "limit": export_points}
    shutil.rmtree(kills, ignore_errors=True)
    return out


def sanitizers(work: Path) -> dict[str, Any]:
    preload, why = harness.sanitizer_runtime()
    if not preload:
        return {"status": "skipped", "reason": why}
    start = time.perf_counter()
    copy = harness.build_sanitized(work / "asan")
    build_s = time.perf_counter() - start
    env = harness.sanitizer_env(copy, preload)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/sampling", "-m",
                           "slow or not slow", "--hypothesis-show-statistics"], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=3600)
    output = proc.stdout + proc.stderr
    reports = [m for m in harness.SANITIZER_MARKERS if m in output]
    summary = re.findall(r"(\d+) passed", output)
    calls = _load("bad_calls")
    cases = [c for c in calls.CASES if c.surface == "maskgit" and not c.bug]
    results = harness.run_jobs(Path(calls.__file__), [{"id": c.id, "func": c.id, "timeout": 120, "mem_headroom_mb": 0}
                                                      for c in cases], {}, work / "asan_calls", env=env,
                               preload=("numpy", "showo_sdk.sampling"))
    bad = [c.id for c in cases if not calls.judge(c, results[c.id])[0]
           or any(m in results[c.id]["stderr"] for m in harness.SANITIZER_MARKERS)]
    clean = proc.returncode == 0 and not reports and not bad
    return {"status": "clean" if clean else "FAILED", "flags": "-O1 -g -fno-omit-frame-pointer "
            "-fsanitize=address,undefined (SHOWO_SANITIZE=1)", "preload": [str(p) for p in preload],
            "build_s": round(build_s, 1), "sampling_tests_passed": int(summary[-1]) if summary else 0,
            "fuzz_examples": _hypothesis_stats(output), "maskgit_bad_calls": len(cases), "bad_calls_failed": bad,
            "reports": reports, "tail": "" if clean else output[-2000:]}


# ---- main -------------------------------------------------------------------------------------------------
def _table(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    if "integrity" in result:
        b, f = result["integrity"]["bundle_corruptions"], result["integrity"]["manifest_byte_flips"]
        rows.append(("bundle corruptions", f"{b['refused_with_bundle_error']}/{b['tried']} refused",
                     f"{len(b['not_refused'])} not refused (known bugs)"))
        rows.append(("manifest byte flips", f"{f['refused']}/{f['tried']} refused", f"{f['accepted']} loaded"))
    if "checkpoints" in result:
        c = result["checkpoints"]
        rows.append(("checkpoint damage", f"{c['refused_with_checkpoint_error']}/{c['tried']} refused",
                     f"payloads run: {c['payloads_executed']}, crashes: {len(c['crashes'])}"))
    if "bad_input" in result:
        b = result["bad_input"]
        rows.append(("bad calls", f"{b['refused_cleanly']}/{b['tried']} clean", f"crashes {b['crashes']}, "
                     f"hangs {b['hangs']}"))
    if "fuzz" in result:
        e = result["fuzz"]["examples"]
        rows.append(("_maskgit fuzz", f"{e.get('passing', 0)} passing", f"{e.get('failing', '?')} failing"))
    if "concurrency" in result:
        c = result["concurrency"]
        rows.append(("4 threads x N gens", f"{c['one_runtime']['mismatches']} mismatches",
                     f"{c['one_runtime']['calls']} calls; 2 bundles: {c['two_runtimes_two_bundles']['mismatches']}"))
    if "soak" in result:
        for kind in ("generate", "understand"):
            s = result["soak"][kind]
            rows.append((f"soak {kind}", f"{s['growth_pct']:+.2f}% RSS", f"{s['calls']} calls, "
                         f"{s['rss_after_warmup_mb']} -> {s['rss_end_mb']} MiB ({result['soak']['model']})"))
    if "atomic" in result:
        a = result["atomic"]["checkpoint_save"]
        rows.append(("killed saves", f"{a['states']}", f"{a['kill_points']} kill points"))
        if "export" in result["atomic"]:
            e = result["atomic"]["export"]
            rows.append(("killed exports", f"{e['states']}", f"{e['kill_points']} kill points"))
    if "sanitizers" in result:
        s = result["sanitizers"]
        rows.append(("ASan+UBSan", s["status"], f"{s.get('sampling_tests_passed', 0)} tests, fuzz "
                     f"{s.get('fuzz_examples', {}).get('passing', 0)}" if s["status"] != "skipped" else s["reason"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced counts (soak 50, 4x5 threads, 256 manifest "
                                                             "flips, 5 export kill points), no sanitizer build")
    parser.add_argument("--only", help=f"comma-separated sections of {','.join(SECTIONS)}")
    parser.add_argument("--soak-calls", type=int, help="calls per soak run (default 500)")
    parser.add_argument("--rounds", type=int, help="generations per thread (default 25)")
    parser.add_argument("--manifest-flips", type=int, help="manifest byte flips (default: every byte)")
    parser.add_argument("--export-kill-points", type=int, help="export kill points, 0 = none (default 40)")
    parser.add_argument("--cache-dir", help="build the tiny checkpoint and bundle here and reuse them on later "
                                            "runs (default: a fresh export in the run's temp directory)")
    parser.add_argument("--out-dir", help="results directory (default benchmarks/results)")
    parser.add_argument("--merge", action="store_true", help="update the sections run in an existing "
                                                             "reliability.json instead of replacing the file")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(SECTIONS) - ({"sanitizers"} if args.quick else set())
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")
    counts = {"soak_calls": args.soak_calls or (50 if args.quick else 500),
              "rounds": args.rounds or (5 if args.quick else 25),
              "manifest_flips": (args.manifest_flips if args.manifest_flips is not None
                                 else 256 if args.quick else None),
              "export_kill_points": args.export_kill_points if args.export_kill_points is not None
              else (5 if args.quick else 40)}
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    scratch = tempfile.TemporaryDirectory(prefix="showo-reliability-")
    tiny = harness.tiny_bundle(Path(args.cache_dir or scratch.name))
    result: dict[str, Any] = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "mode": "quick" if args.quick else "full" if counts == FULL_COUNTS else "custom",
                              "counts": counts,
                              "tiny_bundle": str(tiny.bundle)}
    timings = {}
    with scratch:
        work = Path(scratch.name) / "work"
        work.mkdir()
        steps = {
            "integrity": lambda: integrity(tiny, work, counts["manifest_flips"]),
            "checkpoints": lambda: checkpoints(tiny, work),
            "bad_input": lambda: bad_input(tiny, work),
            "fuzz": fuzz,
            "concurrency": lambda: concurrency(tiny, work, counts["rounds"]),
            "soak": lambda: soak(tiny, work, counts["soak_calls"]),
            "atomic": lambda: atomic(tiny, work, counts["export_kill_points"]),
            "sanitizers": lambda: sanitizers(work),
        }
        for name in SECTIONS:
            if name in only:
                start = time.perf_counter()
                print(f"[reliability] {name} ...", file=sys.stderr, flush=True)
                result[name] = steps[name]()
                timings[name] = round(time.perf_counter() - start, 1)
    if args.merge:
        previous_path = Path(args.out_dir or Path(__file__).resolve().parent / "results") / "reliability.json"
        if previous_path.is_file():
            import json

            previous = json.loads(previous_path.read_text())
            previous.pop("machine", None)
            owner = {"soak_calls": "soak", "rounds": "concurrency", "manifest_flips": "integrity",
                     "export_kill_points": "atomic"}
            merged_counts = {**previous.get("counts", {}), **{k: v for k, v in counts.items() if owner[k] in only}}
            timings = {**previous.get("seconds", {}), **timings}
            result = {**previous, **result, "counts": merged_counts}
    result["seconds"] = timings
    result["crashes_total"] = sum(
        [result.get("bad_input", {}).get("crashes", 0), len(result.get("checkpoints", {}).get("crashes", [])),
         result.get("fuzz", {}).get("crashes", 0)])
    path = save_results("reliability", result, args.out_dir)
    print_table(("battery", "result", "detail"), _table(result))
    print(f"crashes: {result['crashes_total']}  ->  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
