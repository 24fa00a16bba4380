"""The ``showo`` command end to end in subprocesses: every command writes valid PNGs or prints an answer.

The bundle is tests/conftest.py's ``tiny`` export (one per session, shared with tests/runtime and
tests/export). ``demo`` runs against a checkpoint whose bundle is already in the cache, so it exports
nothing; the cold-cache export is the slow test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from showo_sdk.cli import SHIPPED_MODEL, cached_bundle_path


def showo(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "showo_sdk.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def valid_png(path: Path, size: tuple[int, int]) -> Image.Image:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == size and im.mode == "RGB"
        return im.copy()


@pytest.fixture(scope="module")
def generated(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "gen.png"
    res = showo("generate", "a red circle left of a blue square", "-o", out, "--engine", tiny.bundle, "--steps", 4,
                "--seed", 0)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(out)
    return out


def test_generate_writes_a_png_and_shows_progress(tiny, generated, tmp_path):
    valid_png(generated, (64, 64))
    again = tmp_path / "again.png"
    res = showo("generate", "a red circle left of a blue square", "-o", again, "--engine", tiny.bundle, "--steps", 4,
                "--seed", 0, "--low-memory")  # same seed, weights read from the mapped file: the same image
    assert res.returncode == 0 and "generate" in res.stderr  # the tqdm bar, on stderr
    assert np.array_equal(np.asarray(valid_png(again, (64, 64))), np.asarray(valid_png(generated, (64, 64))))


def test_ask_prints_the_answer(tiny, generated):
    res = showo("ask", generated, "What color is the circle?", "--engine", tiny.bundle, "--max-new-tokens", 8)
    assert res.returncode == 0, res.stderr
    from showo_sdk import Runtime

    want = Runtime(tiny.bundle).understand(str(generated), "What color is the circle?", max_new_tokens=8)
    assert res.stdout == want + "\n"


def test_timings_table_on_stderr(tiny, generated, tmp_path):
    res = showo("generate", "two green triangles", "-o", tmp_path / "t.png", "--engine", tiny.bundle, "--steps", 3,
                "--seed", 0, "--quiet", "--timings")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(tmp_path / "t.png")  # stdout keeps only the result
    lines = res.stderr.splitlines()
    assert lines[0].startswith("generate: ") and lines[0].endswith(" ms")
    step = next(line for line in lines if line.startswith("t2i_step ") and "(load)" not in line)
    assert step.split()[1] == "3"  # one t2i_step run per MaskGIT step
    res = showo("ask", generated, "What color is the circle?", "--engine", tiny.bundle, "--max-new-tokens", 4,
                "--timings")
    assert res.returncode == 0 and any(line.startswith("mmu_prefill") for line in res.stderr.splitlines())


def test_inpaint_writes_a_png(tiny, generated, tmp_path):
    mask = tmp_path / "mask.png"
    m = np.zeros((32, 32), dtype=np.uint8)  # another size than the image: resized
    m[8:24, 8:24] = 255
    Image.fromarray(m).save(mask)
    out = tmp_path / "inpainted.png"
    res = showo("inpaint", generated, mask, "a blue square", "-o", out, "--engine", tiny.bundle, "--steps", 3,
                "--greedy", "--quiet")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    valid_png(out, (64, 64))


@pytest.mark.parametrize("direction,size", [("up", (64, 96)), ("right", (96, 64))])
def test_extrapolate_writes_a_non_square_png(tiny, generated, tmp_path, direction, size):
    out = tmp_path / "wide.png"
    res = showo("extrapolate", generated, "a red circle", "--direction", direction, "-o", out, "--engine",
                tiny.bundle, "--steps", 3, "--seed", 1, "--quiet")
    assert res.returncode == 0, res.stderr
    valid_png(out, size)


def test_demo_with_a_cached_bundle(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOWO_CACHE", str(tmp_path / "cache"))
    cached = cached_bundle_path(tiny.checkpoint)
    assert cached.is_relative_to(tmp_path / "cache") and cached.name == "engine.plan"
    shutil.copytree(tiny.bundle, cached)
    out = tmp_path / "demo"
    res = showo("demo", "--checkpoint", tiny.checkpoint, "--out", out, "--steps", 4, "--max-new-tokens", 6)
    assert res.returncode == 0, res.stderr
    assert "exporting" not in res.stderr
    assert str(out / "generated.png") in res.stdout and str(out / "extrapolated.png") in res.stdout
    assert "A: " in res.stdout
    valid_png(out / "generated.png", (64, 64))
    valid_png(out / "extrapolated.png", (96, 64))


def test_demo_on_the_shipped_model(tmp_path):
    """The README's main job: `showo demo` exports the shipped model into an empty cache, draws, answers."""
    if not (SHIPPED_MODEL / "config.json").is_file():
        pytest.skip(f"the shipped model is not installed ({SHIPPED_MODEL})")
    res = showo("demo", "--out", tmp_path / "demo", "--quiet", env={"SHOWO_CACHE": str(tmp_path / "cache")},
                timeout=900)
    assert res.returncode == 0, res.stderr
    lines = dict(line.split(": ", 1) for line in res.stdout.splitlines() if ": " in line)
    assert lines["engine"].startswith(str(tmp_path / "cache")) and "(ort-cpu, fp32)" in lines["engine"]
    assert lines["A"].strip(), res.stdout  # an answer was printed
    valid_png(tmp_path / "demo" / "generated.png", (32, 32))
    valid_png(tmp_path / "demo" / "extrapolated.png", (48, 32))


def test_demo_without_the_shipped_model_says_so(tmp_path):
    if (SHIPPED_MODEL / "config.json").is_file():
        pytest.skip("the shipped model is installed (test_demo_on_the_shipped_model runs the demo on it)")
    res = showo("demo", "--out", tmp_path, env={"SHOWO_CACHE": str(tmp_path / "cache")})
    assert res.returncode == 2
    assert "shipped model is missing" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("args,match", [
    (("generate", "a red circle", "--steps", "0"), "steps must be an int in [1, 1000]"),
    (("generate", "", "--steps", "2"), "prompt is empty"),
    (("ask", "/nonexistent.png", "What?"), "does not exist"),
    (("extrapolate", "{png}", "x", "--offset", "9"), "offset"),
])
def test_bad_input_exits_2_with_one_line(tiny, generated, args, match):
    res = showo(*(a.format(png=generated) for a in args), "--engine", tiny.bundle)
    assert res.returncode == 2
    assert match in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1


def test_missing_engine_exits_2(tmp_path):
    res = showo("generate", "a red circle", "--engine", tmp_path / "nope.plan")
    assert res.returncode == 2 and "does not exist" in res.stderr


@pytest.mark.slow
def test_demo_exports_on_first_use(tiny, tmp_path):
    env = {"SHOWO_CACHE": str(tmp_path / "cache")}
    res = showo("demo", "--checkpoint", tiny.checkpoint, "--out", tmp_path / "demo", "--steps", 2,
                "--max-new-tokens", 4, "--quiet", env=env, timeout=900)
    assert res.returncode == 0, res.stderr
    assert "exporting" in res.stderr
    valid_png(tmp_path / "demo" / "generated.png", (64, 64))
    res = showo("demo", "--checkpoint", tiny.checkpoint, "--out", tmp_path / "demo2", "--steps", 2, "--quiet", env=env)
    assert res.returncode == 0, res.stderr
    assert "exporting" not in res.stderr, res.stderr  # the cached bundle is reused


@pytest.mark.parametrize("args,match", [
    (("ask", "/nonexistent.png", "What?"), "does not exist"),
    (("inpaint", "/nonexistent.png", "/nonexistent-mask.png", "x"), "does not exist"),
    (("extrapolate", "/nonexistent.png", "x"), "does not exist"),
    (("generate", "a red circle", "-o", "{tmp}/a-file.txt/out.png"), "cannot write"),
    (("generate", "a red circle", "-o", "{tmp}"), "it is a directory"),
    (("demo", "--out", "{tmp}/a-file.txt"), "cannot write"),
])
def test_bad_paths_fail_before_the_default_engine_is_exported(tmp_path, args, match):
    (tmp_path / "a-file.txt").write_text("not a folder")
    cache = tmp_path / "cache"
    res = showo(*(a.format(tmp=tmp_path) for a in args), "--quiet", env={"SHOWO_CACHE": str(cache)}, timeout=60)
    assert res.returncode == 2, res.stderr
    assert match in res.stderr and "exporting" not in res.stderr and "Traceback" not in res.stderr
    assert not cache.exists() or not any(cache.iterdir())  # no bundle was started


def test_a_failed_save_leaves_the_previous_png_whole(tmp_path):
    from showo_sdk.cli import _save
    from showo_sdk.errors import InputError

    target = tmp_path / "out.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(target)
    before = target.read_bytes()
    with pytest.raises(InputError, match="cannot write"):
        _save(Image.new("F", (8, 8)), target)  # PIL cannot write a float image as PNG
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temp file left beside it
