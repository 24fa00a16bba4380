"""MAGVIT-v2 checkpoints: our save/load round trip, the official layout, refusal of bad or unsafe files."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from showo_sdk.config import VQConfig
from showo_sdk.errors import CheckpointError
from showo_sdk.model.magvit import MagvitV2
from showo_sdk.model.magvit_io import load_magvit, official_config

TINY = VQConfig(base_channels=8, encoder_ch_mult=(1, 2), encoder_num_res_blocks=(1, 1),
                decoder_ch_mult=(1, 2), decoder_num_res_blocks=(1, 2), codebook_bits=6,
                resolution=16, norm_groups=4)
OFFICIAL_CONFIG = {"_class_name": "MAGVITv2", "_version": "0.0.1"}


@pytest.fixture(scope="module")
def tiny() -> MagvitV2:
    torch.manual_seed(0)
    return MagvitV2(TINY).eval()


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    """A randomly initialised state dict of the official default architecture (95.39 M params)."""
    torch.manual_seed(0)
    return MagvitV2(VQConfig()).state_dict()


def _write_ours(path: Path, state: dict[str, torch.Tensor], cfg: VQConfig = TINY) -> Path:
    path.mkdir()
    config = {"format": "showo-sdk-vq", "version": 1, "vq": cfg.to_dict()}
    (path / "config.json").write_text(json.dumps(config))
    save_file(state, str(path / "model.safetensors"))
    return path


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


# ---------------------------------------------------------------- our format

def test_save_load_round_trip_is_bit_exact(tiny: MagvitV2, tmp_path: Path) -> None:
    tiny.save_pretrained(tmp_path / "vq")
    assert sorted(os.listdir(tmp_path)) == ["vq"]  # no temp directory left behind
    assert sorted(os.listdir(tmp_path / "vq")) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "vq" / "config.json").read_text())
    assert config["format"] == "showo-sdk-vq" and config["version"] == 1
    loaded = load_magvit(tmp_path / "vq")
    assert loaded.config == TINY and not loaded.training
    assert all(p.dtype == torch.float32 and p.requires_grad for p in loaded.parameters())
    _assert_same_state(tiny.state_dict(), loaded.state_dict())
    pixels = torch.rand(2, 3, 8, 12) * 2 - 1
    with torch.no_grad():
        codes = tiny.encode(pixels)
        assert torch.equal(loaded.encode(pixels), codes)
        assert torch.equal(loaded.decode(codes, grid=(4, 6)), tiny.decode(codes, grid=(4, 6)))


def test_save_refuses_existing_dir_unless_overwrite(tiny: MagvitV2, tmp_path: Path) -> None:
    target = tmp_path / "vq"
    tiny.save_pretrained(target)
    with pytest.raises(FileExistsError):
        tiny.save_pretrained(target)
    other = MagvitV2(TINY)
    other.save_pretrained(target, overwrite=True)
    _assert_same_state(other.state_dict(), load_magvit(target).state_dict())
    assert sorted(os.listdir(tmp_path)) == ["vq"]


def test_half_precision_weights_load_as_fp32(tiny: MagvitV2, tmp_path: Path) -> None:
    half = {k: v.half() if v.is_floating_point() else v for k, v in tiny.state_dict().items()}
    loaded = load_magvit(_write_ours(tmp_path / "vq", half))
    for key, value in loaded.state_dict().items():
        want = half[key].float() if half[key].is_floating_point() else half[key]
        assert value.dtype == want.dtype and torch.equal(value, want), key


# ---------------------------------------------------------------- official layout

@pytest.mark.parametrize("name", ["pytorch_model.bin", "pytorch_model.safetensors", "model.safetensors"])
def test_official_layout_loads(official_state: dict[str, torch.Tensor], tmp_path: Path, name: str) -> None:
    (tmp_path / "config.json").write_text(json.dumps(OFFICIAL_CONFIG, indent=2, sort_keys=True))
    if name.endswith(".bin"):
        torch.save(official_state, tmp_path / name)
    else:
        save_file(official_state, str(tmp_path / name))
    loaded = load_magvit(tmp_path)
    assert loaded.config == VQConfig() and not loaded.training
    _assert_same_state(official_state, loaded.state_dict())


def test_official_config_mapping() -> None:
    assert official_config(OFFICIAL_CONFIG) == VQConfig()
    # Values equal to the official ones and keys that do not shape weights are accepted.
    assert official_config({**OFFICIAL_CONFIG, "z_channels": 13, "dropout": 0.0, "_name_or_path": "x",
                            "ch_mult": [1, 2, 2, 4, 4]}) == VQConfig()
    assert official_config({**OFFICIAL_CONFIG, "resolution": 512}).resolution == 512
    with pytest.raises(CheckpointError, match="z_channels=18"):
        official_config({**OFFICIAL_CONFIG, "z_channels": 18})
    with pytest.raises(CheckpointError, match="ch=64"):
        official_config({**OFFICIAL_CONFIG, "ch": 64})
    with pytest.raises(CheckpointError, match="VQModel"):
        official_config({"_class_name": "VQModel"})
    with pytest.raises(CheckpointError, match="resolution"):
        official_config({**OFFICIAL_CONFIG, "resolution": 100})


def test_pickle_with_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {shlex.quote(str(marker))}",)

    ckpt = tmp_path / "vq"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps(OFFICIAL_CONFIG))
    torch.save({"encoder.conv_in.weight": Payload()}, ckpt / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_magvit(ckpt)
    assert not marker.exists()
    # The payload is live: an unsafe load would have run it.
    torch.load(ckpt / "pytorch_model.bin", weights_only=False)
    assert marker.exists()


# ---------------------------------------------------------------- mismatches and missing files

def test_missing_unexpected_and_misshapen_keys_are_listed(tiny: MagvitV2, tmp_path: Path) -> None:
    state = dict(tiny.state_dict())
    del state["encoder.conv_in.weight"]
    state["encoder.extra.weight"] = torch.zeros(2)
    state["decoder.conv_out.bias"] = torch.zeros(5)
    with pytest.raises(CheckpointError) as info:
        load_magvit(_write_ours(tmp_path / "vq", state))
    msg = str(info.value)
    assert "missing keys: encoder.conv_in.weight (1)" in msg
    assert "unexpected keys: encoder.extra.weight (1)" in msg
    assert "decoder.conv_out.bias (5,) != (3,)" in msg


def test_long_key_lists_are_truncated_with_a_count(tiny: MagvitV2, tmp_path: Path) -> None:
    state = {k: v for k, v in tiny.state_dict().items() if not k.startswith("decoder.")}
    n_missing = sum(k.startswith("decoder.") for k in tiny.state_dict())
    listing = rf"missing keys: decoder\.\S+(, \S+){{9}} \.\.\. \({n_missing} in all\)"
    with pytest.raises(CheckpointError, match=listing):
        load_magvit(_write_ours(tmp_path / "vq", state))


def test_wrong_architecture_in_our_config_is_refused(tiny: MagvitV2, tmp_path: Path) -> None:
    bigger = VQConfig(**{**TINY.to_dict(), "base_channels": 16})
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_magvit(_write_ours(tmp_path / "vq", tiny.state_dict(), cfg=bigger))


def test_tampered_lfq_buffers_are_refused(tiny: MagvitV2, tmp_path: Path) -> None:
    state = dict(tiny.state_dict())
    state["quantize.embedding"] = state["quantize.embedding"].flip(1).contiguous()  # LSB-first order
    with pytest.raises(CheckpointError, match="quantize.embedding"):
        load_magvit(_write_ours(tmp_path / "vq", state))


def test_missing_paths_name_what_is_expected(tiny: MagvitV2, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nowhere.*not a directory"):
        load_magvit(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        load_magvit(tmp_path / "empty")
    (tmp_path / "official").mkdir()
    (tmp_path / "official" / "config.json").write_text(json.dumps(OFFICIAL_CONFIG))
    with pytest.raises(CheckpointError, match="pytorch_model.safetensors.*pytorch_model.bin"):
        load_magvit(tmp_path / "official")
    ours = tmp_path / "ours"
    tiny.save_pretrained(ours)
    (ours / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_magvit(ours)


@pytest.mark.parametrize("text, match", [
    ("{not json", "JSON"),
    ("[1, 2]", "JSON object"),
    (json.dumps({"something": 1}), "neither"),
    (json.dumps({"format": "showo-sdk-vq", "version": 2, "vq": {}}), "version"),
    (json.dumps({"format": "showo-sdk-vq", "version": 1, "vq": {"bogus": 1}}), "bogus"),
])
def test_bad_config_json_is_refused(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=match):
        load_magvit(tmp_path)


def test_corrupt_weights_are_refused(tiny: MagvitV2, tmp_path: Path) -> None:
    tiny.save_pretrained(tmp_path / "vq")
    (tmp_path / "vq" / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_magvit(tmp_path / "vq")
