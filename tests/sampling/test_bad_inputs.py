"""Bad arguments and bad step_fn outputs raise clear errors on both paths; nothing crashes."""

from __future__ import annotations

import numpy as np
import pytest

from showo_sdk.errors import InputError
from showo_sdk.sampling import mask_len_schedule, maskgit_generate, maskgit_generate_reference

K, N, B = 7, 5, 2
GENERATORS = [pytest.param(maskgit_generate, id="cpp"), pytest.param(maskgit_generate_reference, id="numpy")]


@pytest.fixture(params=GENERATORS)
def generate(request, ext):
    return request.param


def _canvas() -> np.ndarray:
    return np.full((B, N), K, dtype=np.int64)


def _logits(rows: int = B) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((rows, N, K)).astype(np.float32)


def _call(generate, step_fn=None, canvas=None, steps=3, **kw):
    kw.setdefault("num_codes", K)
    return generate(step_fn or (lambda c: _logits()), _canvas() if canvas is None else canvas, steps, **kw)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(steps=0), "steps"), (dict(steps=-2), "steps"), (dict(steps=10_001), "steps"), (dict(steps=2.0), "steps"),
    (dict(steps=True), "steps"), (dict(num_codes=0), "num_codes"), (dict(num_codes=3.0), "num_codes"),
    (dict(guidance_scale=-0.5), "guidance_scale"), (dict(guidance_scale=float("nan")), "guidance_scale"),
    (dict(guidance_scale=float("inf")), "guidance_scale"), (dict(guidance_scale="1"), "guidance_scale"),
    (dict(temperature=-1.0), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(seed=-1), "seed"), (dict(seed=2**64), "seed"), (dict(seed=1.5), "seed"),
    (dict(num_threads=-1), "num_threads"), (dict(num_threads=1.0), "num_threads"),
    (dict(schedule="cosinus"), "schedule"), (dict(schedule="pow-2"), "schedule"), (dict(greedy=1), "greedy"),
    (dict(progress=3), "progress"), (dict(step_fn=42), "step_fn"),
])
def test_bad_arguments(generate, kwargs, match):
    with pytest.raises(InputError, match=match):
        _call(generate, **kwargs)


@pytest.mark.parametrize(("canvas", "match"), [
    (np.full((B, N), K, dtype=np.int32), "int64"),
    (np.full((B, N), K, dtype=np.float64), "int64"),
    (np.full((B, N), K, dtype=">i8"), "int64"),
    (np.full((B, N), K + 1, dtype=np.int64), r"\[0, 6\] or the MASK sentinel 7"),
    (np.full((B, N), -1, dtype=np.int64), "canvas values"),
    (np.full((B * N,), K, dtype=np.int64), r"\(B, N\)"),
    (np.full((0, N), K, dtype=np.int64), r"\(B, N\)"),
    (np.full((B, 0), K, dtype=np.int64), r"\(B, N\)"),
    ([[K] * N] * B, "numpy int64 array"),
])
def test_bad_canvas(generate, canvas, match):
    with pytest.raises(InputError, match=match):
        _call(generate, canvas=canvas)


@pytest.mark.parametrize(("output", "guidance", "match"), [
    (_logits().astype(np.float64), 0.0, "float32"),
    (_logits().astype(np.float16), 0.0, "float32"),
    (_logits().astype(">f4"), 0.0, "float32"),
    (_logits()[..., :-1].copy(), 0.0, "shape"),
    (_logits(), 1.75, r"\(2B, N, K\)"),
    (_logits(2 * B), 0.0, "shape"),
    (_logits()[0].copy(), 0.0, "shape"),
    (_logits().tolist(), 0.0, "numpy"),
    (None, 0.0, "numpy"),
])
def test_bad_step_outputs(generate, output, guidance, match):
    with pytest.raises(InputError, match=match) as info:
        _call(generate, step_fn=lambda c: output, guidance_scale=guidance)
    assert "step 0" in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_logits_name_the_step(generate, bad):
    calls = []

    def step_fn(canvas):
        calls.append(1)
        out = _logits(2 * B)
        if len(calls) == 3:
            out[2 * B - 1, N - 1, 0] = bad  # in an unconditional row
        return out

    with pytest.raises(InputError, match=r"step 2: .*non-finite"):
        _call(generate, step_fn=step_fn, steps=5, guidance_scale=1.75)


def test_non_finite_logits_at_a_known_position(generate):
    canvas = _canvas()
    canvas[0, 0] = 1
    out = _logits()
    out[0, 0, 3] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        _call(generate, step_fn=lambda c: out, canvas=canvas)


def test_guided_overflow(generate):
    big = np.full((2 * B, N, K), 3e38, dtype=np.float32)
    big[B:] = -3e38
    with pytest.raises(InputError, match="overflow"):
        _call(generate, step_fn=lambda c: big, guidance_scale=1.0)


class ModelFailure(Exception):
    pass


@pytest.mark.parametrize("error", [ModelFailure("boom"), ValueError("model says no"), KeyboardInterrupt()])
def test_step_fn_exception_propagates_unchanged(generate, error):
    def step_fn(canvas):
        raise error

    with pytest.raises(type(error)) as info:
        _call(generate, step_fn=step_fn)
    assert info.value is error and type(info.value) is type(error)


def test_progress_exception_propagates(generate):
    error = ModelFailure("progress")

    def progress(step, steps):
        if step == 1:
            raise error

    with pytest.raises(ModelFailure) as info:
        _call(generate, progress=progress)
    assert info.value is error


def _raw_args(ext, **overrides):
    args = dict(step_fn=lambda c: _logits(), canvas=_canvas(), mask_lens=mask_len_schedule(N, 3),
                temperatures=np.ones(3), num_codes=K, guidance_scale=0.0, seed=0, greedy=False, num_threads=1)
    args.update(overrides)
    return args


@pytest.mark.parametrize(("overrides", "match"), [
    (dict(mask_lens=mask_len_schedule(N, 3).astype(np.int32)), "mask_lens"),
    (dict(mask_lens=np.zeros(0, dtype=np.int64), temperatures=np.zeros(0)), "steps"),
    (dict(mask_lens=np.zeros((3, 1), dtype=np.int64)), "mask_lens"),
    (dict(temperatures=np.ones(2)), "temperatures"),
    (dict(temperatures=np.ones(3, dtype=np.float32)), "temperatures"),
    (dict(temperatures=np.array([1.0, np.nan, 1.0])), "temperatures"),
    (dict(temperatures=np.array([1.0, -1.0, 1.0])), "temperatures"),
    (dict(canvas=np.full((N, B), K, dtype=np.int64).T), "C-contiguous"),
    (dict(canvas=np.full((B, N), K + 1, dtype=np.int64)), "canvas"),
    (dict(num_codes=0), "num_codes"), (dict(num_threads=5000), "num_threads"),
    (dict(guidance_scale=float("nan")), "guidance_scale"),
    (dict(step_fn=lambda c: np.asfortranarray(_logits())), "C-contiguous"),
    (dict(step_fn=None), "step_fn"), (dict(progress=1), "progress"),
])
def test_raw_extension_validates(ext, overrides, match):
    with pytest.raises(ext.InvalidArgument, match=match):
        ext.generate(**_raw_args(ext, **overrides))


def test_raw_extension_type_errors(ext):
    with pytest.raises(TypeError):
        ext.generate(**_raw_args(ext, seed=-1))
    with pytest.raises(TypeError):
        ext.generate(**_raw_args(ext, num_codes="7"))


def test_raw_extension_type_errors_are_one_line(ext):
    for overrides in (dict(seed=-1), dict(seed=2**64), dict(num_codes="7"), dict(num_codes=2**70),
                      dict(guidance_scale="1"), dict(greedy=1), dict(num_threads=1.5), dict(seed=np.zeros((3, 3)))):
        with pytest.raises(TypeError) as info:
            ext.generate(**_raw_args(ext, **overrides))
        message = str(info.value)
        assert "\n" not in message and "incompatible" not in message, (overrides, message)
        assert next(iter(overrides)) in message


def test_raw_extension_accepts_numpy_scalars(ext):
    args = _raw_args(ext)
    want = ext.generate(**args)
    got = ext.generate(**{**args, "num_codes": np.int64(args["num_codes"]), "seed": np.uint64(args["seed"]),
                          "guidance_scale": np.float64(args["guidance_scale"]), "greedy": np.bool_(args["greedy"]),
                          "num_threads": np.int32(args["num_threads"])})
    np.testing.assert_array_equal(got, want)


def test_limits_are_identical_on_both_paths(ext):
    from showo_sdk.sampling import validate

    for k, ok in ((validate.MAX_CODES, True), (validate.MAX_CODES + 1, False)):
        args = _raw_args(ext, num_codes=k, step_fn=lambda c: None)
        with pytest.raises(ext.InvalidArgument, match="step 0" if ok else "num_codes"):
            ext.generate(**args)


@pytest.mark.parametrize("shape", [(10**6, 10**6), (1, (1 << 24) + 1), ((1 << 12) + 1, 1 << 12)])
def test_huge_canvas_is_refused_before_any_scan(generate, shape):
    """A broadcast (zero-stride) canvas of 1e12 cells is refused at once, not scanned then copied."""
    with pytest.raises(InputError, match=r"B \* N"):
        _call(generate, canvas=np.broadcast_to(np.int64(K), shape), step_fn=lambda c: None)


def test_huge_logits_are_refused_before_any_step(generate):
    from showo_sdk.sampling import validate

    k = validate.MAX_CODES
    n = validate.MAX_LOGITS // (2 * k) + 1  # fine unguided, too many logits when guided (2B rows)
    canvas = np.broadcast_to(np.int64(k), (1, n))
    with pytest.raises(InputError, match="logits"):
        _call(generate, canvas=canvas, num_codes=k, guidance_scale=1.0, step_fn=lambda c: None)
    with pytest.raises(InputError, match="step 0"):  # unguided it fits: refused only at step 0's output
        _call(generate, canvas=canvas, num_codes=k, step_fn=lambda c: None, steps=1)


def test_raw_extension_bounds_cells_and_logits(ext):
    from showo_sdk.sampling import validate

    big = np.full((1, validate.MAX_POSITIONS + 1), 0, dtype=np.int64)
    with pytest.raises(ext.InvalidArgument, match=r"B \* N"):
        ext.generate(**_raw_args(ext, canvas=big))


def test_wrong_step_output_with_huge_codebook_and_many_threads(generate):
    """Scratch (threads x K) is allocated only after step 0's logits are checked."""
    from showo_sdk.sampling import validate

    k = validate.MAX_CODES
    canvas = np.full((1, 64), k, dtype=np.int64)
    with pytest.raises(InputError, match="step 0"):
        _call(generate, canvas=canvas, num_codes=k, num_threads=1024, steps=1,
              step_fn=lambda c: np.zeros((1, 64, 3), np.float32))


def test_thread_count_never_changes_the_result(ext):
    from showo_sdk.sampling import validate

    k = 1 << 14
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((1, 64, k)).astype(np.float32)
    canvas = np.full((1, 64), k, dtype=np.int64)
    results = [maskgit_generate(lambda c: logits, canvas, 3, num_codes=k, seed=5, num_threads=t)
               for t in (1, 3, validate.MAX_THREADS)]
    want = maskgit_generate_reference(lambda c: logits, canvas, 3, num_codes=k, seed=5)
    for got in results:
        np.testing.assert_array_equal(got, want)
