"""Fixtures of the hardening suite, over tests/conftest.py's ``tiny`` (the tiny checkpoint, exported once
per session and shared with the export, runtime and CLI tests).

The fast part runs with the normal ``pytest``; the long parts are ``@pytest.mark.slow``:
``pytest -m slow tests/hardening`` (counts scale with SHOWO_SOAK_CALLS, SHOWO_EXPORT_KILL_POINTS,
SHOWO_CONCURRENCY_ROUNDS; see each module). ``python benchmarks/reliability.py`` runs everything
and writes benchmarks/results/reliability.json.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_ctx(tiny) -> dict[str, str]:
    """What forked jobs get as ``ctx``: the bundle and checkpoint paths."""
    return {"bundle": str(tiny.bundle), "ckpt": str(tiny.checkpoint)}
