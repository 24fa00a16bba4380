"""Long runs do not leak: RSS stays flat over 500 generations and over 500 understand calls.

Each run happens in a fresh Python that imports only the runtime side (numpy, onnxruntime,
showo_sdk), so the figures are the SDK's own: RSS is sampled every 10 calls, the first 10% are
warm-up (sessions, arenas, caches), and growth is measured from the end of warm-up to the end
(medians of 5 samples at each end). The model is the shipped "shapes" one when installed
(showo_sdk/assets/shapes), else the tests' tiny random one; the figures say which.

Slow: ``pytest -m slow tests/hardening/test_soak.py -s`` (``SHOWO_SOAK_CALLS=50`` for a quick check).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
CALLS = int(os.environ.get("SHOWO_SOAK_CALLS", "500"))
MAX_GROWTH_PCT = 5.0




import showo_hardening_harness as harness  # noqa: E402  (registered by conftest.py)


@pytest.fixture(scope="module")
def soak_bundle(tiny, tmp_path_factory) -> tuple[str, Path]:
    return harness.soak_bundle(tiny.bundle, tmp_path_factory.mktemp("soak"))


@pytest.mark.parametrize("kind", ["generate", "understand"])
def test_rss_is_flat_over_a_long_run(soak_bundle, kind):
    model, bundle = soak_bundle
    figures = harness.run_soak(bundle, kind, CALLS)
    print(json.dumps({"model": model, **{k: v for k, v in figures.items() if k != "samples_mb"}}))
    assert figures["calls"] == CALLS
    assert figures["growth_pct"] < MAX_GROWTH_PCT, figures
