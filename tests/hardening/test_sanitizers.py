"""The C++ loop under AddressSanitizer + UndefinedBehaviorSanitizer: its whole test suite runs clean.

A test-only copy of the sources is built with ``SHOWO_SANITIZE=1`` in a temp directory (never in
place: the repository's ``-O3`` build stays what everyone imports), then ``tests/sampling`` (the
2,000-example hypothesis fuzz included) and the ``_maskgit`` bad calls of bad_calls.py run against
it with libasan preloaded. Any ASan/UBSan report fails the test (halt_on_error). Equivalent command::

    mkdir -p /tmp/asan && cp -r setup.py pyproject.toml README.md showo_sdk cpp_ext tests /tmp/asan/ &&
    rm -f /tmp/asan/showo_sdk/_maskgit*.so && mkdir -p /tmp/asan/export &&
    (cd /tmp/asan && SHOWO_SANITIZE=1 python setup.py build_ext --inplace) &&
    (cd /tmp/asan && PYTHONPATH=/tmp/asan \\
      LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libstdc++.so)" \\
      ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:alloc_dealloc_mismatch=0 UBSAN_OPTIONS=halt_on_error=1 \\
      python -m pytest -p no:cacheprovider tests/sampling -m "slow or not slow")

Skipped, with the reason, where libasan is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow




import showo_hardening_harness as harness  # noqa: E402  (registered by conftest.py)
bad_calls = harness.load("bad_calls")


def _clean(text: str) -> list[str]:
    return [m for m in harness.SANITIZER_MARKERS if m in text]


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    preload, why = harness.sanitizer_runtime()
    if not preload:
        pytest.skip(why)
    copy = harness.build_sanitized(tmp_path_factory.mktemp("asan") / "src")
    return copy, harness.sanitizer_env(copy, preload)


def test_toolchain_reports_planted_bugs(tmp_path):
    """Control: the same compiler flags do catch a heap overflow and a signed overflow."""
    preload, why = harness.sanitizer_runtime()
    if not preload or not shutil.which("g++"):
        pytest.skip(why or "g++ not found")
    src = tmp_path / "planted.cpp"
    src.write_text("#include <climits>\n#include <cstdlib>\nint main(int argc, char**) {\n"
                   "  volatile int big = INT_MAX; big = big + argc;\n"  # signed overflow: UBSan
                   "  int* p = static_cast<int*>(std::malloc(4 * sizeof(int)));\n"
                   "  int v = p[argc + 3]; std::free(p); return v; }\n")  # one past the end: ASan
    exe = tmp_path / "planted"
    subprocess.run(["g++", "-g", "-fsanitize=address,undefined", str(src), "-o", str(exe)], check=True,
                   capture_output=True, timeout=300)
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60,
                          env={"ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=1"})
    assert proc.returncode != 0 and "heap-buffer-overflow" in proc.stderr and "runtime error:" in proc.stderr


def test_copy_imports_the_sanitized_extension(sanitized):
    copy, env = sanitized
    proc = subprocess.run([sys.executable, "-c", "import showo_sdk._maskgit as m; print(m.__file__)"], cwd=copy,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    so = Path(proc.stdout.strip())
    assert so.is_relative_to(copy), so
    assert "libasan" in subprocess.run(["ldd", str(so)], capture_output=True, text=True).stdout


def test_sampling_suite_runs_clean(sanitized):
    """tests/sampling, fast and slow (the hypothesis fuzz with 2,000 examples), against the sanitized build."""
    copy, env = sanitized
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/sampling", "-m",
                           "slow or not slow", "--hypothesis-show-statistics"], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=3600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and not _clean(output), output[-4000:]
    passing = [int(n) for n in re.findall(r"(\d+) passing", output)]
    assert max(passing, default=0) >= 2000, output[-3000:]


def test_bad_maskgit_calls_run_clean(sanitized, tmp_path):
    """The _maskgit bad calls (error paths: C++ exceptions, GIL release, worker pool) under the sanitizers."""
    copy, env = sanitized
    cases = [c for c in bad_calls.CASES if c.surface == "maskgit" and not c.bug]  # known bugs allocate GBs or hang
    jobs = [{"id": c.id, "func": c.id, "timeout": 120, "mem_headroom_mb": 0} for c in cases]  # ASan maps TBs
    results = harness.run_jobs(Path(bad_calls.__file__), jobs, {}, tmp_path, env=env,
                               preload=("numpy", "showo_sdk.sampling"))
    failed = {c.id: bad_calls.judge(c, results[c.id])[1] for c in cases if not bad_calls.judge(c, results[c.id])[0]}
    reports = {cid: _clean(r["stderr"]) for cid, r in results.items() if _clean(r["stderr"])}
    assert not failed and not reports, (failed, reports)
