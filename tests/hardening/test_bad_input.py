"""Bad input never crashes the host: every bad call gives a clear one-line error, in a subprocess.

The catalog (bad_calls.py) holds 100+ distinct bad calls across ``Runtime``, the ``showo`` CLI,
``showo-export`` and ``_maskgit``: wrong types, shapes, dtypes, ranges, NaN/Inf logits, corrupt
files, a pickle payload, and sizes that would exhaust memory. One worker process forks a child per
call with its address space capped (so a memory blow-up fails inside the cap instead of starving a
shared machine); a segfault or abort shows up as that case's failure with its signal, never as a
dead test run. Cases that fail because of a known defect elsewhere carry ``bug`` and are
``xfail(strict=True)``; ``test_no_call_crashes_the_interpreter`` covers them too.
"""

from __future__ import annotations

from pathlib import Path

import pytest




import showo_hardening_harness as harness  # noqa: E402  (registered by conftest.py)
bad_calls = harness.load("bad_calls")
CASES = bad_calls.CASES
PRELOAD = ("numpy", "onnxruntime", "PIL.Image", "showo_sdk.runtime", "showo_sdk.cli", "showo_sdk.sampling",
           "safetensors.numpy", "torch", "showo_sdk.export.cli")


@pytest.fixture(scope="module")
def results(tiny_ctx, tmp_path_factory) -> dict[str, dict]:
    """Every case of the catalog, each in its own forked child (one worker process for all)."""
    jobs = [{"id": c.id, "func": c.id, "timeout": c.timeout} for c in CASES]
    return harness.run_jobs(Path(bad_calls.__file__), jobs, tiny_ctx, tmp_path_factory.mktemp("bad_calls"),
                            preload=PRELOAD)


def _param(c):
    marks = [pytest.mark.xfail(strict=True, reason=f"BUG {c.bug}")] if c.bug else []
    return pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_call_is_refused_cleanly(case, results):
    ok, why = bad_calls.judge(case, results[case.id])
    assert ok, f"{case.surface}: {case.call}: {why}"


def test_no_call_crashes_the_interpreter(results):
    """Zero signals and zero silent deaths over the whole catalog, known-bug cases included."""
    crashed = {cid: (r.get("signal_name") or r.get("exit_status"), r["stderr"][-300:])
               for cid, r in results.items() if r["outcome"] in ("signal", "died")}
    assert not crashed, crashed


def test_the_catalog_is_broad():
    """At least 30 distinct calls, and every surface of the issue is covered."""
    counts = bad_calls.surfaces()
    assert len(CASES) >= 30 and len({c.call for c in CASES}) == len(CASES)
    assert set(counts) == {"runtime", "cli", "export-cli", "maskgit"} and min(counts.values()) >= 8, counts


def test_the_pickle_payload_is_real(tmp_path):
    """Control for the payload cases: the same file *does* run its command when unpickled without weights_only."""
    torch = pytest.importorskip("torch")
    marker = tmp_path / "ran"
    torch.save({"evil": bad_calls.Evil(marker)}, tmp_path / "pytorch_model.bin")
    torch.load(tmp_path / "pytorch_model.bin", weights_only=False)
    assert marker.exists()
