"""Bad input gives a clear error (InputError / BundleError / BackendError naming the value), never a crash.

After every refusal the same Runtime keeps working (the last test generates again).
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

from showo_sdk import BackendError, BundleError, InputError, Runtime

PROMPT = "a red circle"


# ---- prompts and T2I options -----------------------------------------------------------------
@pytest.mark.parametrize("prompt,match", [
    ("", "empty"), ("   ", "empty"), (None, "str"), (3, "str"), (b"a red circle", "str"), ([], "empty"),
    (["ok", 3], r"prompt\[1\] must be a str"), (["ok", ""], r"prompt\[1\] is empty"),
])
def test_bad_prompt(rt, prompt, match):
    with pytest.raises(InputError, match=match):
        rt.generate(prompt, steps=1)


def test_long_prompt_is_truncated_with_a_warning(rt, tiny):
    prompt = " ".join(["a red circle left of a blue square"] * 6)
    assert len(tiny.tokenizer.encode(prompt)) > tiny.config.max_text_len - 2
    with pytest.warns(UserWarning, match="the text block holds 14"):
        got = rt.generate(prompt, steps=4, greedy=True, output="codes")
    cond = rt.prompting.t2i_ids([tiny.tokenizer.encode(prompt)])  # truncated as SHOWO_SPEC.md §3 says
    assert cond[0, tiny.config.text_block_len - 1] == tiny.config.layout.eos_id
    want = rt.generate_codes(cond, rt.prompting.t2i_null_ids(1), steps=4, greedy=True)
    assert np.array_equal(got.reshape(1, -1), want)


def test_short_prompt_does_not_warn(rt):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rt.generate(PROMPT, steps=1, seed=0)


@pytest.mark.parametrize("kwargs,match", [
    ({"steps": 0}, r"steps must be an int in \[1, 1000\]"), ({"steps": -3}, "steps"), ({"steps": 2.0}, "steps"),
    ({"steps": True}, "steps"), ({"steps": 10**9}, r"\[1, 1000\]"),
    ({"guidance_scale": -0.5}, "guidance_scale"), ({"guidance_scale": float("nan")}, "guidance_scale"),
    ({"guidance_scale": float("inf")}, "guidance_scale"), ({"guidance_scale": "2"}, "guidance_scale"),
    ({"seed": 1.5}, "seed"), ({"seed": True}, "seed"), ({"seed": -1}, "seed"), ({"seed": 2**64}, "seed"),
    ({"seed": "0"}, "seed"), ({"temperature": -1.0}, "temperature"), ({"schedule": "bogus"}, "schedule"),
    ({"schedule": 3}, "schedule"), ({"greedy": "yes"}, "greedy"), ({"output": "jpeg"}, "output"),
    ({"progress": "yes"}, "progress"),
])
def test_bad_t2i_options(rt, kwargs, match):
    with pytest.raises(InputError, match=match):
        rt.generate(PROMPT, **{"steps": 2, **kwargs})


def test_numpy_scalars_are_accepted(rt):
    a = rt.generate(PROMPT, steps=np.int64(2), guidance_scale=np.float32(1.5), seed=np.uint64(4), output="codes")
    assert np.array_equal(a, rt.generate(PROMPT, steps=2, guidance_scale=1.5, seed=4, output="codes"))


# ---- images and masks ----------------------------------------------------------------------
@pytest.mark.parametrize("image,match", [
    (np.zeros((64, 64, 3), dtype=np.int16), "uint8"), (np.full((8, 8, 3), 2.0), "float in"),
    (np.zeros((8, 8, 3), dtype=bool), "uint8"), (np.zeros((64, 64, 5), dtype=np.uint8), "shape"),
    (np.zeros((0, 0, 3), dtype=np.uint8), "empty"), (np.zeros((2, 8, 8, 3), dtype=np.uint8), "shape"),
    ("/nonexistent/picture.png", "does not exist"), ("", "empty"), ([[1, 2]], "PIL"), (42, "PIL"),
])
def test_bad_image(rt, image, match):
    with pytest.raises(InputError, match=match):
        rt.understand(image, "What is it?", max_new_tokens=2)
    with pytest.raises(InputError, match=match):
        rt.extrapolate(image, PROMPT, steps=1)


def test_unreadable_image_file(rt, tmp_path):
    path = tmp_path / "not_an_image.png"
    path.write_text("this is text")
    with pytest.raises(InputError, match="cannot read image"):
        rt.encode_image(path)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16", "F"])
def test_other_image_modes_are_converted(rt, picture, mode):
    image = Image.fromarray(picture).convert(mode)
    assert rt.encode_image(image).shape == (1, 16)
    assert np.array_equal(rt.encode_image(image), rt.encode_image(image.convert("RGB")))


def test_any_image_size_is_resized_and_cropped(rt, picture):
    wide = np.asarray(Image.fromarray(picture).resize((200, 120)))
    assert rt.encode_image(wide).shape == (1, 16)
    assert isinstance(rt.understand(wide, "What is it?", max_new_tokens=2), str)
    float_image = picture.astype(np.float64) / 255.0
    assert np.array_equal(rt.encode_image(float_image), rt.encode_image(picture))


def test_mask_of_other_size_and_channels_is_resized_and_converted(rt, picture):
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:, 32:] = 255
    want = rt.inpaint(picture, mask, PROMPT, steps=3, greedy=True, output="codes")
    small_rgb = np.repeat(np.asarray(Image.fromarray(mask).resize((16, 16), Image.Resampling.NEAREST))[..., None],
                          3, axis=2)
    assert np.array_equal(rt.inpaint(picture, small_rgb, PROMPT, steps=3, greedy=True, output="codes"), want)
    assert np.array_equal(rt.inpaint(picture, Image.fromarray(mask).convert("RGBA"), PROMPT, steps=3,
                                     greedy=True, output="codes"), want)


def test_empty_mask_is_refused(rt, picture):
    with pytest.raises(InputError, match="mask selects no image token"):
        rt.inpaint(picture, np.zeros((64, 64), dtype=np.uint8), PROMPT, steps=2)
    with pytest.raises(InputError, match="mask"):
        rt.inpaint(picture, np.zeros((64, 64, 7), dtype=np.uint8), PROMPT, steps=2)


@pytest.mark.parametrize("kwargs,match", [
    ({"direction": "sideways"}, "direction must be one of"), ({"direction": None}, "direction"),
    ({"offset": 2}, r"offset must be an int in \[-1, 1\]"), ({"offset": -2}, "offset"), ({"offset": 0.5}, "offset"),
])
def test_bad_extrapolation(rt, picture, kwargs, match):
    with pytest.raises(InputError, match=match):
        rt.extrapolate(picture, PROMPT, steps=1, **kwargs)


# ---- understanding -------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,match", [
    ({"max_new_tokens": 0}, "max_new_tokens"), ({"max_new_tokens": -5}, "max_new_tokens"),
    ({"max_new_tokens": 10**6}, r"max_new_tokens must be an int in \[1, "), ({"max_new_tokens": 2.5}, "max_new_tokens"),
    ({"question": ""}, "question is empty"), ({"question": 7}, "question must be a str"),
    ({"top_k": 3}, "greedy=False"), ({"temperature": 0.5}, "greedy=False"),
    ({"greedy": False, "top_k": 0}, "top_k"), ({"greedy": False, "temperature": 0.0}, "temperature must be > 0"),
    ({"greedy": False, "temperature": -1.0}, "temperature"), ({"seed": 1.5}, "seed"), ({"stream": "no"}, "stream"),
    ({"question": ["a?", "b?", "c?"], "image": "pair"}, "2 images and 3 questions"),
    ({"question": [], "image": None}, "must not be empty"), ({"question": ["a?"], "stream": True}, "stream=True"),
])
def test_bad_understand(rt, picture, kwargs, match):
    image = kwargs.pop("image", picture)
    image = [picture, picture] if isinstance(image, str) else (picture if image is None else image)
    question = kwargs.pop("question", "What color is the circle?")
    with pytest.raises(InputError, match=match):
        rt.understand(image, question, **{"max_new_tokens": 3, **kwargs})


def test_bad_token_level_understand(rt, tiny):
    codes = np.zeros((1, 16), dtype=np.int64)
    q = np.array(tiny.tokenizer.encode("USER: \nWhat? ASSISTANT:"))
    with pytest.raises(InputError, match="image_codes"):
        rt.understand_ids(codes + 99, q)
    with pytest.raises(InputError, match=r"image_codes must be an integer array \(B, 16\)"):
        rt.understand_ids(np.zeros((1, 9), dtype=np.int64), q)
    with pytest.raises(InputError, match="question_ids must be text ids"):
        rt.understand_ids(codes, q + 10_000)
    with pytest.raises(InputError, match="question_ids"):
        rt.understand_ids(codes, np.stack([q, q, q]))
    with pytest.raises(InputError, match="eot_id"):
        rt.understand_ids(codes, q, eot_id=-1)


def test_bad_token_level_generate(rt, tiny):
    cond = rt.prompting.t2i_ids([tiny.tokenizer.encode(PROMPT)])
    null = rt.prompting.t2i_null_ids(1)
    with pytest.raises(InputError, match="needs uncond_ids"):
        rt.generate_codes(cond, None, steps=1, guidance_scale=1.0)
    with pytest.raises(InputError, match=r"cond_ids must be an integer array \(B, 35\)"):
        rt.generate_codes(cond[:, :-1], None, steps=1, guidance_scale=0)
    broken = cond.copy()
    broken[0, tiny.config.text_block_len] = 0
    with pytest.raises(InputError, match="soi"):
        rt.generate_codes(broken, None, steps=1, guidance_scale=0)
    with pytest.raises(InputError, match="image ids"):
        rt.generate_codes(np.where(cond == tiny.config.layout.mask_id, 1, cond), None, steps=1, guidance_scale=0)
    with pytest.raises(InputError, match="shape of cond_ids"):
        rt.generate_codes(cond, np.concatenate([null, null]), steps=1)
    with pytest.raises(InputError, match="codes must lie in"):
        rt.decode_codes(np.full((1, 16), 99))
    with pytest.raises(InputError, match="codes must be integers"):
        rt.decode_codes(np.zeros((1, 15), dtype=np.int64))


# ---- bundles and backends ------------------------------------------------------------------
def _copy(tiny, tmp_path):
    return shutil.copytree(tiny.bundle, tmp_path / "engine.plan")


def test_missing_bundle(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        Runtime(tmp_path / "nope.plan")


def test_bundle_from_another_format_version(tiny, tmp_path):
    bundle = _copy(tiny, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["format_version"] = 99
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format_version 99, newer than this SDK reads"):
        Runtime(bundle)


def test_tampered_bundle(tiny, tmp_path):
    bundle = _copy(tiny, tmp_path)
    data = bytearray((bundle / "t2i_step.onnx").read_bytes())
    data[-1] ^= 0xFF
    (bundle / "t2i_step.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="t2i_step.onnx: sha256 does not match"):
        Runtime(bundle)


def test_bundle_with_wrong_shapes(tiny, tmp_path):
    bundle = _copy(tiny, tmp_path)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["graphs"]["t2i_step"]["outputs"][0]["shape"][2] = 7
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="logits"):
        Runtime(bundle)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"backend": "gpu"}, InputError, "backend must be one of"), ({"num_threads": 0}, InputError, "num_threads"),
    ({"num_threads": 2.0}, InputError, "num_threads"), ({"providers": "CPUExecutionProvider"}, InputError, "providers"),
    ({"providers": [3]}, InputError, "providers"),
    ({"providers": ["NoSuchExecutionProvider"]}, BackendError, "NoSuchExecutionProvider"),
    ({"backend": "tensorrt", "providers": ["CPUExecutionProvider"]}, InputError, "providers apply"),
    ({"backend": "tensorrt"}, BackendError, "no TensorRT engines"),
])
def test_bad_runtime_arguments(tiny, kwargs, error, match):
    with pytest.raises(error, match=match):
        Runtime(tiny.bundle, **kwargs)


def test_unavailable_cuda_backend_names_what_is_missing(tiny):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    with pytest.raises(BackendError, match="onnxruntime-gpu"):
        Runtime(tiny.bundle, backend="ort-cuda")


def test_auto_says_why_it_fell_back_to_cpu(tiny):
    rt = Runtime(tiny.bundle, providers=None, verify_checksums=False)
    assert rt.backend in ("ort-cpu", "ort-cuda", "tensorrt")
    if rt.backend == "ort-cpu":
        assert "TensorRT" in rt.backend_reason
    assert Runtime(tiny.bundle, providers=["CPUExecutionProvider"]).backend == "ort-cpu"


def test_runtime_still_works_after_errors(rt):
    for bad in ({"steps": 0}, {"seed": -1}, {"output": "?"}):
        with pytest.raises(InputError):
            rt.generate(PROMPT, **bad)
    assert rt.generate(PROMPT, steps=2, seed=0).size == (64, 64)
