"""Runtime on ONNX Runtime CPU (fp32, greedy) against the PyTorch reference, on one exported tiny model.

Greedy decoding must give exactly the reference's codes and tokens: T2I (with and without
guidance, batch 1, 2 and beyond the graphs' batch), inpainting, extrapolation in every direction,
and understanding (batch 1 and 2). Also: seeds, outputs, streaming, progress, and no torch import.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from showo_sdk.canvas import extrapolate_canvas, inpaint_canvas, mask_to_grid, merge_extrapolation  # noqa: E402
from showo_sdk.imageio import preprocess, preprocess_mask, to_uint8  # noqa: E402
from showo_sdk.model.generate import mmu_generate, t2i_generate  # noqa: E402
from showo_sdk.prompting import MMU_TEMPLATE  # noqa: E402
from showo_sdk.runtime.mmu import TextStream  # noqa: E402

PROMPTS = ["a red circle left of a blue square", "two green triangles", "a yellow star above a square",
           "a small cyan circle", "three blue squares"]
QUESTIONS = ["What color is the circle?", "How many objects are there?"]


def reference_codes(tiny, cond, uncond, steps, guidance, mode="cached"):
    return t2i_generate(tiny.model, tiny.config, torch.from_numpy(cond),
                        None if uncond is None else torch.from_numpy(uncond), steps=steps,
                        guidance_scale=guidance, greedy=True, mode=mode).numpy()


def reference_image_codes(tiny, image) -> np.ndarray:
    pixels = torch.from_numpy(preprocess(image, tiny.vq.config.resolution)[None])
    with torch.no_grad():
        return tiny.vq.encode(pixels).numpy()  # (1, N)


# ---- text to image ---------------------------------------------------------------------------
@pytest.mark.parametrize("batch,guidance", [(1, 0.0), (2, 0.0), (2, 1.75), (2, 5.0)])
def test_generate_codes_equal_reference(rt, tiny, batch, guidance):
    ids = [tiny.tokenizer.encode(p) for p in PROMPTS[:batch]]
    cond = rt.prompting.t2i_ids(ids)
    uncond = rt.prompting.t2i_null_ids(batch) if guidance else None
    got = rt.generate_codes(cond, uncond, steps=8, guidance_scale=guidance, greedy=True)
    assert got.dtype == np.int64 and got.shape == (batch, tiny.config.num_image_tokens)
    assert np.array_equal(got, reference_codes(tiny, cond, uncond, 8, guidance))


def test_generate_codes_equal_official_recompute(rt, tiny):
    """The cached-prefix runtime equals the official whole-sequence recomputation."""
    cond = rt.prompting.t2i_ids([tiny.tokenizer.encode(PROMPTS[2])])
    uncond = rt.prompting.t2i_null_ids(1)
    got = rt.generate_codes(cond, uncond, steps=18, guidance_scale=1.75, greedy=True)
    assert np.array_equal(got, reference_codes(tiny, cond, uncond, 18, 1.75, mode="official"))


def test_generate_pipeline_equals_reference(rt, tiny):
    """Prompts -> tokenizer -> prompting -> graphs -> VQ decoder, against the reference end to end."""
    codes = rt.generate(PROMPTS[:2], steps=6, guidance_scale=1.75, greedy=True, output="codes")
    cond = rt.prompting.t2i_ids([tiny.tokenizer.encode(p) for p in PROMPTS[:2]])
    ref = reference_codes(tiny, cond, rt.prompting.t2i_null_ids(2), 6, 1.75)
    assert np.array_equal(np.stack(codes).reshape(2, -1), ref)
    images = rt.generate(PROMPTS[:2], steps=6, guidance_scale=1.75, greedy=True, output="numpy")
    with torch.no_grad():
        ref_pixels = to_uint8(tiny.vq.decode(torch.from_numpy(ref), grid=tuple(tiny.config.image_grid)).numpy())
    for got, want in zip(images, ref_pixels):
        assert got.shape == (64, 64, 3) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # uint8 truncation of 1e-6 float diffs


def test_prefix_runs_on_the_block_tail_and_decodes_as_the_whole_block(rt, tiny):
    """The driver computes only the text block's tail (leading all-PAD columns dropped); fed the whole
    block (as a format-1 bundle's graphs are), the same graphs give the same codes."""
    from showo_sdk.runtime.t2i import T2IDriver

    cond = rt.prompting.t2i_ids([tiny.tokenizer.encode(p) for p in PROMPTS[1:3]])
    uncond = rt.prompting.t2i_null_ids(2)
    tail = T2IDriver(rt._graphs, tiny.config)
    assert not tail.whole_block
    whole = T2IDriver(rt._graphs, tiny.config)
    whole.whole_block = True
    kw = dict(steps=6, guidance_scale=1.75, temperature=1.0, schedule="cosine", seed=0, greedy=True,
              num_threads=1, progress=None)
    got = tail.generate(cond, uncond, **kw)
    assert np.array_equal(got, whole.generate(cond, uncond, **kw))
    assert np.array_equal(got, reference_codes(tiny, cond, uncond, 6, 1.75))


def test_prompts_beyond_the_graph_batch_run_in_chunks(rt, tiny):
    """Guided rows double: more prompts than max_batch / 2 are split into calls, with the same codes."""
    prompts = PROMPTS * 2  # 10 prompts, 20 guided rows > max batch 8
    assert len(prompts) > rt._t2i.rows_per_call(guided=True)
    got = rt.generate(prompts, steps=4, guidance_scale=1.75, greedy=True, output="codes")
    cond = rt.prompting.t2i_ids([tiny.tokenizer.encode(p) for p in prompts])
    ref = reference_codes(tiny, cond, rt.prompting.t2i_null_ids(len(prompts)), 4, 1.75)
    assert np.array_equal(np.stack(got).reshape(len(prompts), -1), ref)


def test_outputs(rt):
    pil = rt.generate(PROMPTS[0], steps=2, seed=0)
    assert isinstance(pil, Image.Image) and pil.size == (64, 64) and pil.mode == "RGB"
    arr = rt.generate(PROMPTS[0], steps=2, seed=0, output="numpy")
    assert arr.shape == (64, 64, 3) and arr.dtype == np.uint8 and np.array_equal(np.asarray(pil), arr)
    codes = rt.generate(PROMPTS[0], steps=2, seed=0, output="codes")
    assert codes.shape == (4, 4) and np.array_equal(rt.decode_codes(codes[None])[0], arr)
    listed = rt.generate([PROMPTS[0]], steps=2, seed=0)
    assert isinstance(listed, list) and len(listed) == 1
    assert rt.image_size == (64, 64) and rt.backend == "ort-cpu"


def test_same_seed_same_image_different_seed_different_image(rt):
    a = rt.generate(PROMPTS[0], steps=6, seed=7, output="numpy")
    assert rt.last_seed == 7
    b = rt.generate(PROMPTS[0], steps=6, seed=7, output="numpy")
    c = rt.generate(PROMPTS[0], steps=6, seed=8, output="numpy")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_seed_none_draws_a_seed_that_reproduces(rt):
    first = rt.generate(PROMPTS[1], steps=4, output="codes")
    drawn = rt.last_seed
    assert isinstance(drawn, int)
    assert np.array_equal(first, rt.generate(PROMPTS[1], steps=4, seed=drawn, output="codes"))


def test_greedy_is_deterministic_whatever_the_seed(rt):
    a = rt.generate(PROMPTS[3], steps=6, seed=1, greedy=True, output="codes")
    b = rt.generate(PROMPTS[3], steps=6, seed=2, greedy=True, output="codes")
    assert np.array_equal(a, b)


def test_progress_callback_and_bar(rt, capsys):
    calls = []
    rt.generate(PROMPTS[0], steps=5, seed=0, progress=lambda s, t: calls.append((s, t)))
    assert calls == [(s, 5) for s in range(5)]
    rt.generate(PROMPTS[0], steps=3, seed=0, progress=True)
    assert "generate" in capsys.readouterr().err


# ---- inpainting and extrapolation --------------------------------------------------------------
def test_encode_image_equals_reference(rt, tiny, picture):
    assert np.array_equal(rt.encode_image(picture), reference_image_codes(tiny, picture))


def test_inpaint_equals_reference(rt, tiny, picture):
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:, 32:] = 255  # regenerate the right half
    got = rt.inpaint(picture, mask, PROMPTS[0], steps=6, guidance_scale=1.75, greedy=True, output="codes")
    codes = reference_image_codes(tiny, picture)
    cells = mask_to_grid(preprocess_mask(mask, 64), tiny.config.image_grid)
    canvas = inpaint_canvas(codes, cells, tiny.config.layout.codebook_size)
    cond = rt.prompting.t2i_ids([tiny.tokenizer.encode(PROMPTS[0])], canvas)
    ref = reference_codes(tiny, cond, rt.prompting.t2i_null_ids(1, canvas), 6, 1.75)
    assert np.array_equal(got.reshape(1, -1), ref)
    assert np.array_equal(got[~cells], codes.reshape(4, 4)[~cells])  # known tokens kept
    assert rt.inpaint(picture, mask, PROMPTS[0], steps=2, seed=0).size == (64, 64)


@pytest.mark.parametrize("direction,offset", [("left", 0), ("right", 1), ("up", 0), ("down", -1)])
def test_extrapolate_equals_reference(rt, tiny, picture, direction, offset):
    got = rt.extrapolate(picture, PROMPTS[1], direction=direction, offset=offset, steps=6, greedy=True,
                         output="codes")
    grid = tuple(tiny.config.image_grid)
    codes = reference_image_codes(tiny, picture)
    canvas = extrapolate_canvas(codes, grid, direction, offset, tiny.config.layout.codebook_size)
    cond = rt.prompting.t2i_ids([tiny.tokenizer.encode(PROMPTS[1])], canvas)
    generated = reference_codes(tiny, cond, rt.prompting.t2i_null_ids(1, canvas), 6, 1.75)
    want = merge_extrapolation(generated, codes, grid, direction, offset)[0]
    assert np.array_equal(got, want)
    image = rt.extrapolate(picture, PROMPTS[1], direction=direction, offset=offset, steps=2, seed=0)
    assert image.size == (want.shape[1] * 16, want.shape[0] * 16)  # non-square
    assert image.size != (64, 64)


# ---- understanding -----------------------------------------------------------------------------
def _question_ids(tiny, question):
    return np.array(tiny.tokenizer.encode(MMU_TEMPLATE.format(question=question)), dtype=np.int64)


@pytest.mark.parametrize("batch", [1, 2])
def test_understand_ids_equal_reference(rt, tiny, batch):
    rng = np.random.default_rng(batch)
    codes = rng.integers(0, tiny.config.layout.codebook_size, size=(batch, tiny.config.num_image_tokens))
    q = _question_ids(tiny, QUESTIONS[0])
    got = rt.understand_ids(codes, q, max_new_tokens=12)
    prompt = rt.prompting.mmu_ids(codes, q)
    ref = mmu_generate(tiny.model, tiny.config, torch.from_numpy(prompt), max_new_tokens=12, greedy=True)
    assert got == ref
    # a custom eot: rows stop at it (included), as the reference does
    eot = ref[0][2]
    got_eot = rt.understand_ids(codes, q, max_new_tokens=12, eot_id=eot)
    assert got_eot == mmu_generate(tiny.model, tiny.config, torch.from_numpy(prompt), max_new_tokens=12,
                                   eot_id=eot, greedy=True)
    assert got_eot[0][-1] == eot and len(got_eot[0]) <= 3


def test_understand_ids_per_row_questions_and_eot(rt, tiny):
    """Batch 2 with different questions of one length; the default eot is the layout's eos."""
    codes = np.random.default_rng(5).integers(0, tiny.config.layout.codebook_size, size=(2, 16))
    q = np.stack([_question_ids(tiny, "What color is it?"), _question_ids(tiny, "What shape is it?")])
    assert q.shape[0] == 2
    got = rt.understand_ids(codes, q, max_new_tokens=40)
    prompt = rt.prompting.mmu_ids(codes, q)
    assert got == mmu_generate(tiny.model, tiny.config, torch.from_numpy(prompt), max_new_tokens=40, greedy=True)


def test_understand_text_equals_reference(rt, tiny, picture):
    answer = rt.understand(picture, QUESTIONS[1], max_new_tokens=20)
    prompt = rt.prompting.mmu_ids(reference_image_codes(tiny, picture), _question_ids(tiny, QUESTIONS[1]))
    ref = mmu_generate(tiny.model, tiny.config, torch.from_numpy(prompt), max_new_tokens=20, greedy=True)[0]
    text_vocab = tiny.config.layout.text_vocab_size
    assert answer == tiny.tokenizer.decode([t for t in ref if t < text_vocab]).strip()


def test_understand_batch_equals_single_calls(rt, picture):
    other = np.ascontiguousarray(picture[::-1])
    images, questions = [picture, other, picture], [QUESTIONS[0], QUESTIONS[1], "Is there a red circle?"]
    batched = rt.understand(images, questions, max_new_tokens=10)
    assert batched == [rt.understand(i, q, max_new_tokens=10) for i, q in zip(images, questions)]
    assert rt.understand(picture, QUESTIONS, max_new_tokens=10) == batched[:1] + [
        rt.understand(picture, QUESTIONS[1], max_new_tokens=10)]


def test_stream_pieces_join_to_the_answer(rt, picture):
    answer = rt.understand(picture, QUESTIONS[0], max_new_tokens=30)
    pieces = list(rt.understand(picture, QUESTIONS[0], max_new_tokens=30, stream=True))
    assert "".join(pieces) == answer
    assert all(pieces)


def test_sampling_is_seeded(rt, picture):
    a = rt.understand(picture, QUESTIONS[0], max_new_tokens=15, greedy=False, top_k=5, temperature=1.5, seed=3)
    b = rt.understand(picture, QUESTIONS[0], max_new_tokens=15, greedy=False, top_k=5, temperature=1.5, seed=3)
    assert a == b and rt.last_seed == 3
    top1 = rt.understand(picture, QUESTIONS[0], max_new_tokens=15, greedy=False, top_k=1, seed=9)
    assert top1 == rt.understand(picture, QUESTIONS[0], max_new_tokens=15)


def test_max_new_tokens_bounds_the_answer(rt, tiny):
    codes = np.zeros((1, 16), dtype=np.int64)
    q = _question_ids(tiny, QUESTIONS[0])
    one = rt.understand_ids(codes, q, max_new_tokens=1)
    assert len(one[0]) == 1
    assert len(rt.understand_ids(codes, q, max_new_tokens=5, eot_id=tiny.config.layout.vocab_size - 1)[0]) == 5


def test_text_stream_never_splits_multibyte_characters(tiny):
    text = "  héllo ünïcode € ✓  "
    ids = tiny.tokenizer.encode(text)
    stream = TextStream(tiny.tokenizer.decode)
    pieces = [p for p in (stream.push(t) for t in ids) if p] + [stream.finish()]
    assert "".join(pieces) == text.strip()
    assert not any("\ufffd" in p for p in pieces)


# ---- the edge promise --------------------------------------------------------------------------
def test_runtime_imports_no_torch(tiny):
    code = ("import sys, showo_sdk\n"
            f"rt = showo_sdk.Runtime({str(tiny.bundle)!r})\n"
            "rt.generate('a red circle', steps=2, seed=0); rt.understand(rt.generate('x', steps=1, seed=0), 'what?',"
            " max_new_tokens=2)\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
            "assert not bad, bad[:5]\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


# ---- GPU backends (skipped here: no GPU) --------------------------------------------------------
def _agreement(a, b) -> float:
    """Fraction of equal positions over the longer of two token sequences (or code arrays)."""
    a, b = np.ravel(a), np.ravel(b)
    return sum(int(x == y) for x, y in zip(a, b)) / max(len(a), len(b), 1)


@pytest.mark.gpu
def test_ort_cuda_agrees_with_cpu(rt, tiny):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime here has no CUDAExecutionProvider (install onnxruntime-gpu on a CUDA machine)")
    from showo_sdk import Runtime
    from showo_sdk.errors import BackendError

    try:
        gpu = Runtime(tiny.bundle, backend="ort-cuda")
    except BackendError as exc:
        pytest.skip(f"ONNX Runtime CUDA cannot run here: {exc}")
    cond = rt.prompting.t2i_ids([tiny.tokenizer.encode(p) for p in PROMPTS[:2]])
    uncond = rt.prompting.t2i_null_ids(2)
    assert _agreement(gpu.generate_codes(cond, uncond, steps=8, greedy=True),
                      rt.generate_codes(cond, uncond, steps=8, greedy=True)) >= 0.9
    codes = np.zeros((2, 16), dtype=np.int64)
    q = _question_ids(tiny, QUESTIONS[0])
    assert _agreement(gpu.understand_ids(codes, q, max_new_tokens=8)[0],
                      rt.understand_ids(codes, q, max_new_tokens=8)[0]) >= 0.75


@pytest.mark.tensorrt
def test_tensorrt_agrees_with_cpu(rt, tiny, tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install tensorrt on an NVIDIA GPU machine)")
    from showo_sdk import Runtime
    from showo_sdk.export import ExportOptions, export_checkpoint
    from showo_sdk.export.tensorrt import unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    bundle = tmp_path / "trt.plan"
    export_checkpoint(tiny.checkpoint, bundle, options=ExportOptions(tensorrt="require", progress=False))
    trt_rt = Runtime(bundle, backend="tensorrt")
    assert trt_rt.backend == "tensorrt" and Runtime(bundle).backend == "tensorrt"  # auto picks the engines
    cond = rt.prompting.t2i_ids([tiny.tokenizer.encode(p) for p in PROMPTS[:2]])
    uncond = rt.prompting.t2i_null_ids(2)
    assert _agreement(trt_rt.generate_codes(cond, uncond, steps=8, greedy=True),
                      rt.generate_codes(cond, uncond, steps=8, greedy=True)) >= 0.9
    codes = np.zeros((2, 16), dtype=np.int64)
    q = _question_ids(tiny, QUESTIONS[0])
    assert _agreement(trt_rt.understand_ids(codes, q, max_new_tokens=8)[0],
                      rt.understand_ids(codes, q, max_new_tokens=8)[0]) >= 0.75
    assert trt_rt.generate("a red circle", steps=4, seed=0).size == (64, 64)
    assert trt_rt.extrapolate(trt_rt.generate("x", steps=2, seed=0), "x", direction="up", steps=2).size == (64, 96)


# ---- low memory ----------------------------------------------------------------------------------
def test_low_memory_runs_from_the_mapped_weights_and_decodes_the_same(rt, tiny):
    """low_memory=True turns ONNX Runtime's prepacking off in every session and changes no token."""
    from showo_sdk import Runtime

    lean = Runtime(tiny.bundle, backend="ort-cpu", num_threads=2, low_memory=True)
    cond = rt.prompting.t2i_ids([tiny.tokenizer.encode(p) for p in PROMPTS[:2]])
    uncond = rt.prompting.t2i_null_ids(2)
    got = lean.generate_codes(cond, uncond, steps=8, guidance_scale=1.75, greedy=True)
    assert np.array_equal(got, rt.generate_codes(cond, uncond, steps=8, guidance_scale=1.75, greedy=True))
    codes = np.random.default_rng(0).integers(0, tiny.config.layout.codebook_size, (1, tiny.config.num_image_tokens))
    q = _question_ids(tiny, QUESTIONS[1])
    assert lean.understand_ids(codes, q, max_new_tokens=8) == rt.understand_ids(codes, q, max_new_tokens=8)
    for name in ("t2i_prefix", "t2i_step", "mmu_prefill", "decode_step"):
        lean_options = lean._graphs[name]._graph.session.get_session_options()
        default_options = rt._graphs[name]._graph.session.get_session_options()
        assert lean_options.get_session_config_entry("session.disable_prepacking") == "1"
        with pytest.raises(RuntimeError, match="does not have configuration"):  # the default: prepacked
            default_options.get_session_config_entry("session.disable_prepacking")


def test_low_memory_must_be_a_flag(tiny):
    from showo_sdk import Runtime
    from showo_sdk.errors import InputError

    with pytest.raises(InputError, match="low_memory must be True or False"):
        Runtime(tiny.bundle, backend="ort-cpu", low_memory="yes")
