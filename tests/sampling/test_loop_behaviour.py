"""What the loop does, on both implementations: schedule, known codes, greedy, seeds, callbacks."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from showo_sdk.sampling import (
    categorical, detmath, maskgit_generate, maskgit_generate_reference, mask_len_schedule, rng,
)

GENERATORS = [pytest.param(maskgit_generate, id="cpp"), pytest.param(maskgit_generate_reference, id="numpy")]


@pytest.fixture(params=GENERATORS)
def generate(request, ext):
    return request.param


def test_mask_counts_follow_the_spec_table(generate, step_fn_factory):
    seen: list[np.ndarray] = []
    k = 16
    out = generate(step_fn_factory(2, 256, k, True, record=seen), np.full((2, 256), k, dtype=np.int64), 16,
                   num_codes=k, guidance_scale=1.75, seed=3)
    counts = [(c == k).sum(axis=1).tolist() for c in seen]
    assert counts[0] == [256, 256]
    assert [c[0] for c in counts[1:]] == [254, 251, 244, 236, 225, 212, 197, 181, 162, 142, 120, 97, 74, 49, 25]
    assert all(c[0] == c[1] for c in counts)
    assert out.min() >= 0 and out.max() < k


def test_known_codes_are_kept_and_result_is_complete(generate, step_fn_factory):
    k, n = 50, 64
    r = np.random.default_rng(0)
    canvas = r.integers(0, k, size=(3, n))
    masked = r.random((3, n)) < 0.6
    masked[:, 0] = True  # at least one position to generate per row
    canvas[masked] = k
    before = canvas.copy()
    for greedy in (False, True):
        out = generate(step_fn_factory(3, n, k, False), canvas, 12, num_codes=k, seed=5, greedy=greedy)
        np.testing.assert_array_equal(canvas, before)  # not modified in place
        np.testing.assert_array_equal(out[~masked], canvas[~masked])
        assert out.min() >= 0 and out.max() < k


def test_one_position_and_one_step(generate, step_fn_factory):
    out = generate(step_fn_factory(2, 1, 5, True), np.full((2, 1), 5, dtype=np.int64), 3, num_codes=5,
                   guidance_scale=1.0)
    assert out.shape == (2, 1) and out.max() < 5
    out = generate(step_fn_factory(1, 9, 5, False), np.full((1, 9), 5, dtype=np.int64), 1, num_codes=5)
    assert out.shape == (1, 9) and out.max() < 5


def test_greedy_on_a_hand_table(generate):
    # step 0: argmax [0, 1, 2, 0] with p = [0.965, 0.452, 0.995, 0.550]; cos(pi/4) * 4 -> 2 re-masked
    # (positions 1 and 3); step 1 fills them from the second table: [0, 2, 2, 1].
    first = np.array([[[4, 0, 0], [0, 0.5, 0], [0, 0, 6], [1, 0.2, 0]]], dtype=np.float32)
    second = np.array([[[0, 0, 0], [0, 0, 3], [0, 0, 0], [0, 2, 0]]], dtype=np.float32)
    seen = []

    def step_fn(canvas):
        seen.append(canvas.copy())
        return first if len(seen) == 1 else second

    assert mask_len_schedule(4, 2).tolist() == [2, -1]
    out = generate(step_fn, np.full((1, 4), 3, dtype=np.int64), 2, num_codes=3, greedy=True, seed=99)
    assert seen[1].tolist() == [[0, 3, 2, 3]]
    assert out.tolist() == [[0, 2, 2, 1]]


def test_greedy_guidance_mix_and_first_maximum(generate):
    cond = [[1, 2, 0], [0, 0, 0], [3, 1, 3]]
    uncond = [[0, 3, 0], [1, 0, 1], [0, 0, 0]]
    logits = np.array([cond, uncond], dtype=np.float32)  # (2B, N, K), B = 1
    canvas = np.full((1, 3), 3, dtype=np.int64)
    # 2 * cond - uncond = [[2, 1, 0], [-1, 0, -1], [6, 2, 6]]: argmax 0, 1 and (tie) 0
    out = generate(lambda c: logits, canvas, 1, num_codes=3, guidance_scale=1.0, greedy=True)
    assert out.tolist() == [[0, 1, 0]]
    out = generate(lambda c: logits[:1], canvas, 1, num_codes=3, greedy=True)
    assert out.tolist() == [[1, 0, 0]]


def test_seeds(generate, step_fn_factory):
    canvas = np.full((2, 64), 40, dtype=np.int64)

    def run(seed, **kw):
        return generate(step_fn_factory(2, 64, 40, True), canvas, 8, num_codes=40, guidance_scale=1.75, seed=seed, **kw)

    np.testing.assert_array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))
    np.testing.assert_array_equal(run(1, greedy=True), run(2, greedy=True))  # greedy uses no randomness


def test_rows_do_not_depend_on_the_batch(generate, step_fn_factory):
    two = step_fn_factory(2, 32, 20, False, seed=8)
    one = lambda canvas: two(np.concatenate([canvas, canvas]))[:1]  # noqa: E731 - row 0 of the same model
    both = generate(two, np.full((2, 32), 20, dtype=np.int64), 6, num_codes=20, seed=4)
    alone = generate(one, np.full((1, 32), 20, dtype=np.int64), 6, num_codes=20, seed=4)
    np.testing.assert_array_equal(both[:1], alone)


def test_progress_and_step_calls(generate, step_fn_factory):
    calls, seen = [], []
    generate(step_fn_factory(1, 16, 8, False, record=seen), np.full((1, 16), 8, dtype=np.int64), 5, num_codes=8,
             progress=lambda step, steps: calls.append((step, steps)))
    assert calls == [(s, 5) for s in range(5)]
    assert len(seen) == 5 and all(c.dtype == np.int64 and c.shape == (1, 16) for c in seen)


def test_non_contiguous_inputs_are_copied(generate, step_fn_factory):
    k = 30
    base = step_fn_factory(2, 24, k, True, seed=2)
    strided = lambda canvas: np.asfortranarray(base(canvas))  # noqa: E731
    canvas = np.full((24, 2), k, dtype=np.int64).T  # (2, 24), not C-contiguous
    want = generate(base, np.ascontiguousarray(canvas), 5, num_codes=k, guidance_scale=5.0, seed=1)
    got = generate(strided, canvas, 5, num_codes=k, guidance_scale=5.0, seed=1)
    np.testing.assert_array_equal(got, want)


def test_temperature_compounds_before_use(generate):
    """Which positions step 0 re-masks depends on the temperature; only T0 * (1 - r0) fits.

    The expected re-masking is recomputed from the primitives with the temperature from the
    official update rule; a seed is picked where the uncompounded T0 would re-mask differently.
    """
    batch, n, k, steps, t0 = 1, 24, 6, 4, 3.0
    r = np.random.default_rng(0)
    logits = (r.standard_normal((batch, n, k)) * 2).astype(np.float32)
    rows, cols = np.zeros(n, dtype=np.int64), np.arange(n)
    count = int(max(1, min(n - 1, mask_len_schedule(n, steps)[0])))

    def remasked(seed, temp):
        _, p = categorical.sample_rows(logits[0], rng.uniform(seed, 0, rows, cols, rng.STREAM_CATEGORICAL))
        u = rng.uniform(seed, 0, rows, cols, rng.STREAM_GUMBEL)
        gumbel = -detmath.log_det(np.maximum(-detmath.log_det(np.maximum(u, 1e-20)), 1e-20))
        conf = detmath.log_det(np.maximum(p, 1e-20)) + temp * gumbel
        return conf < np.sort(conf)[count]

    seed = next(s for s in range(200) if not np.array_equal(remasked(s, t0), remasked(s, t0 * (1 - 1 / steps))))
    seen = []
    generate(lambda c: (seen.append(c.copy()), logits)[1], np.full((batch, n), k, dtype=np.int64), steps,
             num_codes=k, temperature=t0, seed=seed)
    np.testing.assert_array_equal(seen[1][0] == k, remasked(seed, t0 * (1 - 1 / steps)))


def test_interrupt_between_steps(ext):
    """A signal raised while C++ works stops the loop at the next step boundary."""
    n, k, steps = 512, 4096, 200
    logits = np.zeros((1, n, k), dtype=np.float32)
    remaining = iter([logits] * steps)
    step_fn = functools.partial(next, remaining)  # C-level callable: signals are only seen by the loop

    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, handler)
    timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        timer.start()
        with pytest.raises(Interrupted):  # the raw extension: no Python frame runs between steps
            ext.generate(step_fn, np.full((1, n), k, dtype=np.int64), mask_len_schedule(n, steps),
                         np.ones(steps), num_codes=k, guidance_scale=0.0, seed=0, greedy=False, num_threads=1)
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)
    assert len(list(remaining)) > 0  # stopped early, not after the last step
    assert maskgit_generate(lambda c: logits[:, :8, :16].copy(), np.full((1, 8), 16, dtype=np.int64), 2,
                            num_codes=16).shape == (1, 8)


def test_missing_extension_falls_back_with_one_warning():
    code = (
        "import sys, warnings; sys.modules['showo_sdk._maskgit'] = None\n"
        "warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    import showo_sdk.sampling as s\n"
        "    import showo_sdk.sampling.loop\n"
        "import numpy as np\n"
        "assert not s.HAVE_EXTENSION\n"
        "msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]\n"
        "assert len(msgs) == 1 and 'numpy reference' in msgs[0], msgs\n"
        "t = np.zeros((1, 4, 3), dtype=np.float32)\n"
        "out = s.maskgit_generate(lambda c: t, np.full((1, 4), 3), 2, num_codes=3)\n"
        "assert out.shape == (1, 4) and out.max() < 3\n"
        "assert 'torch' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
