"""Mask schedules: the spec tables, the official formulas in float32, torch's own evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from showo_sdk.errors import InputError
from showo_sdk.sampling import mask_len_schedule, mask_ratio_schedule, temperature_schedule

F32 = np.float32
SPEC_TABLES = {
    (256, 16): [254, 251, 244, 236, 225, 212, 197, 181, 162, 142, 120, 97, 74, 49, 25, -1],
    (256, 18): [255, 252, 247, 240, 232, 221, 209, 196, 181, 164, 146, 127, 108, 87, 66, 44, 22, -1],
}
SIZES = [1, 7, 64, 100, 256, 1000, 1024, 4096]
STEP_COUNTS = [1, 2, 3, 7, 12, 16, 18, 25, 50, 64]


@pytest.mark.parametrize(("n", "steps"), list(SPEC_TABLES))
def test_cosine_matches_spec_tables(n, steps):
    table = mask_len_schedule(n, steps)
    assert table.dtype == np.int64 and table.shape == (steps,)
    assert table.tolist() == SPEC_TABLES[(n, steps)]


def test_cosine_float32_rounding_at_two_thirds():
    # r = 2/3 gives cos = 0.49999997 in float32, so 127 and not 128 (SHOWO_SPEC.md §5)
    assert mask_ratio_schedule(18)[11] == F32(0.49999997)
    assert mask_len_schedule(256, 18)[11] == 127


def _expected(n: int, steps: int, schedule: str) -> np.ndarray:
    """The official formulas written out with numpy float32 operations."""
    t = (np.arange(1, steps + 1) / steps).astype(F32)
    if schedule == "linear":
        ratio = np.clip(F32(1) - t, F32(1e-6), F32(1))
    elif schedule.startswith("pow"):
        ratio = np.clip(F32(1) - np.power(t, F32(float(schedule[3:]))), F32(1e-6), F32(1))
    else:  # sigmoid, start=-3, end=3, tau=1
        def sig(v):
            return F32(1) / (F32(1) + np.exp(-v))
        v_start, v_end = sig(F32(-3)), sig(F32(3))
        ratio = np.clip((v_end - sig((t * F32(6) + F32(-3)) / F32(1))) / (v_end - v_start), F32(1e-6), F32(1))
    return np.floor(F32(n) * ratio).astype(np.int64)


@pytest.mark.parametrize("schedule", ["linear", "pow1", "pow2", "pow3", "pow0.5", "pow2.5", "sigmoid"])
def test_other_schedules_match_float32_formulas(schedule):
    for n in SIZES:
        for steps in STEP_COUNTS:
            got = mask_len_schedule(n, steps, schedule)
            np.testing.assert_array_equal(got, _expected(n, steps, schedule), err_msg=f"{schedule} N={n} T={steps}")


@pytest.mark.parametrize("schedule", ["cosine", "linear", "pow2", "pow0.5", "pow3", "sigmoid"])
def test_schedules_match_torch(schedule):
    torch = pytest.importorskip("torch")

    def official(t):
        if schedule == "cosine":
            return torch.cos(t * math.pi * 0.5)
        if schedule == "linear":
            return (1 - t).clamp(min=1e-6, max=1.0)
        if schedule.startswith("pow"):
            return (1.0 - t ** float(schedule[3:])).clamp(min=1e-6, max=1.0)
        v_start, v_end = torch.sigmoid(torch.tensor(-3.0)), torch.sigmoid(torch.tensor(3.0))
        return torch.clip((v_end - torch.sigmoid((t * 6 + -3) / 1.0)) / (v_end - v_start), 1e-6, 1.0)

    for steps in STEP_COUNTS:
        ratios = [official(torch.tensor(1.0 * (s + 1) / steps)) for s in range(steps)]
        for n in SIZES:
            want = [int((n * r).floor()) for r in ratios]
            assert mask_len_schedule(n, steps, schedule).tolist() == want, (schedule, n, steps)


def test_mask_ratio_is_float32_and_ends_low():
    for schedule in ("cosine", "linear", "pow2", "sigmoid"):
        ratio = mask_ratio_schedule(10, schedule)
        assert ratio.dtype == np.float32 and ratio.shape == (10,)
        assert np.all(np.diff(ratio) <= 0) and ratio[-1] < 1e-5


def test_temperature_compounds_before_use():
    t0, steps = 4.5, 7
    want = [t0 * math.prod(1.0 - (i + 1) / steps for i in range(s + 1)) for s in range(steps)]
    got = temperature_schedule(t0, steps)
    np.testing.assert_allclose(got, want, rtol=1e-15)
    assert got[0] == t0 * (1.0 - 1.0 / steps)  # scaled already at the first step
    assert got[-1] == 0.0


@pytest.mark.parametrize("schedule", ["cos", "pow", "powx", "pow-1", "pow0", "powinf", "", "COSINE", 3])
def test_unknown_schedule_is_refused(schedule):
    with pytest.raises(InputError, match="schedule"):
        mask_len_schedule(256, 16, schedule)


@pytest.mark.parametrize(("n", "steps"), [(0, 4), (-1, 4), (256, 0), (256, -3), (256, 10_001), (True, 4), (2.0, 4)])
def test_bad_counts_are_refused(n, steps):
    with pytest.raises(InputError, match=r"must be an int in"):
        mask_len_schedule(n, steps)
