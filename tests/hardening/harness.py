"""Shared machinery of the hardening suite and of ``benchmarks/reliability.py``.

- **Fork runner**: a worker process imports the heavy modules once, then runs each job in a fresh
  ``fork()`` child with its memory capped (``RLIMIT_AS``), its stdout/stderr captured and a
  timeout. A job that segfaults, aborts or hangs is reported as such (signal, timeout) instead of
  taking pytest down with it, and a call that would exhaust memory fails inside the cap instead
  of pushing a shared machine into the OOM killer.
- **Bundles**: copies, manifest rewrites, and a second *different* model derived from a bundle.
- **Soak**: repeated generate/understand calls with RSS sampled (run in a fresh process, so the
  figures are the runtime's alone, without pytest or torch in the process).
- **Kills**: a child that SIGKILLs itself right before its N-th filesystem operation (observed
  with a ``sys.addaudithook`` hook, which changes nothing else), to prove atomic writes.
- **Sanitizers**: an ASan/UBSan build of ``showo_sdk._maskgit`` in a temp copy of the sources.

Helpers are loaded by path (``load``), so they work under any pytest import mode.
Run as a script: ``python harness.py forkrun SPEC.json RESULTS.json`` or
``python harness.py soak --bundle DIR --kind generate --count 500``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHIPPED = ROOT / "showo_sdk" / "assets" / "shapes"
MiB = 1 << 20


# ---- loading helpers by path ---------------------------------------------------------------------
def load(name: str, path: Path | None = None):
    """Import ``tests/hardening/<name>.py`` (or ``path``) once, under a name no other test module uses."""
    key = f"showo_hardening_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, path or HERE / f"{name}.py")
        module = sys.modules[key] = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[key]
            raise
    return sys.modules[key]


def tiny_bundle(base: Path):
    """tests/conftest.py's ``tiny_bundle(base)`` (the tests' tiny checkpoint + bundle), loaded by path."""
    key = "showo_tests_root_conftest"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / "tests" / "conftest.py")
        module = sys.modules[key] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[key].tiny_bundle(base)


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child Pythons: one thread per library (2 shared cores), no user site, no bytecode."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONNOUSERSITE": "1"}
    env.update(extra)
    return env


# ---- fork runner ----------------------------------------------------------------------------------
def _vm_size() -> int:
    """This process's virtual memory size in bytes (what RLIMIT_AS counts)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)[:200]


class Ctx:
    """What a job sees: the paths it was given, a private scratch directory, and a lazily made Runtime."""

    def __init__(self, values: dict[str, Any], scratch: Path):
        self.__dict__.update(values)
        self.scratch = scratch
        self._rt = None

    def runtime(self, **kwargs):
        from showo_sdk import Runtime

        if kwargs:
            return Runtime(self.bundle, **kwargs)
        if self._rt is None:
            self._rt = Runtime(self.bundle, backend="ort-cpu", num_threads=1)
        return self._rt


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies, so no job outlives an interrupted run (best effort)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child(func: Callable, ctx: Ctx, record: Path, stdout: Path, stderr: Path, mem_limit: int,
           cpu_limit: int) -> None:
    """Body of a forked job: never returns (os._exit), whatever the job does."""
    code = 0
    try:
        _die_with_parent()
        for fd, path in ((1, stdout), (2, stderr)):
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(handle, fd)
            os.close(handle)
        import resource

        def cap(which: int, value: int) -> None:
            _, hard = resource.getrlimit(which)
            resource.setrlimit(which, (value if hard == resource.RLIM_INFINITY else min(value, hard), hard))

        if mem_limit:
            cap(resource.RLIMIT_AS, mem_limit)
        cap(resource.RLIMIT_CPU, cpu_limit)  # a watchdog of its own, should the parent stall
        start = time.perf_counter()
        try:
            value = func(ctx)
            out = {"outcome": "returned", "value": _jsonable(value)}
        except SystemExit as exc:  # argparse and sys.exit: the exit code is the result
            out = {"outcome": "exit", "value": exc.code if isinstance(exc.code, int) else 1, "message": str(exc)}
        except BaseException as exc:  # noqa: BLE001 - every exception is the observation
            out = {"outcome": "raised", "type": type(exc).__name__, "mro": [c.__name__ for c in type(exc).__mro__],
                   "message": str(exc), "traceback": traceback.format_exc()[-4000:]}
        out["seconds"] = time.perf_counter() - start
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        record.write_text(json.dumps(out))
    except BaseException:  # noqa: BLE001
        code = 70
    os._exit(code)


def fork_call(func: Callable, ctx_values: dict[str, Any], workdir: Path, *, timeout: float = 120.0,
              mem_headroom: int = 2048 * MiB) -> dict[str, Any]:
    """Run ``func(ctx)`` in a forked child; return what happened (outcome, signal, output, seconds).

    The child's address space is capped at its current size + ``mem_headroom`` (0: no cap).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    record, stdout, stderr = workdir / "record.json", workdir / "stdout.txt", workdir / "stderr.txt"
    scratch = workdir / "scratch"
    scratch.mkdir(exist_ok=True)
    ctx = Ctx(ctx_values, scratch)
    limit = _vm_size() + mem_headroom if mem_headroom else 0
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        _child(func, ctx, record, stdout, stderr, limit, int(timeout) * 2 + 60)
    status, timed_out = None, False
    while True:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = raw
            break
        if time.perf_counter() - start > timeout:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            timed_out = True
            break
        time.sleep(0.005)
    result: dict[str, Any] = {"wall_s": round(time.perf_counter() - start, 3)}
    if timed_out:
        result.update(outcome="timeout", timeout_s=timeout)
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        result.update(outcome="signal", signal=sig, signal_name=signal.Signals(sig).name)
    elif os.WEXITSTATUS(status) != 0 or not record.is_file():
        result.update(outcome="died", exit_status=os.WEXITSTATUS(status))
    else:
        result.update(json.loads(record.read_text()))
    result["stdout"] = stdout.read_text(errors="replace")[-4000:] if stdout.is_file() else ""
    result["stderr"] = stderr.read_text(errors="replace")[-4000:] if stderr.is_file() else ""
    return result


def serve(spec_path: Path, results_path: Path) -> None:
    """The worker: import ``spec['preload']`` and the job module once, then fork each job in turn.

    spec = {"module": path, "preload": [modules], "ctx": {...}, "jobs": [{"id", "func", "ctx"?, "timeout"?,
    "mem_headroom_mb"?, "sweep"?}], "workdir": dir}. Results (by job id) are written as JSON. A ``sweep``
    job runs with ctx n = 1, 2, ... (results "id[n]") until a run is not SIGKILLed.
    """
    _die_with_parent()
    spec = json.loads(Path(spec_path).read_text())
    for name in spec.get("preload", []):
        importlib.import_module(name)
    module = load(Path(spec["module"]).stem, Path(spec["module"]))
    workdir = Path(spec["workdir"])
    if spec.get("warmup"):  # lazy imports and first-call costs paid once here, not in every child
        (workdir / "warmup").mkdir(parents=True, exist_ok=True)
        getattr(module, spec["warmup"])(Ctx(spec.get("ctx", {}), workdir / "warmup"))
    results = {}
    for job in spec["jobs"]:
        func = getattr(module, job["func"])
        ctx = {**spec.get("ctx", {}), **job.get("ctx", {})}
        options = {"timeout": job.get("timeout", 120.0), "mem_headroom": int(job.get("mem_headroom_mb", 2048)) * MiB}
        if not job.get("sweep"):
            results[job["id"]] = fork_call(func, ctx, workdir / job["id"], **options)
        else:  # n = 1, 2, ... until the job survives (no n-th write left to die before)
            for n in range(1, int(job.get("sweep_limit", 500)) + 1):
                key = f"{job['id']}[{n}]"
                results[key] = got = fork_call(func, {**ctx, "n": n}, workdir / key, **options)
                if not (got["outcome"] == "signal" and got["signal"] == signal.SIGKILL):
                    break
        Path(results_path).write_text(json.dumps(results))  # partial results survive a dead worker
    Path(results_path).write_text(json.dumps(results))


def run_jobs(module: Path, jobs: list[dict[str, Any]], ctx: dict[str, Any], workdir: Path, *,
             preload: tuple[str, ...] = (), warmup: str | None = None, timeout: float = 1800.0,
             env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Run ``jobs`` (functions of ``module``) through a fresh worker process; results by job id.

    ``warmup`` names a function of ``module`` the worker calls once (with a Ctx) before forking:
    torch's lazy imports then happen once instead of in every child. It must leave no threads.
    ``env``: the worker's environment (default :func:`subprocess_env`).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    spec, results = workdir / "spec.json", workdir / "results.json"
    spec.write_text(json.dumps({"module": str(module), "preload": list(preload), "ctx": ctx, "jobs": jobs,
                                "workdir": str(workdir), "warmup": warmup}, default=str))
    proc = subprocess.run([sys.executable, str(Path(__file__)), "forkrun", str(spec), str(results)],
                          capture_output=True, text=True, timeout=timeout, env=env or subprocess_env())
    got = json.loads(results.read_text()) if results.is_file() else {}
    missing = [j["id"] for j in jobs if not j.get("sweep") and j["id"] not in got]
    if proc.returncode != 0 or missing:
        raise RuntimeError(f"the fork worker failed (rc {proc.returncode}, missing {missing}): "
                           f"{proc.stderr[-3000:]}")
    return got


# ---- bundles --------------------------------------------------------------------------------------
def copy_bundle(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def read_manifest(root: Path) -> dict[str, Any]:
    return json.loads((root / "manifest.json").read_text(encoding="utf-8"))


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def refresh_checksums(root: Path) -> None:
    """Recompute every file's sha256/bytes in the manifest (files and graph entries) after an edit."""
    from showo_sdk.runtime.bundle import seal_manifest, sha256_file

    manifest = read_manifest(root)
    for rel in manifest["files"]:
        manifest["files"][rel] = {"sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size}
    for entry in manifest["graphs"].values():
        for item in [entry, entry.get("external_data")] + list(entry.get("tensorrt", [])):
            if isinstance(item, dict) and item.get("file") in manifest["files"]:
                item.update(manifest["files"][item["file"]])
    write_manifest(root, seal_manifest(manifest))


def derive_bundle(src: Path, dst: Path, seed: int = 1) -> Path:
    """A valid bundle of a *different* model: the transformer graphs' weights get deterministic noise.

    Cheaper than a second export (seconds instead of a minute) and just as real for the runtime:
    the manifest is rewritten with the new checksums, so ``load_bundle`` verifies it as usual.
    """
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from showo_sdk.runtime.bundle import TRANSFORMER_GRAPHS

    copy_bundle(src, dst)
    manifest = read_manifest(dst)
    rng = np.random.default_rng(seed)
    for name in TRANSFORMER_GRAPHS:
        path = dst / manifest["graphs"][name]["file"]
        model = onnx.load(str(path))
        for init in model.graph.initializer:
            array = numpy_helper.to_array(init)
            if array.dtype == np.float32 and array.ndim >= 2:
                noise = rng.standard_normal(array.shape).astype(np.float32) * np.float32(0.5 * (array.std() + 1e-3))
                init.CopyFrom(numpy_helper.from_array(array + noise, init.name))
        onnx.save(model, str(path))
    refresh_checksums(dst)
    return dst


# ---- RSS soak -------------------------------------------------------------------------------------
def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def rss_growth(samples: list[tuple[int, int]], warmup: int) -> dict[str, Any]:
    """Figures from (call index, RSS bytes) samples: growth from the end of warm-up to the end.

    Both ends are medians of up to 5 samples, so one allocator hiccup does not decide the figure;
    the slope (least squares over the post-warm-up samples) shows a steady leak per call.
    """
    after = [(i, r) for i, r in samples if i >= warmup]
    if len(after) < 2:
        raise ValueError("not enough samples after warm-up")
    k = max(1, min(5, len(after) // 4))
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    start, end = median([r for _, r in after[:k]]), median([r for _, r in after[-k:]])
    n = len(after)
    mx = sum(i for i, _ in after) / n
    my = sum(r for _, r in after) / n
    var = sum((i - mx) ** 2 for i, _ in after) or 1.0
    slope = sum((i - mx) * (r - my) for i, r in after) / var
    return {"rss_after_warmup_mb": round(start / MiB, 2), "rss_end_mb": round(end / MiB, 2),
            "rss_peak_mb": round(max(r for _, r in samples) / MiB, 2),
            "growth_pct": round(100.0 * (end - start) / start, 3), "slope_kb_per_call": round(slope / 1024, 3)}


def soak(bundle: Path, kind: str, count: int, warmup: int | None = None, every: int = 10,
         threads: int = 1) -> dict[str, Any]:
    """``count`` generate (or understand) calls on one Runtime, RSS sampled every ``every`` calls."""
    import numpy as np

    from showo_sdk import Runtime

    rt = Runtime(bundle, backend="ort-cpu", num_threads=threads)
    warmup = max(10, count // 10) if warmup is None else warmup
    h, w = rt.image_size
    yy, xx = np.mgrid[:h, :w]
    picture = np.zeros((h, w, 3), dtype=np.uint8)
    picture[(yy - h // 2) ** 2 + (xx - w // 3) ** 2 < (h // 6) ** 2] = (255, 0, 0)
    prompts = ["a red circle", "two green triangles left of a blue square", "a small yellow star"]
    questions = ["What color is the circle?", "How many shapes are there?", "Where is the square?"]
    samples = [(0, rss_bytes())]
    start = time.perf_counter()
    for i in range(count):
        if kind == "generate":
            image = rt.generate(prompts[i % 3], steps=8, guidance_scale=1.75, seed=i, output="numpy")
            assert image.shape == (h, w, 3)
        elif kind == "understand":
            answer = rt.understand(picture, questions[i % 3], max_new_tokens=16, seed=i,
                                   greedy=i % 2 == 0, **({} if i % 2 == 0 else {"top_k": 8}))
            assert isinstance(answer, str)
        else:
            raise ValueError(kind)
        if (i + 1) % every == 0 or i + 1 == count:
            samples.append((i + 1, rss_bytes()))
    seconds = time.perf_counter() - start
    return {"kind": kind, "calls": count, "warmup_calls": warmup, "sample_every": every,
            "seconds": round(seconds, 2), "calls_per_s": round(count / seconds, 2),
            **rss_growth(samples, warmup), "samples_mb": [[i, round(r / MiB, 2)] for i, r in samples]}


def soak_bundle(fallback: Path, tmp: Path) -> tuple[str, Path]:
    """(model name, bundle) for the long runs: the shipped "shapes" model when it is installed, else ``fallback``.

    The shipped model's bundle is reused from the ``showo`` CLI's cache when one is there and loads,
    otherwise exported once into ``tmp`` (the user's cache is never written by the tests).
    """
    if not (SHIPPED / "config.json").is_file():
        return "tiny-random", fallback
    from showo_sdk.cli import cached_bundle_path
    from showo_sdk.errors import BundleError
    from showo_sdk.runtime.bundle import load_bundle

    cached = cached_bundle_path(SHIPPED)
    try:
        load_bundle(cached)
        return "shapes", cached
    except BundleError:
        pass
    out = tmp / "shapes.plan"
    if not (out / "manifest.json").is_file():
        from showo_sdk.export import ExportOptions, export_checkpoint

        export_checkpoint(SHIPPED, out, options=ExportOptions(progress=False, force=True))
    return "shapes", out


def run_soak(bundle: Path, kind: str, count: int, timeout: float = 3600) -> dict[str, Any]:
    """:func:`soak` in a fresh Python (numpy + onnxruntime + showo_sdk only), its figures returned."""
    proc = subprocess.run([sys.executable, str(Path(__file__)), "soak", "--bundle", str(bundle), "--kind", kind,
                           "--count", str(count)], capture_output=True, text=True, timeout=timeout,
                          env=subprocess_env())
    if proc.returncode != 0:
        raise RuntimeError(f"soak {kind} failed (rc {proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- kills at a chosen filesystem operation -------------------------------------------------------
FS_EVENTS = ("open", "os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree", "os.truncate")


def _writes(event: str, args: tuple) -> bool:
    """True for the filesystem operations that can change the disk (opening for reading cannot)."""
    if event == "open":
        mode, flags = (args[1] if len(args) > 1 else "r"), (args[2] if len(args) > 2 else 0)
        if isinstance(mode, str) and mode and any(c in mode for c in "wax+"):
            return True
        return isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))
    return event in FS_EVENTS


def kill_at_write(under: Path, n: int | None = None, suffix: str | None = None, into: bool = False,
                  log: Path | None = None) -> None:
    """Install an audit hook that SIGKILLs this process right before a chosen write near ``under``.

    Writes are the filesystem operations that can change the disk (open for writing, rename,
    remove, mkdir, rmtree...) on paths in ``under``'s parent directory. The victim is the ``n``-th
    such write, or the ``n``-th (default first) whose path ends with ``suffix``, or (``into``) the
    rename whose destination is ``under`` itself: the moment a new directory takes the old one's
    place. With no choice the hook only logs (one JSON line per write in ``log``): the dry run
    that counts them. The hook observes; the operations are the real ones of the code under test.
    """
    prefix = str(under.resolve().parent) + os.sep
    target = str(under.resolve())
    seen, matched, busy = [0], [0], [False]

    def hook(event: str, args: tuple) -> None:
        if busy[0] or event not in FS_EVENTS or not _writes(event, args):
            return  # (busy: the hook's own log write)
        operands = args[:2] if event == "os.rename" else args[:1]  # open's mode is a str too: not a path
        paths = [os.path.abspath(os.fsdecode(a)) for a in operands if isinstance(a, (str, bytes, os.PathLike))]
        if not any(p.startswith(prefix) for p in paths):
            return
        seen[0] += 1
        if log is not None:
            busy[0] = True
            try:
                with open(log, "a") as fh:
                    fh.write(json.dumps([seen[0], event, paths]) + "\n")
            finally:
                busy[0] = False
        hit = False
        if suffix is not None:
            if any(p.endswith(suffix) for p in paths):
                matched[0] += 1
                hit = matched[0] == (n or 1)
        elif into:
            hit = event == "os.rename" and len(paths) >= 2 and paths[1] == target
        elif n is not None:
            hit = seen[0] == n
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)


# ---- sanitizer build ------------------------------------------------------------------------------
def _gcc_lib(name: str) -> Path | None:
    for cc in ("gcc", "cc"):
        exe = shutil.which(cc)
        if not exe:
            continue
        try:
            out = subprocess.run([exe, f"-print-file-name={name}"], capture_output=True, text=True,
                                 timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if out and os.path.isabs(out) and Path(out).exists():
            return Path(out).resolve()
    return None


def sanitizer_runtime() -> tuple[list[Path], str]:
    """(libraries to LD_PRELOAD, "") or ([], why not).

    libasan must come first in the process; libstdc++ is preloaded too, because python itself does
    not link it and ASan's __cxa_throw interceptor must find the real one at start-up (otherwise the
    first C++ exception aborts with "real___cxa_throw != 0").
    """
    asan = _gcc_lib("libasan.so")
    if asan is None:
        return [], "libasan.so not found (install gcc's libasan, e.g. apt-get install libasan8)"
    stdcxx = _gcc_lib("libstdc++.so")
    return [asan] + ([stdcxx] if stdcxx else []), ""


def build_sanitized(dest: Path, timeout: float = 1800) -> Path:
    """Copy the sources to ``dest`` and build ``_maskgit`` there with SHOWO_SANITIZE=1 (in place in the copy).

    Returns the copy: put it first on PYTHONPATH to import its ``showo_sdk`` with the sanitized
    extension. The repository's own in-place build is never touched.
    """
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("*.so", "__pycache__", "*.pyc", "build", "*.egg-info")
    for item in ("showo_sdk", "cpp_ext", "tests"):
        shutil.copytree(ROOT / item, dest / item, ignore=ignore, dirs_exist_ok=True)
    for item in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / item, dest / item)
    (dest / "export").mkdir(exist_ok=True)  # setup.py's package_dir names it
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace", "--build-temp",
                           str(dest / "build" / "temp")], cwd=dest, capture_output=True, text=True,
                          timeout=timeout, env=subprocess_env(SHOWO_SANITIZE="1"))
    if proc.returncode != 0:
        raise RuntimeError(f"sanitizer build failed: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    if not list((dest / "showo_sdk").glob("_maskgit*.so")):
        raise RuntimeError("sanitizer build produced no extension")
    return dest


def sanitizer_env(copy: Path, preload: list[Path]) -> dict[str, str]:
    return subprocess_env(
        PYTHONPATH=str(copy), LD_PRELOAD=":".join(map(str, preload)),
        # CPython and numpy keep memory until exit by design: leak reports would be noise. Prebuilt
        # wheels (torch) mix allocators across libraries, which is not this extension's concern.
        ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:alloc_dealloc_mismatch=0:"
                     "allocator_may_return_null=1:detect_odr_violation=0",
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
        HYPOTHESIS_STORAGE_DIRECTORY=str(copy / ".hypothesis"))


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer", "UndefinedBehaviorSanitizer")


# ---- script entry ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.py")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("forkrun")
    p.add_argument("spec")
    p.add_argument("results")
    p = sub.add_parser("soak")
    p.add_argument("--bundle", required=True)
    p.add_argument("--kind", choices=("generate", "understand"), required=True)
    p.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "forkrun":
        serve(Path(args.spec), Path(args.results))
    else:
        print(json.dumps(soak(Path(args.bundle), args.kind, args.count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
