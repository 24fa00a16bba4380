"""A damaged checkpoint is refused with a CheckpointError naming the file, and a pickle payload never runs.

Damaged copies of a real checkpoint (our format, with tokenizer and ``vq/``), and official-layout
directories, are loaded with ``load_showo`` / ``load_magvit`` and resumed with the ``Trainer``, each
load in its own forked child (a parser that crashed would show as that case's signal). Damage:
missing, unexpected and mis-shaped tensors, truncated or corrupt safetensors headers, broken
configs, and ``pytorch_model.bin`` pickles carrying an ``os.system`` payload (zip and legacy
formats): ``weights_only=True`` must refuse them before any code runs, and the payload's marker
file must not exist afterwards.
"""

from __future__ import annotations

import json
import pickle
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file, save_file  # noqa: E402




import showo_hardening_harness as harness  # noqa: E402  (registered by conftest.py)
jobs = harness.load("jobs")
Evil = harness.load("bad_calls").Evil

BUG_CONFIG = ("showo_sdk/model/showo_io.py read_config: a config.json that is not an object, lacks 'model', has a "
              "non-integer 'version' or an invalid model section raises AttributeError / KeyError / ValueError / "
              "ConfigError without naming config.json, instead of a CheckpointError")
BUG_RESUME = ("showo_sdk/train/optim.py load_optimizer and train/trainer.py Trainer.run: a damaged "
              "optimizer.safetensors, optimizer.json or trainer_state.json raises SafetensorError / JSONDecodeError / ValueError / a shape "
              "RuntimeError inside optimizer.step, none naming the file")
BUG_OPT_MISSING = ("showo_sdk/train/trainer.py Trainer.run: a checkpoint at step > 0 without optimizer.safetensors "
                   "resumes silently with a fresh AdamW state (the result then differs from an uninterrupted run)")


@dataclass(frozen=True)
class Damage:
    id: str
    loader: str  # "load_showo" | "load_magvit" | "resume"
    damage: Callable[[Path, Path], None]  # (copy of the checkpoint or run dir, payload marker path)
    names: tuple[str, ...]  # the error message must mention one of these
    bug: str | None = None


def _weights(path: Path, change: Callable[[dict], None]) -> None:
    state = load_file(str(path))
    change(state)
    save_file(state, str(path))


def _drop_first(state: dict) -> None:
    del state[sorted(state)[0]]


def _misshape_first_matrix(state: dict) -> None:
    key = sorted(k for k, v in state.items() if v.dim() == 2)[0]
    state[key] = torch.zeros(3, 3)


def _config(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _bin(ckpt: Path, payload: object, legacy: bool = False) -> None:
    """Replace the safetensors weights by a pickled ``pytorch_model.bin`` holding ``payload``."""
    (ckpt / "model.safetensors").unlink(missing_ok=True)
    if legacy:
        (ckpt / "pytorch_model.bin").write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, ckpt / "pytorch_model.bin")


def _empty(directory: Path) -> None:
    for p in list(directory.iterdir()):
        shutil.rmtree(p) if p.is_dir() else p.unlink()


def _official_showo(ckpt: Path, marker: Path) -> None:
    """An official-layout directory (phi-1.5 sizes) whose pytorch_model.bin carries the payload."""
    _empty(ckpt)
    (ckpt / "config.json").write_text(json.dumps({"_class_name": "Showo", "llm_vocab_size": 50295,
                                                  "codebook_size": 8192, "vocab_size": 58498, "num_vq_tokens": 256,
                                                  "llm_model_path": "/nonexistent/phi-1_5"}))
    torch.save({"showo.lm_head.weight": Evil(marker)}, ckpt / "pytorch_model.bin")


def _official_magvit(vq: Path, marker: Path, legacy: bool) -> None:
    _empty(vq)
    (vq / "config.json").write_text(json.dumps({"_class_name": "MAGVITv2", "_version": "0.0.1"}))
    _bin(vq, {"encoder.conv_in.weight": Evil(marker)}, legacy=legacy)


def _truncate(path: Path, keep: int | None = None) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])


def _header_size(path: Path, size: int) -> None:
    data = bytearray(path.read_bytes())
    data[:8] = struct.pack("<Q", size)
    path.write_bytes(bytes(data))


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _dir_instead(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _garbage_bin(ckpt: Path) -> None:
    (ckpt / "model.safetensors").unlink()
    (ckpt / "pytorch_model.bin").write_bytes(b"PK\x03\x04" + b"\xff" * 200)


def _set_version(version: object) -> Callable[[dict], None]:
    return lambda d: d.update(version=version)


def _transformer(**fields: object) -> Callable[[dict], None]:
    return lambda d: d["model"]["transformer"].update(fields)


M, VQ, CFG, VQ_CFG = "model.safetensors", "vq/model.safetensors", "config.json", "vq/config.json"
OPT, OPT_JSON, STATE = "s/optimizer.safetensors", "s/optimizer.json", "s/trainer_state.json"
BIN = ("pytorch_model.bin",)

CASES = [
    # ---- the transformer (load_showo) ----
    Damage("tensor missing", "load_showo", lambda c, m: _weights(c / M, _drop_first), ("missing keys",)),
    Damage("tensor unexpected", "load_showo", lambda c, m: _weights(c / M, lambda s: s.update(extra=torch.zeros(2))),
           ("unexpected keys",)),
    Damage("tensor mis-shaped", "load_showo", lambda c, m: _weights(c / M, _misshape_first_matrix),
           ("shape mismatches",)),
    Damage("safetensors truncated", "load_showo", lambda c, m: _truncate(c / M), (M,)),
    Damage("safetensors header declares 2**60 bytes", "load_showo", lambda c, m: _header_size(c / M, 2**60), (M,)),
    Damage("safetensors header byte flipped", "load_showo", lambda c, m: _flip(c / M, 10), (M,)),
    Damage("weights file is a directory", "load_showo", lambda c, m: _dir_instead(c / M), (M,)),
    Damage("config.json missing", "load_showo", lambda c, m: (c / CFG).unlink(), (CFG,)),
    Damage("config.json not JSON", "load_showo", lambda c, m: (c / CFG).write_text("{"), (CFG,)),
    Damage("config.json newer version", "load_showo", lambda c, m: _config(c / CFG, _set_version(99)), ("newer",)),
    Damage("config.json is a JSON array", "load_showo", lambda c, m: (c / CFG).write_text("[]"), (CFG,)),
    Damage("config.json without 'model'", "load_showo", lambda c, m: _config(c / CFG, lambda d: d.pop("model")),
           (CFG,)),
    Damage("config.json version 'x'", "load_showo", lambda c, m: _config(c / CFG, _set_version("x")), (CFG,)),
    Damage("config.json num_heads 0", "load_showo", lambda c, m: _config(c / CFG, _transformer(num_heads=0)), (CFG,)),
    Damage("config.json hidden_size doubled", "load_showo",
           lambda c, m: _config(c / CFG, _transformer(hidden_size=64, intermediate_size=128)), ("shape mismatches",)),
    Damage(".bin pickle payload (torch.save zip)", "load_showo", lambda c, m: _bin(c, {"w": Evil(m)}), BIN),
    Damage(".bin pickle payload (legacy pickle)", "load_showo", lambda c, m: _bin(c, Evil(m), legacy=True), BIN),
    Damage(".bin non-tensor values", "load_showo", lambda c, m: _bin(c, {"w": 1, "b": "x"}), BIN),
    Damage(".bin nested state dict", "load_showo", lambda c, m: _bin(c, {"state_dict": load_file(str(c / M))}), BIN),
    Damage(".bin garbage bytes", "load_showo", lambda c, m: _garbage_bin(c), BIN),
    Damage("official layout, .bin payload", "load_showo", _official_showo, BIN),
    # ---- the VQ tokenizer (load_magvit) ----
    Damage("vq tensor missing", "load_magvit", lambda c, m: _weights(c / VQ, _drop_first), ("missing keys",)),
    Damage("vq tensor mis-shaped", "load_magvit", lambda c, m: _weights(c / VQ, _misshape_first_matrix),
           ("shape mismatches",)),
    Damage("vq LFQ constants changed", "load_magvit", lambda c, m: _weights(
        c / VQ, lambda s: s.update({"quantize.power_vals": s["quantize.power_vals"] + 1})), ("quantize.power_vals",)),
    Damage("vq safetensors truncated", "load_magvit", lambda c, m: _truncate(c / VQ, 1000), (VQ,)),
    Damage("vq config.json not JSON", "load_magvit", lambda c, m: (c / VQ_CFG).write_text("{"), (CFG,)),
    Damage("vq config.json newer version", "load_magvit", lambda c, m: _config(c / VQ_CFG, _set_version(2)), (CFG,)),
    Damage("vq official layout, .bin payload (zip)", "load_magvit", lambda c, m: _official_magvit(c / "vq", m, False),
           BIN),
    Damage("vq official layout, .bin payload (legacy)", "load_magvit",
           lambda c, m: _official_magvit(c / "vq", m, True), BIN),
    # ---- resuming training (Trainer.run over a run directory stopped at step 1) ----
    Damage("resume: model tensor missing", "resume", lambda c, m: _weights(c / "s" / M, _drop_first),
           ("missing keys",)),
    Damage("resume: optimizer.safetensors truncated", "resume", lambda c, m: _truncate(c / OPT),
           ("optimizer.safetensors",)),
    Damage("resume: optimizer.safetensors mis-shaped", "resume",
           lambda c, m: _weights(c / OPT, lambda s: s.update({k: v[:1] for k, v in s.items()})),
           ("optimizer.safetensors",)),
    Damage("resume: optimizer.json not JSON", "resume", lambda c, m: (c / OPT_JSON).write_text("{"),
           ("optimizer.json",)),
    Damage("resume: trainer_state.json not JSON", "resume", lambda c, m: (c / STATE).write_text("{"),
           ("trainer_state.json",)),
    Damage("resume: optimizer.safetensors missing", "resume", lambda c, m: (c / OPT).unlink(),
           ("optimizer.safetensors",)),
]
CONTROLS = [("intact checkpoint", "load_showo"), ("intact vq", "load_magvit"), ("intact run", "resume")]


def damage_and_load(checkpoint: Path, ctx: dict[str, str], root: Path) -> tuple[dict, dict]:
    """Damage a copy per case, then load every copy in its own forked child.

    -> (results by id, {case id: (names the error must mention, payload marker path)}).
    """
    run = root / "run"  # a real training run stopped after step 1 (checkpoint run/s with optimizer state)
    trainer, stage = jobs._trainer(harness.Ctx(ctx, root), run)
    trainer.run(stage, stop_after=1)
    work, expect = [], {}
    for i, (name, loader) in enumerate(CONTROLS):
        path = shutil.copytree(run if loader == "resume" else checkpoint, root / f"control{i}")
        target = path / "vq" if loader == "load_magvit" else path
        work.append({"id": name, "func": loader, "ctx": {"path": str(target)}})
    for i, case in enumerate(CASES):
        path = shutil.copytree(run if case.loader == "resume" else checkpoint, root / f"case{i}")
        marker = root / f"case{i}.PWNED"
        case.damage(path, marker)
        expect[case.id] = (list(case.names), marker)
        work.append({"id": case.id, "func": case.loader,
                     "ctx": {"path": str(path / "vq" if case.loader == "load_magvit" else path)}})
    results = harness.run_jobs(Path(jobs.__file__), work, ctx, root / "work", warmup="warm",
                               preload=("numpy", "torch", "safetensors.torch", "showo_sdk.model",
                                        "showo_sdk.train.trainer"))
    return results, expect


def judge(result: dict, names: list[str], marker: Path) -> tuple[bool, str]:
    """(refused as promised, why): no crash, payload not run, CheckpointError naming the file."""
    if result["outcome"] in ("signal", "died", "timeout"):
        return False, f"CRASH or hang: {result}"
    if marker.exists():
        return False, "the pickle payload RAN"
    if result["outcome"] != "raised":
        return False, f"loaded anyway: {result.get('value')!r}"
    if "CheckpointError" not in result["mro"]:
        return False, f"{result['type']}: {result['message'][:400]}"
    if not any(n in result["message"] for n in names):
        return False, f"names none of {names}: {result['message'][:400]}"
    return True, result["message"][:200]


@pytest.fixture(scope="module")
def loads(tiny, tiny_ctx, tmp_path_factory):
    return damage_and_load(tiny.checkpoint, tiny_ctx, tmp_path_factory.mktemp("ckpt_damage"))


@pytest.mark.parametrize("name", [c[0] for c in CONTROLS])
def test_intact_copies_load(loads, name):
    results, _ = loads
    assert results[name]["outcome"] == "returned", results[name].get("traceback", results[name])


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=f"BUG {c.bug}")]
                                               if c.bug else []) for c in CASES])
def test_damaged_checkpoint_is_refused(loads, case):
    results, expect = loads
    ok, why = judge(results[case.id], *expect[case.id])
    assert ok, why


def test_no_payload_ever_ran(loads):
    """Whatever each load did, no marker file exists (checked for every case, known-bug ones included)."""
    _, expect = loads
    assert [cid for cid, (_, marker) in expect.items() if marker.exists()] == []


def test_no_load_crashed(loads):
    results, _ = loads
    assert {k: r["outcome"] for k, r in results.items() if r["outcome"] in ("signal", "died", "timeout")} == {}


def test_every_torch_load_uses_weights_only():
    """Static guard: each torch.load call in the shipped code passes weights_only=True."""
    import ast

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [*(root / "showo_sdk").rglob("*.py"), *(root / "export").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load" and \
                    getattr(node.func.value, "id", None) == "torch":
                ok = any(k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in node.keywords)
                if not ok:
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
