"""Fuzz: random shapes, dtypes and values either raise a clean error or give a valid result.

The wrapper and the numpy reference must also agree: both raise InputError, or both return the
same codes. The raw extension is fuzzed directly too (its own schedule-table arguments).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from showo_sdk.errors import InputError
from showo_sdk.sampling import maskgit_generate, maskgit_generate_reference

CLEAN_ERRORS = (InputError, TypeError, ValueError)


@st.composite
def cases(draw):
    def pick(good, bad):  # a bad value one time in eight, so that valid runs are common too
        return draw(st.sampled_from(bad if draw(st.integers(0, 7)) == 7 else good))

    b, n = pick([1, 2, 3], [0]), pick([1, 2, 5, 6], [0])
    k = pick([1, 2, 6], [0, -1])
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = pick([(b, n)], [(b * n,), (b, n, 1)])
    canvas = rng.integers(0, max(k, 0) + 1, size=shape)
    if draw(st.booleans()):
        canvas[...] = k  # all masked
    canvas = canvas.astype(pick(["int64"], ["int32", "float64"]))
    canvas.flat[:1] += pick([0], [-1 - max(k, 0), 1, 2])
    guidance = pick([0.0, 1.75, 5.0], [-1.0, float("nan"), 1e7])
    rows = pick([2 * b if guidance > 0 else b], [b, 2 * b, b + 1])
    logits = rng.standard_normal((rows, n, max(k + pick([0], [1, -1]), 0))) * 3
    logits = logits.astype(pick(["float32"], ["float64", "float16", "int64"]))
    poison = pick([None], [np.nan, np.inf, -np.inf, 3e38])
    if poison is not None and logits.size and logits.dtype.kind == "f":
        with np.errstate(over="ignore"):  # 3e38 is inf in float16
            logits.flat[rng.integers(logits.size)] = poison
    if draw(st.booleans()) and logits.ndim == 3:
        logits = np.asfortranarray(logits)  # accepted by copying in the wrapper, refused by the raw extension
    return dict(
        canvas=canvas, logits=logits, steps=pick([1, 2, 4], [-1, 0]), num_codes=k, guidance_scale=guidance,
        temperature=pick([1.0, 0.0, 3.0], [-0.1, float("inf")]), schedule=pick(["cosine", "pow2", "sigmoid"], ["bogus"]),
        seed=pick([0, 7, 2**64 - 1], [-5]), greedy=draw(st.booleans()), num_threads=pick([0, 1, 2], [-1]),
    )


def _outcome(generate, case):
    logits = case["logits"]
    kwargs = {key: value for key, value in case.items() if key not in ("canvas", "logits", "steps")}
    try:
        return generate(lambda c: logits, case["canvas"], case["steps"], **kwargs)
    except CLEAN_ERRORS as exc:
        return exc


def _check_valid(result, case):
    b, n = case["canvas"].shape
    assert result.dtype == np.int64 and result.shape == (b, n)
    assert result.min() >= 0 and result.max() < case["num_codes"]


def _check_case(ext, case):
    got, want = _outcome(maskgit_generate, case), _outcome(maskgit_generate_reference, case)
    if isinstance(want, Exception):
        assert isinstance(got, InputError) and isinstance(want, InputError), (got, want)
    else:
        _check_valid(want, case)
        np.testing.assert_array_equal(got, want)
    steps = max(case["steps"], 0)
    rng = np.random.default_rng(steps)
    try:  # the raw extension, with raw (possibly bad) schedule tables
        result = ext.generate(
            lambda c: case["logits"], case["canvas"], rng.integers(-3, 10, size=steps),
            rng.choice([1.0, 0.0, -1.0, np.nan], size=steps), num_codes=case["num_codes"],
            guidance_scale=case["guidance_scale"], seed=max(case["seed"], 0), greedy=case["greedy"],
            num_threads=max(case["num_threads"], 0),
        )
    except (ext.InvalidArgument, TypeError, ValueError):
        return
    _check_valid(result, case)


@settings(max_examples=200, deadline=None)
@given(case=cases())
def test_fuzz(ext, case):
    _check_case(ext, case)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None)
@given(case=cases())
def test_fuzz_long(ext, case):
    _check_case(ext, case)
