"""``showo-export``: clear one-line errors with the right exit codes, atomic output, the final table."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest

from showo_sdk.export.cli import main
from showo_sdk.runtime.bundle import load_bundle
from showo_sdk.tokenizer import TextTokenizer


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *needles: str) -> None:
    assert "Traceback" not in err
    assert err.startswith("showo-export: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def ckpt_copy(tiny, tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(tiny.checkpoint, dst)
    return dst


def test_missing_checkpoint_dir(capsys, tmp_path):
    code, _, err = run_cli(capsys, tmp_path / "nope", "--out", tmp_path / "b")
    assert code == 2
    assert_one_line_error(err, "nope", "does not exist")


def test_wrong_layout(capsys, ckpt_copy, tmp_path):
    (ckpt_copy / "config.json").write_text(json.dumps({"architectures": ["Something"]}))
    code, _, err = run_cli(capsys, ckpt_copy, "--out", tmp_path / "b")
    assert code == 2
    assert_one_line_error(err, "config.json", "neither an official")


def test_missing_weights(capsys, ckpt_copy, tmp_path):
    (ckpt_copy / "model.safetensors").unlink()
    code, _, err = run_cli(capsys, ckpt_copy, "--out", tmp_path / "b")
    assert code == 2
    assert_one_line_error(err, "no weights")


def test_missing_vq(capsys, ckpt_copy, tmp_path):
    shutil.rmtree(ckpt_copy / "vq")
    code, _, err = run_cli(capsys, ckpt_copy, "--out", tmp_path / "b")
    assert code == 2
    assert_one_line_error(err, "--vq")


def test_missing_tokenizer(capsys, ckpt_copy, tmp_path):
    (ckpt_copy / "tokenizer.json").unlink()
    code, _, err = run_cli(capsys, ckpt_copy, "--out", tmp_path / "b")
    assert code == 2
    assert_one_line_error(err, "tokenizer.json", "--tokenizer")


def test_vocab_size_mismatch(capsys, tiny, tmp_path):
    other = TextTokenizer.train(["another corpus with other words entirely"] * 3, vocab_size=280)
    other.save(tmp_path / "tokenizer.json")
    code, _, err = run_cli(capsys, tiny.checkpoint, "--out", tmp_path / "b", "--tokenizer", tmp_path)
    assert code == 2
    assert_one_line_error(err, "does not match", str(other.text_vocab_size))


def test_unwritable_output(capsys, tiny, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = run_cli(capsys, tiny.checkpoint, "--out", blocker / "engine.plan")
    assert code == 2
    assert_one_line_error(err, "cannot write")


def test_existing_output_needs_force(capsys, tiny, tmp_path):
    (tmp_path / "b").mkdir()
    code, _, err = run_cli(capsys, tiny.checkpoint, "--out", tmp_path / "b")
    assert code == 2
    assert_one_line_error(err, "--force")


def test_bad_precision_is_an_argparse_error(capsys, tiny, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main([str(tiny.checkpoint), "--out", str(tmp_path / "b"), "--precision", "int4"])
    assert exc.value.code == 2


def test_int8_scheme_needs_int8_and_a_known_name(capsys, tiny, tmp_path):
    for extra in (["--int8-scheme", "fast"], ["--precision", "int8", "--int8-scheme", "int4"]):
        with pytest.raises(SystemExit) as exc:
            main([str(tiny.checkpoint), "--out", str(tmp_path / "b"), *extra])
        assert exc.value.code == 2
    assert "--int8-scheme applies to --precision int8, not fp32" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    from showo_sdk.errors import InputError
    from showo_sdk.export import ExportOptions

    with pytest.raises(InputError, match="int8_scheme must be one of"):
        ExportOptions(precision="int8", int8_scheme="int4")


def test_tensorrt_with_int8_refused(capsys, tiny, tmp_path):
    code, _, err = run_cli(capsys, tiny.checkpoint, "--out", tmp_path / "b", "--precision", "int8", "--tensorrt")
    assert code == 2
    assert_one_line_error(err, "fp16")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_required_but_missing_says_so(capsys, tiny, tmp_path):
    code, _, err = run_cli(capsys, tiny.checkpoint, "--out", tmp_path / "b", "--tensorrt")
    assert code == 1
    assert_one_line_error(err, "TensorRT is not installed", "--tensorrt-auto")
    assert not (tmp_path / "b").exists()


def test_failed_validation_keeps_old_bundle_and_leaves_nothing(capsys, tiny, tmp_path):
    """--force over an existing directory, then a failure (an impossible tolerance): the old one stays."""
    out = tmp_path / "engine.plan"
    out.mkdir()
    (out / "old.txt").write_text("previous bundle")
    code, _, err = run_cli(capsys, tiny.checkpoint, "--out", out, "--force", "--tolerance", "1e-30", "--quiet")
    assert code == 1
    assert_one_line_error(err, "disagree with the PyTorch reference", "Nothing was written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine.plan"]
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]


def test_int8_export_table_and_bundle(bundle_int8):
    out, table = bundle_int8
    for name in ("vq_encoder.onnx", "vq_decoder.onnx", "t2i_prefix.int8.onnx", "t2i_step.int8.onnx",
                 "mmu_prefill.int8.onnx", "decode_step.int8.onnx"):
        assert name in table
    assert "max |diff|" in table and "greedy decoding vs PyTorch fp32" in table and "(int8, accurate scheme)" in table
    bundle = load_bundle(out)
    assert bundle.precision == "int8"
    assert {n: g.precision for n, g in bundle.graphs.items()} == {
        "vq_encoder": "fp32", "vq_decoder": "fp32", "t2i_prefix": "int8", "t2i_step": "int8",
        "mmu_prefill": "int8", "decode_step": "int8"}


def test_entry_point_is_installed():
    exe = shutil.which("showo-export")
    cmd = [exe] if exe else [sys.executable, "-m", "showo_sdk.export.cli"]
    proc = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "--precision" in proc.stdout and "--tensorrt-auto" in proc.stdout
