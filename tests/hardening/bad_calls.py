"""The catalog of bad calls: every way a caller can misuse ``Runtime``, ``showo``, ``showo-export`` and ``_maskgit``.

Each case is a function ``f(ctx)`` run by the fork runner (harness.py) in its own forked child with
a memory cap, so a segfault, an abort, a hang or a memory blow-up is observed instead of killing
the test run. The contract judged by :func:`judge`:

- Python API (``runtime``, ``maskgit``): the call raises one of ``expect`` (class names, matched
  against the exception's MRO) with a non-empty one-line message;
- command lines (``cli``, ``export-cli``): the entry point returns (or exits with) ``code``, its
  stderr holds exactly one ``error:`` line and no traceback;
- always: no signal, no hang, and nothing refused by the memory cap (MemoryError) unless expected.

``bug`` marks a case that fails today because of a defect outside the hardening suite; its test
is ``xfail(strict=True)``, so the fix turns it into a reminder to drop the mark.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

API = ("runtime", "maskgit")
CLIS = ("cli", "export-cli")


@dataclass(frozen=True)
class Case:
    id: str
    surface: str  # "runtime" | "cli" | "export-cli" | "maskgit"
    call: str  # the bad call, as a user would write it
    func: Callable[[Any], Any]
    expect: tuple[str, ...]  # accepted exception classes (API surfaces)
    code: int  # expected exit code (command lines)
    timeout: float
    bug: str | None


CASES: list[Case] = []

BUG_BOMB = ("showo_sdk/imageio.py load_image (and runtime/validation.py image): PIL's DecompressionBombError is "
            "neither OSError nor ValueError, so it escapes as a non-ShowoError and the `showo` CLI prints a traceback")
BUG_REPR = ("showo_sdk/runtime/validation.py int_in/real_in: the message embeds repr(value), which spans lines "
            "for a 2-D array")
BUG_GRID = ("showo_sdk/runtime/runtime.py Runtime.decode_codes: the grid is not checked against the bundle's declared "
            "vq_decoder limits (num_tokens max, grid max), so ONNX Runtime is asked for GBs..TBs first")
BUG_BATCH = ("showo_sdk/runtime/validation.py prompts (Runtime.generate): no upper bound on the number of prompts; "
             "100k prompts run for hours and decode every image at once (float32 pixels for all of them)")
BUG_ASPECT = ("showo_sdk/imageio.py resize_center_crop: resizes the whole image before cropping, so a 1 x 10^6 "
              "image is first resized to 64 x 6.4e7 (12 GB)")
BUG_SCRATCH = ("cpp_ext/maskgit_loop.cpp generate: per-thread scratch (threads x K floats + doubles) is allocated "
               "before step 0's logits are validated: num_codes=2**24 with 64 threads asks for 12 GB up front")
BUG_BROADCAST = ("showo_sdk/sampling/validate.py plan_generation: no bound on B*N before canvas.min() and the copy; "
                 "a zero-stride (broadcast) canvas of 1e12 cells scans for minutes, then asks for 8 TB")
BUG_PYBIND = ("cpp_ext/module.cpp: wrong argument types (e.g. seed=-1) raise pybind11's multi-line 'incompatible "
              "function arguments' TypeError listing the signature")


def case(surface: str, call: str, expect: tuple[str, ...] = ("ShowoError",), code: int = 2, timeout: float = 60.0,
         bug: str | None = None) -> Callable:
    def register(func: Callable) -> Callable:
        assert func.__name__ not in {c.id for c in CASES}, func.__name__
        CASES.append(Case(func.__name__, surface, call, func, expect, code, timeout, bug))
        return func

    return register


def judge(c: Case, result: dict[str, Any]) -> tuple[bool, str]:
    """(passed, why) for one case's result from the fork runner."""
    outcome = result.get("outcome")
    if outcome in ("signal", "died"):
        how = result.get("signal_name") or result.get("exit_status")
        return False, f"CRASH: {how}; stderr: {result['stderr'][-800:]}"
    if outcome == "timeout":
        return False, f"not refused: still running after {result['timeout_s']} s"
    if c.surface in API:
        if outcome != "raised":
            return False, f"accepted: returned {result.get('value')!r} instead of raising {c.expect}"
        if not set(c.expect) & set(result["mro"]):
            return False, f"raised {result['type']} (expected one of {c.expect}): {result['message'][:300]}"
        message = result["message"].strip()
        if not message or "\n" in message:
            return False, f"{result['type']} message is not one line: {message[:400]!r}"
        return True, f"{result['type']}: {message[:160]}"
    if outcome == "raised":
        return False, f"{result['type']} escaped the entry point (a traceback for the user): {result['message'][:300]}"
    if result.get("value") != c.code:
        return False, f"exit code {result.get('value')!r}, expected {c.code}; stderr: {result['stderr'][-400:]!r}"
    stderr = result["stderr"]
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    if "Traceback" in stderr or len(errors) != 1:
        return False, f"stderr is not one error line: {stderr[-600:]!r}"
    if not errors[0].startswith(("showo: error:", "showo-export: error:")) and "usage:" not in stderr:
        return False, f"unexpected stderr: {stderr[-600:]!r}"
    return True, errors[0][:200]


# ---- files the cases feed in ----------------------------------------------------------------------
def bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A 1 KB PNG whose header declares width x height pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
                     + chunk(b"IEND", b""))
    return path


def garbage_png(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def picture() -> np.ndarray:
    img = np.zeros((64, 64, 3), dtype=np.uint8)
    img[16:48, 16:48] = (255, 0, 0)
    return img


def png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(array).save(path)
    return path


class Evil:
    """Unpickling this runs a shell command that creates a marker file: what weights_only must refuse."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def payload_checkpoint(ctx, name: str = "payload") -> tuple[Path, Path]:
    """A copy of the checkpoint whose weights are a pickled ``pytorch_model.bin`` carrying a payload."""
    import torch

    ckpt = shutil.copytree(ctx.ckpt, ctx.scratch / name)
    marker = ctx.scratch / f"{name}.PWNED"
    state = {"evil": Evil(marker)}
    (ckpt / "model.safetensors").unlink()
    torch.save(state, ckpt / "pytorch_model.bin")
    return ckpt, marker


def run_cli(argv: list[str]) -> int:
    from showo_sdk.cli import main

    return main(argv)


def run_export_cli(argv: list[str]) -> int:
    from showo_sdk.export.cli import main

    return main(argv)


def real_process(exe: str, argv: list[str], timeout: float = 120) -> int:
    """The installed console script in a fresh process; its stderr is copied to ours for judging."""
    path = Path(sys.executable).parent / exe
    proc = subprocess.run([str(path), *argv], capture_output=True, text=True, timeout=timeout)
    sys.stderr.write(proc.stderr)
    sys.stderr.flush()
    return proc.returncode


def _t2i_row(rt) -> np.ndarray:
    return rt.prompting.t2i_ids([rt.tokenizer.encode("a red circle")])  # (1, L)


# ---- Runtime ----------------------------------------------------------------------------------------
@case("runtime", "Runtime(12345)", expect=("ShowoError", "TypeError"))
def runtime_path_is_an_int(ctx):
    from showo_sdk import Runtime

    Runtime(12345)


@case("runtime", "Runtime('<a regular file>')", expect=("BundleError",))
def runtime_path_is_a_file(ctx):
    from showo_sdk import Runtime

    Runtime(Path(ctx.bundle) / "tokenizer.json")


@case("runtime", "Runtime('<an empty directory>')", expect=("BundleError",))
def runtime_path_is_an_empty_dir(ctx):
    from showo_sdk import Runtime

    Runtime(ctx.scratch)


@case("runtime", "Runtime(bundle, backend='gpu-please')", expect=("InputError",))
def runtime_unknown_backend(ctx):
    ctx.runtime(backend="gpu-please")


@case("runtime", "Runtime(bundle, num_threads=0)", expect=("InputError",))
def runtime_zero_threads(ctx):
    ctx.runtime(num_threads=0)


@case("runtime", "Runtime(bundle, num_threads=2**40)", expect=("InputError",))
def runtime_huge_threads(ctx):
    ctx.runtime(num_threads=2**40)


@case("runtime", "Runtime(bundle, providers=[('CPUExecutionProvider', 'x')])", expect=("InputError",))
def runtime_bad_providers(ctx):
    ctx.runtime(backend="ort-cpu", providers=[("CPUExecutionProvider", "x")])


@case("runtime", "generate(steps=np.iinfo(np.int64).max)", expect=("InputError",))
def generate_steps_int64_max(ctx):
    ctx.runtime().generate("a red circle", steps=np.iinfo(np.int64).max)


@case("runtime", "generate(steps=float('nan'))", expect=("InputError",))
def generate_steps_nan(ctx):
    ctx.runtime().generate("a red circle", steps=float("nan"))


@case("runtime", "generate(guidance_scale=np.float32('inf'))", expect=("InputError",))
def generate_guidance_inf(ctx):
    ctx.runtime().generate("a red circle", steps=2, guidance_scale=np.float32("inf"))


@case("runtime", "generate(temperature=float('nan'))", expect=("InputError",))
def generate_temperature_nan(ctx):
    ctx.runtime().generate("a red circle", steps=2, temperature=float("nan"))


@case("runtime", "generate(seed=np.zeros((3, 3)))", expect=("InputError",))
def generate_seed_is_a_matrix(ctx):
    ctx.runtime().generate("a red circle", steps=2, seed=np.zeros((3, 3)))


@case("runtime", "generate([b'bytes', 'ok'])", expect=("InputError",))
def generate_bytes_prompt(ctx):
    ctx.runtime().generate([b"bytes", "ok"], steps=2)


@case("runtime", "generate(output=None)", expect=("InputError",))
def generate_output_none(ctx):
    ctx.runtime().generate("a red circle", steps=2, output=None)


@case("runtime", "generate(['a red circle'] * 100_000, output='numpy')", expect=("InputError",), timeout=5.0)
def generate_huge_batch(ctx):
    ctx.runtime().generate(["a red circle"] * 100_000, steps=1, output="numpy")


@case("runtime", "generate_codes(np.full((1, L), np.nan))", expect=("InputError",))
def generate_codes_nan_ids(ctx):
    rt = ctx.runtime()
    rt.generate_codes(np.full((1, rt.config.t2i_seq_len), np.nan), None, guidance_scale=0)


@case("runtime", "generate_codes(ids with an image id above [MASK])", expect=("InputError",))
def generate_codes_id_above_mask(ctx):
    rt = ctx.runtime()
    ids = _t2i_row(rt)
    ids[0, rt.config.text_block_len + 1] = rt.config.layout.mask_id + 1
    rt.generate_codes(ids, None, guidance_scale=0)


@case("runtime", "generate_codes(np.array([[object()] * L]))", expect=("InputError",))
def generate_codes_object_dtype(ctx):
    rt = ctx.runtime()
    rt.generate_codes(np.array([[object()] * rt.config.t2i_seq_len]), None, guidance_scale=0)


@case("runtime", "generate_codes(ids[None])  # (1, 1, L)", expect=("InputError",))
def generate_codes_3d(ctx):
    rt = ctx.runtime()
    rt.generate_codes(_t2i_row(rt)[None], None, guidance_scale=0)


@case("runtime", "generate_codes(cond, uncond of another shape)", expect=("InputError",))
def generate_codes_uncond_shape(ctx):
    rt = ctx.runtime()
    cond = _t2i_row(rt)
    rt.generate_codes(cond, np.repeat(cond, 2, axis=0), steps=2)


@case("runtime", "decode_codes(np.zeros((1, 2**20)), grid=(1024, 1024))", expect=("InputError",))
def decode_codes_huge_grid(ctx):
    ctx.runtime().decode_codes(np.zeros((1, 1024 * 1024), dtype=np.int64), grid=(1024, 1024))


@case("runtime", "decode_codes(np.broadcast_to(0, (1, 2**32)), grid=(65536, 65536))", expect=("InputError",),
      timeout=30.0)
def decode_codes_broadcast_grid(ctx):
    ctx.runtime().decode_codes(np.broadcast_to(np.int64(0), (1, 65536 * 65536)), grid=(65536, 65536))


@case("runtime", "decode_codes(codes, grid=(-4, -4))", expect=("InputError",))
def decode_codes_negative_grid(ctx):
    ctx.runtime().decode_codes(np.zeros((1, 16), dtype=np.int64), grid=(-4, -4))


@case("runtime", "decode_codes(np.full((1, 16), 0.5))", expect=("InputError",))
def decode_codes_float(ctx):
    ctx.runtime().decode_codes(np.full((1, 16), 0.5))


@case("runtime", "understand(np.full((64, 64, 3), np.nan, np.float32), q)", expect=("InputError",))
def understand_nan_image(ctx):
    ctx.runtime().understand(np.full((64, 64, 3), np.nan, dtype=np.float32), "What is it?", max_new_tokens=2)


@case("runtime", "understand(np.full((64, 64, 3), np.inf, np.float32), q)", expect=("InputError",))
def understand_inf_image(ctx):
    ctx.runtime().understand(np.full((64, 64, 3), np.inf, dtype=np.float32), "What is it?", max_new_tokens=2)


@case("runtime", "understand('bomb.png' declaring 100000 x 100000 px, q)", expect=("InputError",))
def understand_decompression_bomb(ctx):
    ctx.runtime().understand(bomb_png(ctx.scratch / "bomb.png"), "What is it?", max_new_tokens=2)


@case("runtime", "understand('random bytes.png', q)", expect=("InputError",))
def understand_garbage_file(ctx):
    ctx.runtime().understand(garbage_png(ctx.scratch / "noise.png"), "What is it?", max_new_tokens=2)


@case("runtime", "understand(np.zeros((1, 10**6, 3), np.uint8), q)", expect=("InputError",))
def understand_one_pixel_high_image(ctx):
    ctx.runtime().understand(np.zeros((1, 10**6, 3), dtype=np.uint8), "What is it?", max_new_tokens=2)


@case("runtime", "understand(image, 'a ' * 100_000)", expect=("InputError",))
def understand_huge_question(ctx):
    ctx.runtime().understand(picture(), "a " * 100_000, max_new_tokens=2)


@case("runtime", "understand(image, q, max_new_tokens=2**62)", expect=("InputError",))
def understand_huge_max_new_tokens(ctx):
    ctx.runtime().understand(picture(), "What is it?", max_new_tokens=2**62)


@case("runtime", "understand(image, q, greedy=False, top_k=0)", expect=("InputError",))
def understand_top_k_zero(ctx):
    ctx.runtime().understand(picture(), "What is it?", greedy=False, top_k=0)


@case("runtime", "understand([img, img], ['a', 'b', 'c'])", expect=("InputError",))
def understand_list_lengths(ctx):
    ctx.runtime().understand([picture(), picture()], ["a?", "b?", "c?"])


@case("runtime", "understand([img], q, stream=True)", expect=("InputError",))
def understand_stream_a_list(ctx):
    ctx.runtime().understand([picture()], "What is it?", stream=True)


@case("runtime", "understand_ids(codes, question_ids=[-1])", expect=("InputError",))
def understand_ids_negative(ctx):
    ctx.runtime().understand_ids(np.zeros((1, 16), dtype=np.int64), np.array([-1]))


@case("runtime", "understand_ids(codes, np.zeros(10**6, np.int64))", expect=("InputError",))
def understand_ids_huge_question(ctx):
    ctx.runtime().understand_ids(np.zeros((1, 16), dtype=np.int64), np.zeros(10**6, dtype=np.int64))


@case("runtime", "understand_ids(codes, q, eot_id=10**9)", expect=("InputError",))
def understand_ids_eot_out_of_range(ctx):
    ctx.runtime().understand_ids(np.zeros((1, 16), dtype=np.int64), np.array([1, 2]), eot_id=10**9)


@case("runtime", "inpaint(image, mask=42, prompt)", expect=("InputError",))
def inpaint_mask_is_an_int(ctx):
    ctx.runtime().inpaint(picture(), 42, "a red circle", steps=2)


@case("runtime", "inpaint(image, all-black mask, prompt)", expect=("InputError",))
def inpaint_empty_mask(ctx):
    ctx.runtime().inpaint(picture(), np.zeros((64, 64), dtype=np.uint8), "a red circle", steps=2)


@case("runtime", "extrapolate(image, prompt, direction='diagonal')", expect=("InputError",))
def extrapolate_bad_direction(ctx):
    ctx.runtime().extrapolate(picture(), "a red circle", direction="diagonal", steps=2)


@case("runtime", "extrapolate(image, prompt, offset=10**18)", expect=("InputError",))
def extrapolate_huge_offset(ctx):
    ctx.runtime().extrapolate(picture(), "a red circle", offset=10**18, steps=2)


# ---- showo (CLI) ------------------------------------------------------------------------------------
def _gen(ctx, *extra: str) -> int:
    return run_cli(["generate", "a red circle", "--engine", str(ctx.bundle), "--quiet", "-o",
                    str(ctx.scratch / "out.png"), *extra])


@case("cli", "showo generate p --steps 0")
def cli_steps_zero(ctx):
    return _gen(ctx, "--steps", "0")


@case("cli", "showo generate p --steps 999...9 (30 digits)")
def cli_steps_huge(ctx):
    return _gen(ctx, "--steps", "9" * 30)


@case("cli", "showo generate p --guidance nan")
def cli_guidance_nan(ctx):
    return _gen(ctx, "--guidance", "nan")


@case("cli", "showo generate p --temperature inf")
def cli_temperature_inf(ctx):
    return _gen(ctx, "--temperature", "inf")


@case("cli", "showo generate p --seed -1")
def cli_seed_negative(ctx):
    return _gen(ctx, "--seed", "-1")


@case("cli", "showo generate p --threads 0")
def cli_threads_zero(ctx):
    return _gen(ctx, "--threads", "0")


@case("cli", "showo generate p --schedule bogus")
def cli_schedule_bogus(ctx):
    return _gen(ctx, "--schedule", "bogus")


@case("cli", "showo generate ''")
def cli_empty_prompt(ctx):
    return run_cli(["generate", "", "--engine", str(ctx.bundle), "--quiet", "-o", str(ctx.scratch / "out.png")])


@case("cli", "showo generate p --steps abc  (argparse)")
def cli_steps_not_a_number(ctx):
    return _gen(ctx, "--steps", "abc")


@case("cli", "showo frobnicate  (unknown command)")
def cli_unknown_command(ctx):
    return run_cli(["frobnicate"])


@case("cli", "showo generate p --engine /nonexistent")
def cli_engine_missing(ctx):
    return run_cli(["generate", "a red circle", "--engine", "/nonexistent/engine.plan", "--quiet"])


@case("cli", "showo generate p --engine <bundle with one flipped byte>")
def cli_engine_corrupt(ctx):
    bundle = shutil.copytree(ctx.bundle, ctx.scratch / "engine.plan")
    path = bundle / "t2i_step.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return run_cli(["generate", "a red circle", "--engine", str(bundle), "--quiet", "-o", str(ctx.scratch / "o.png")])


@case("cli", "showo generate p -o /proc/nope/out.png  (unwritable)")
def cli_output_unwritable(ctx):
    return run_cli(["generate", "a red circle", "--engine", str(ctx.bundle), "--quiet", "--steps", "1",
                    "-o", "/proc/nope/out.png"])


@case("cli", "showo ask /nonexistent.png q")
def cli_ask_missing_image(ctx):
    return run_cli(["ask", "/nonexistent/picture.png", "What is it?", "--engine", str(ctx.bundle), "--quiet"])


@case("cli", "showo ask noise.png q  (not an image)")
def cli_ask_garbage_image(ctx):
    return run_cli(["ask", str(garbage_png(ctx.scratch / "noise.png")), "What is it?", "--engine", str(ctx.bundle),
                    "--quiet"])


@case("cli", "showo ask bomb.png q  (100000 x 100000 px header)")
def cli_ask_decompression_bomb(ctx):
    return run_cli(["ask", str(bomb_png(ctx.scratch / "bomb.png")), "What is it?", "--engine", str(ctx.bundle),
                    "--quiet"])


@case("cli", "showo ask img q --max-new-tokens 0")
def cli_ask_zero_tokens(ctx):
    return run_cli(["ask", str(png(ctx.scratch / "p.png", picture())), "What is it?", "--engine", str(ctx.bundle),
                    "--quiet", "--max-new-tokens", "0"])


@case("cli", "showo ask img q --sample --top-k 0")
def cli_ask_top_k_zero(ctx):
    return run_cli(["ask", str(png(ctx.scratch / "p.png", picture())), "What is it?", "--engine", str(ctx.bundle),
                    "--quiet", "--sample", "--top-k", "0"])


@case("cli", "showo inpaint img black-mask p")
def cli_inpaint_empty_mask(ctx):
    image = png(ctx.scratch / "p.png", picture())
    mask = png(ctx.scratch / "m.png", np.zeros((64, 64), dtype=np.uint8))
    return run_cli(["inpaint", str(image), str(mask), "a red circle", "--engine", str(ctx.bundle), "--quiet",
                    "-o", str(ctx.scratch / "o.png")])


@case("cli", "showo extrapolate img p --offset 99")
def cli_extrapolate_offset(ctx):
    return run_cli(["extrapolate", str(png(ctx.scratch / "p.png", picture())), "a red circle", "--offset", "99",
                    "--engine", str(ctx.bundle), "--quiet", "-o", str(ctx.scratch / "o.png")])


@case("cli", "$ showo generate p --engine /nonexistent  (the installed script, fresh process)")
def cli_real_process_missing_engine(ctx):
    return real_process("showo", ["generate", "a red circle", "--engine", "/nonexistent/engine.plan", "--quiet"])


@case("cli", "$ showo ask bomb.png q  (the installed script, fresh process)")
def cli_real_process_decompression_bomb(ctx):
    return real_process("showo", ["ask", str(bomb_png(ctx.scratch / "bomb.png")), "What is it?", "--engine",
                                  str(ctx.bundle), "--quiet"])


# ---- showo-export -----------------------------------------------------------------------------------
def _export(ctx, ckpt, *extra: str) -> int:
    return run_export_cli([str(ckpt), "--out", str(ctx.scratch / "engine.plan"), "--quiet", *extra])


@case("export-cli", "showo-export /nonexistent --out o")
def export_missing_checkpoint(ctx):
    return _export(ctx, "/nonexistent/ckpt")


@case("export-cli", "showo-export ckpt --out <an existing file>")
def export_out_is_a_file(ctx):
    target = ctx.scratch / "file"
    target.write_text("x")
    return run_export_cli([str(ctx.ckpt), "--out", str(target), "--quiet"])


@case("export-cli", "showo-export ckpt --out <existing dir, no --force>")
def export_out_exists(ctx):
    return run_export_cli([str(ctx.ckpt), "--out", str(ctx.bundle), "--quiet"])


@case("export-cli", "showo-export ckpt  (config.json is not JSON)")
def export_config_garbage(ctx):
    ckpt = shutil.copytree(ctx.ckpt, ctx.scratch / "ckpt")
    (ckpt / "config.json").write_text("{not json")
    return _export(ctx, ckpt)


@case("export-cli", "showo-export ckpt  (a weight of the wrong shape)")
def export_wrong_shape(ctx):
    from safetensors.numpy import load_file, save_file

    ckpt = shutil.copytree(ctx.ckpt, ctx.scratch / "ckpt")
    state = load_file(str(ckpt / "model.safetensors"))
    key = sorted(k for k, v in state.items() if v.ndim == 2)[0]
    state[key] = np.zeros((state[key].shape[0] + 1, state[key].shape[1]), dtype=state[key].dtype)
    save_file(state, str(ckpt / "model.safetensors"))
    return _export(ctx, ckpt)


@case("export-cli", "showo-export ckpt  (a weight missing)")
def export_missing_key(ctx):
    from safetensors.numpy import load_file, save_file

    ckpt = shutil.copytree(ctx.ckpt, ctx.scratch / "ckpt")
    state = load_file(str(ckpt / "model.safetensors"))
    del state[sorted(state)[0]]
    save_file(state, str(ckpt / "model.safetensors"))
    return _export(ctx, ckpt)


@case("export-cli", "showo-export ckpt  (model.safetensors truncated)")
def export_truncated_weights(ctx):
    ckpt = shutil.copytree(ctx.ckpt, ctx.scratch / "ckpt")
    path = ckpt / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return _export(ctx, ckpt)


@case("export-cli", "showo-export ckpt  (pytorch_model.bin pickle carrying os.system)")
def export_pickle_payload(ctx):
    ckpt, marker = payload_checkpoint(ctx)
    code = _export(ctx, ckpt)
    if marker.exists():
        raise AssertionError("the pickle payload RAN: weights_only=True was bypassed")
    return code


@case("export-cli", "showo-export ckpt --precision int4  (argparse)")
def export_precision_bogus(ctx):
    return _export(ctx, ctx.ckpt, "--precision", "int4")


@case("export-cli", "showo-export ckpt --max-batch 0")
def export_max_batch_zero(ctx):
    return _export(ctx, ctx.ckpt, "--max-batch", "0")


@case("export-cli", "showo-export ckpt --tolerance nan")
def export_tolerance_nan(ctx):
    return _export(ctx, ctx.ckpt, "--tolerance", "nan")


@case("export-cli", "showo-export ckpt --tolerance -1")
def export_tolerance_negative(ctx):
    return _export(ctx, ctx.ckpt, "--tolerance", "-1")


@case("export-cli", "showo-export ckpt --vq /nonexistent")
def export_vq_missing(ctx):
    return _export(ctx, ctx.ckpt, "--vq", "/nonexistent/vq")


@case("export-cli", "showo-export ckpt --tokenizer /nonexistent")
def export_tokenizer_missing(ctx):
    return _export(ctx, ctx.ckpt, "--tokenizer", "/nonexistent/tok")


@case("export-cli", "showo-export ckpt --precision int8 --tensorrt")
def export_tensorrt_int8(ctx):
    return _export(ctx, ctx.ckpt, "--precision", "int8", "--tensorrt")


@case("export-cli", "$ showo-export <pickle-payload ckpt>  (the installed script, fresh process)")
def export_real_process_pickle_payload(ctx):
    ckpt, marker = payload_checkpoint(ctx)
    code = real_process("showo-export", [str(ckpt), "--out", str(ctx.scratch / "engine.plan"), "--quiet"])
    if marker.exists():
        raise AssertionError("the pickle payload RAN: weights_only=True was bypassed")
    return code


# ---- _maskgit (the wrapper maskgit_generate, and the raw extension) ----------------------------------
K = 4


def _mg(step_fn, canvas=None, steps=2, **kwargs):
    from showo_sdk.sampling import maskgit_generate

    canvas = np.full((1, 4), K, dtype=np.int64) if canvas is None else canvas
    return maskgit_generate(step_fn, canvas, steps, **{"num_codes": K, **kwargs})


def _logits(value=0.0, rows=1, n=4, k=K, dtype=np.float32):
    return np.full((rows, n, k), value, dtype=dtype)


def _raw(step_fn=None, canvas=None, mask_lens=None, temperatures=None, **kwargs):
    from showo_sdk import _maskgit

    step_fn = step_fn or (lambda c: _logits())
    canvas = np.full((1, 4), K, dtype=np.int64) if canvas is None else canvas
    mask_lens = np.array([2, 0], dtype=np.int64) if mask_lens is None else mask_lens
    temperatures = np.ones(len(mask_lens)) if temperatures is None else temperatures
    options = {"num_codes": K, "guidance_scale": 0.0, "seed": 0, "greedy": False, "num_threads": 1, **kwargs}
    return _maskgit.generate(step_fn, canvas, mask_lens, temperatures, **options)


@case("maskgit", "maskgit_generate(f, canvas.astype(np.int32), ...)", expect=("InputError",))
def maskgit_canvas_int32(ctx):
    _mg(lambda c: _logits(), np.full((1, 4), K, dtype=np.int32))


@case("maskgit", "maskgit_generate(f, canvas (1, 4, 1), ...)", expect=("InputError",))
def maskgit_canvas_3d(ctx):
    _mg(lambda c: _logits(), np.full((1, 4, 1), K, dtype=np.int64))


@case("maskgit", "maskgit_generate(f, canvas with K + 1, ...)", expect=("InputError",))
def maskgit_canvas_above_mask(ctx):
    _mg(lambda c: _logits(), np.full((1, 4), K + 1, dtype=np.int64))


@case("maskgit", "maskgit_generate(f -> NaN logits)", expect=("InputError",))
def maskgit_logits_nan(ctx):
    _mg(lambda c: _logits(np.nan))


@case("maskgit", "maskgit_generate(f -> +Inf logits)", expect=("InputError",))
def maskgit_logits_inf(ctx):
    _mg(lambda c: _logits(np.inf))


@case("maskgit", "maskgit_generate(f -> -Inf unconditional rows, guidance 2)", expect=("InputError",))
def maskgit_logits_neg_inf_uncond(ctx):
    def f(c):
        out = _logits(rows=2)
        out[1] = -np.inf
        return out

    _mg(f, guidance_scale=2.0)


@case("maskgit", "maskgit_generate(f -> 3e38 logits, guidance 5: overflow when mixed)", expect=("InputError",))
def maskgit_logits_overflow(ctx):
    def f(c):
        out = _logits(rows=2)
        out[0] = 3e38
        out[1] = -3e38
        return out

    _mg(f, guidance_scale=5.0)


@case("maskgit", "maskgit_generate(f -> float64 logits)", expect=("InputError",))
def maskgit_logits_float64(ctx):
    _mg(lambda c: _logits(dtype=np.float64))


@case("maskgit", "maskgit_generate(f -> logits (1, 4, K + 1))", expect=("InputError",))
def maskgit_logits_wrong_shape(ctx):
    _mg(lambda c: _logits(k=K + 1))


@case("maskgit", "maskgit_generate(f -> a list)", expect=("InputError",))
def maskgit_logits_list(ctx):
    _mg(lambda c: _logits().tolist())


@case("maskgit", "maskgit_generate(f -> None)", expect=("InputError",))
def maskgit_logits_none(ctx):
    _mg(lambda c: None)


@case("maskgit", "maskgit_generate(f raising RuntimeError)", expect=("RuntimeError",))
def maskgit_step_fn_raises(ctx):
    def f(c):
        raise RuntimeError("model step failed")

    _mg(f)


@case("maskgit", "maskgit_generate(f, progress raising KeyError)", expect=("KeyError",))
def maskgit_progress_raises(ctx):
    def progress(step, steps):
        raise KeyError("progress failed")

    _mg(lambda c: _logits(), progress=progress)


@case("maskgit", "maskgit_generate('not callable', ...)", expect=("InputError",))
def maskgit_step_fn_not_callable(ctx):
    _mg("not callable")


@case("maskgit", "maskgit_generate(..., num_codes=0)", expect=("InputError",))
def maskgit_num_codes_zero(ctx):
    _mg(lambda c: _logits(), num_codes=0)


@case("maskgit", "maskgit_generate(..., num_codes=2**40)", expect=("InputError",))
def maskgit_num_codes_huge(ctx):
    _mg(lambda c: _logits(), num_codes=2**40)


@case("maskgit", "maskgit_generate(..., steps=10**9)", expect=("InputError",))
def maskgit_steps_huge(ctx):
    _mg(lambda c: _logits(), steps=10**9)


@case("maskgit", "maskgit_generate(..., seed=-1)", expect=("InputError",))
def maskgit_seed_negative(ctx):
    _mg(lambda c: _logits(), seed=-1)


@case("maskgit", "maskgit_generate(..., num_threads=10**6)", expect=("InputError",))
def maskgit_threads_huge(ctx):
    _mg(lambda c: _logits(), num_threads=10**6)


@case("maskgit", "maskgit_generate(f, canvas (1, 64) all [MASK], num_codes=2**24, num_threads=64)  # f wrong",
      expect=("InputError",))
def maskgit_scratch_blowup(ctx):
    k = 1 << 24
    _mg(lambda c: _logits(n=64, k=3), np.full((1, 64), k, dtype=np.int64), steps=1, num_codes=k, num_threads=64)


@case("maskgit", "maskgit_generate(f, np.broadcast_to(K, (10**6, 10**6)), ...)", expect=("InputError",),
      timeout=5.0)
def maskgit_broadcast_canvas(ctx):
    _mg(lambda c: None, np.broadcast_to(np.int64(K), (10**6, 10**6)))


@case("maskgit", "_maskgit.generate(f, canvas[:, ::2] (not C-contiguous), ...)", expect=("InvalidArgument",))
def raw_canvas_not_contiguous(ctx):
    _raw(canvas=np.full((1, 8), K, dtype=np.int64)[:, ::2])


@case("maskgit", "_maskgit.generate(..., temperatures=[nan, nan])", expect=("InvalidArgument",))
def raw_temperatures_nan(ctx):
    _raw(temperatures=np.full(2, np.nan))


@case("maskgit", "_maskgit.generate(..., mask_lens=np.zeros(10**6))", expect=("InvalidArgument",))
def raw_mask_lens_huge(ctx):
    _raw(mask_lens=np.zeros(10**6, dtype=np.int64))


@case("maskgit", "_maskgit.generate(f -> float16 logits)", expect=("InvalidArgument",))
def raw_logits_float16(ctx):
    _raw(lambda c: _logits(dtype=np.float16))


@case("maskgit", "_maskgit.generate(f -> NaN at a known position)", expect=("InvalidArgument",))
def raw_logits_nan_known(ctx):
    def f(c):
        out = _logits()
        out[0, 0, 0] = np.nan
        return out

    _raw(f, canvas=np.array([[0, K, K, K]], dtype=np.int64))


@case("maskgit", "_maskgit.generate(..., seed=-1)", expect=("TypeError",))
def raw_seed_negative(ctx):
    _raw(seed=-1)


@case("maskgit", "_maskgit._uniform(0, 0, rows (3,), positions (4,), 0)", expect=("InvalidArgument",))
def raw_uniform_mismatch(ctx):
    from showo_sdk import _maskgit

    _maskgit._uniform(0, 0, np.zeros(3, dtype=np.int64), np.zeros(4, dtype=np.int64), 0)


@case("maskgit", "_maskgit._sample_rows(np.zeros((0, 4), np.float32), None)", expect=("InvalidArgument",))
def raw_sample_rows_empty(ctx):
    from showo_sdk import _maskgit

    _maskgit._sample_rows(np.zeros((0, 4), dtype=np.float32), None)


@case("maskgit", "_maskgit._sample_rows(logits (2, 4), u=[0.5])  # u too short", expect=("InvalidArgument",))
def raw_sample_rows_short_u(ctx):
    from showo_sdk import _maskgit

    _maskgit._sample_rows(np.zeros((2, 4), dtype=np.float32), np.array([0.5]))


def surfaces() -> dict[str, int]:
    out: dict[str, int] = {}
    for c in CASES:
        out[c.surface] = out.get(c.surface, 0) + 1
    return out


if __name__ == "__main__":  # list the catalog
    for c in CASES:
        print(f"{c.surface:10s} {c.id:40s} {c.call}")
    print(json.dumps(surfaces()), len(CASES))
