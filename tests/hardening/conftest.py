"""Fixtures of the hardening suite, over tests/conftest.py's ``tiny`` (the tiny checkpoint, exported once
per session and shared with the export, runtime and CLI tests).

The fast part runs with the normal ``pytest``; the long parts are ``@pytest.mark.slow``:
``pytest -m slow tests/hardening`` (counts scale with SHOWO_SOAK_CALLS, SHOWO_EXPORT_KILL_POINTS,
SHOWO_CONCURRENCY_ROUNDS; see each module). ``python benchmarks/reliability.py`` runs everything
and writes benchmarks/results/reliability.json.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# harness.py is loaded by path once, under a name no other test module uses; the test modules
# import it as ``showo_hardening_harness`` and load their other helpers with ``harness.load``.
if "showo_hardening_harness" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("showo_hardening_harness", Path(__file__).with_name("harness.py"))
    sys.modules[_spec.name] = _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)


@pytest.fixture(scope="session")
def tiny_ctx(tiny) -> dict[str, str]:
    """What forked jobs get as ``ctx``: the bundle and checkpoint paths."""
    return {"bundle": str(tiny.bundle), "ckpt": str(tiny.checkpoint)}
