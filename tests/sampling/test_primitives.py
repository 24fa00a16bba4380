"""exp/log, the counter RNG and the row sampler: C++ and numpy agree bit for bit, and are right."""

from __future__ import annotations

import math

import numpy as np
import pytest

from showo_sdk.sampling import categorical, detmath, rng
from showo_sdk.sampling.reference import guided_logits


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.spacing(np.abs(b))


def test_exp_det_is_accurate():
    r = np.random.default_rng(0)
    x = np.concatenate([-r.random(20000) * 708, -r.random(20000) * 2, [0.0, -0.0, -1e-300, 5.0, 709.0]])
    assert _ulps(detmath.exp_det(x), np.array([math.exp(v) for v in x])).max() <= 1.0
    assert detmath.exp_det(np.array([0.0]))[0] == 1.0  # the argmax weighs exactly 1
    np.testing.assert_array_equal(detmath.exp_det(np.array([-708.5, -1e30, -np.inf])), 0.0)


def test_log_det_is_accurate():
    r = np.random.default_rng(1)
    x = np.concatenate([r.random(20000) + 1e-300, 10 ** r.uniform(-20, 38.5, 20000), [1.0, 2.0, 0.5, 1e-20]])
    assert _ulps(detmath.log_det(x), np.array([math.log(v) for v in x])).max() <= 2.0
    assert detmath.log_det(np.array([1.0]))[0] == 0.0


def test_detmath_cpp_equals_numpy(ext):
    r = np.random.default_rng(2)
    x = np.concatenate([-r.random(100_000) * 750, -r.random(100_000) * 3, [0.0, -0.0, -np.inf, -708.0]])
    np.testing.assert_array_equal(ext._exp_det(x), detmath.exp_det(x))
    y = np.concatenate([r.random(100_000) + 1e-20, 10 ** r.uniform(-20, 38.5, 100_000), [float(np.finfo(np.float32).max)]])
    np.testing.assert_array_equal(ext._log_det(y), detmath.log_det(y))


def test_rng_cpp_equals_numpy_and_is_uniform(ext):
    r = np.random.default_rng(3)
    rows, positions = r.integers(0, 8, 50_000), r.integers(0, 5000, 50_000)
    for seed, step, stream in [(0, 0, 0), (2**64 - 1, 17, 1), (123456789, 9999, 0)]:
        u = rng.uniform(seed, step, rows, positions, stream)
        np.testing.assert_array_equal(ext._uniform(seed, step, rows, positions, stream), u)
        assert 0.0 < u.min() and u.max() < 1.0
        assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    # every coordinate matters
    base = rng.uniform(5, 3, np.array([1]), np.array([2]), 0)
    for args in [(6, 3, [1], [2], 0), (5, 4, [1], [2], 0), (5, 3, [0], [2], 0), (5, 3, [1], [3], 0), (5, 3, [1], [2], 1)]:
        assert rng.uniform(args[0], args[1], np.array(args[2]), np.array(args[3]), args[4]) != base


@pytest.mark.parametrize("k", [1, 2, 15, 16, 17, 33, 300, 8192])
def test_sample_rows_cpp_equals_numpy(ext, k):
    r = np.random.default_rng(k)
    logits = (r.standard_normal((300, k)) * r.choice([0.1, 3.0, 40.0], size=(300, 1))).astype(np.float32)
    u = r.random(300)
    for draw in (u, None):
        idx_c, p_c = ext._sample_rows(logits, draw)
        idx_n, p_n = categorical.sample_rows(logits, draw)
        np.testing.assert_array_equal(idx_c, idx_n)
        np.testing.assert_array_equal(p_c, p_n)
        assert idx_n.min() >= 0 and idx_n.max() < k


@pytest.mark.parametrize("guidance", [0.5, 1.75, 5.0, 13.3])
def test_guided_sample_rows_cpp_equals_numpy(ext, guidance):
    # bit-equal probabilities prove the float32 mix rounds like numpy's (and torch's) float32 ops
    r = np.random.default_rng(int(guidance * 10))
    cond = (r.standard_normal((400, 301)) * 4).astype(np.float32)
    uncond = (cond + r.standard_normal((400, 301)).astype(np.float32)).astype(np.float32)
    mixed = guided_logits(np.concatenate([cond, uncond]), 400, guidance)
    assert mixed.dtype == np.float32
    u = r.random(400)
    for draw in (u, None):
        idx_c, p_c = ext._sample_rows(cond, draw, uncond, guidance)
        idx_n, p_n = categorical.sample_rows(mixed, draw)
        np.testing.assert_array_equal(idx_c, idx_n)
        np.testing.assert_array_equal(p_c, p_n)


def test_sample_rows_probability_is_softmax():
    r = np.random.default_rng(4)
    logits = (r.standard_normal((50, 37)) * 2).astype(np.float32)
    idx, p = categorical.sample_rows(logits, r.random(50))
    soft = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, soft[np.arange(50), idx], rtol=1e-13)


def test_greedy_takes_first_maximum():
    logits = np.array([[0, 3, 3, 1], [2, 2, 2, 2], [-1, -5, -1, -1]], dtype=np.float32)
    idx, p = categorical.sample_rows(logits, None)
    assert idx.tolist() == [1, 0, 0]
    np.testing.assert_allclose(p, [np.exp(3) / (1 + 2 * np.exp(3) + np.exp(1)), 0.25, 1 / (3 + np.exp(-4))])


def test_sampling_follows_the_softmax_distribution():
    probs = np.array([0.05, 0.5, 0.0001, 0.2, 0.2499])
    logits = np.tile(np.log(probs).astype(np.float32), (200_000, 1))
    u = rng.uniform(42, 0, np.zeros(200_000, dtype=np.int64), np.arange(200_000), 0)
    idx, _ = categorical.sample_rows(logits, u)
    freq = np.bincount(idx, minlength=5) / len(idx)
    tolerance = 4 * np.sqrt(probs * (1 - probs) / len(idx)) + 1e-4  # 4 standard errors
    assert np.all(np.abs(freq - probs) <= tolerance), (freq, probs)


def test_inverse_cdf_edges():
    # u next to 0 and next to 1 pick the first and the last token with any weight
    logits = np.array([[-1000, 0, 0, 0, -1000]] * 2, dtype=np.float32)
    idx, _ = categorical.sample_rows(logits, np.array([2.0**-53, 1 - 2.0**-53]))
    assert idx.tolist() == [1, 3]
