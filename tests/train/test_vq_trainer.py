"""VQ tokenizer trainer and evaluation: learning, checkpoints, exact resume, PSNR, evaluate_vq."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from showo_sdk.config import VQConfig
from showo_sdk.errors import InputError
from showo_sdk.imageio import preprocess, to_uint8
from showo_sdk.model.magvit import MagvitV2, VQOutput
from showo_sdk.model.magvit_io import load_magvit
from showo_sdk.train import vq_trainer
from showo_sdk.train.optim import save_optimizer
from showo_sdk.train.vq_eval import evaluate_vq, psnr
from showo_sdk.train.vq_trainer import (SHAPES_VQ, SHAPES_VQ_TRAIN, BatchOrder, VQTrainConfig, shapes_images,
                                        tile_swap_forward, train_vq, vq_losses)

TINY = VQConfig(base_channels=8, encoder_ch_mult=(1, 2), encoder_num_res_blocks=(1, 1),
                decoder_ch_mult=(1, 2), decoder_num_res_blocks=(1, 1), codebook_bits=6,
                resolution=16, norm_groups=4)


@pytest.fixture(autouse=True)
def one_thread(request: pytest.FixtureRequest):
    """The tiny model gains nothing from threads, and on a busy 2-core box they cost 30x."""
    before = torch.get_num_threads()
    if request.node.get_closest_marker("slow") is None:
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return shapes_images(0, 16, "train", size=16)  # (16, 16, 16, 3) uint8


@pytest.fixture(scope="module")
def heldout() -> np.ndarray:
    return shapes_images(0, 8, "heldout", size=16)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _recon_ratio(out: Path) -> float:
    """Mean reconstruction loss of the last 3 steps over that of the first 3."""
    recon = [r["recon"] for r in _log(out) if "recon" in r]
    return float(np.mean(recon[-3:]) / np.mean(recon[:3]))


def test_loss_decreases_and_checkpoint(tmp_path: Path, images: np.ndarray, heldout: np.ndarray) -> None:
    # batch_size == len(images): every step sees the same batch, so the losses are comparable.
    train = VQTrainConfig(steps=20, batch_size=16, lr=3e-3, warmup=2)
    ckpt = train_vq(TINY, images, tmp_path, train, seed=0, eval_images=heldout, progress=False)
    assert _recon_ratio(tmp_path) < 0.6
    assert ckpt == tmp_path / "checkpoint"
    names = {p.name for p in ckpt.iterdir()}
    assert {"config.json", "model.safetensors", "optimizer.safetensors", "optimizer.json",
            "trainer_state.json"} <= names
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["step"] == 20 and state["done"] and state["eval"]["n"] == len(heldout)
    assert [r["step"] for r in _log(tmp_path) if "recon" in r] == list(range(1, 21))
    vq = load_magvit(ckpt)
    assert vq.config == TINY
    assert evaluate_vq(vq, heldout) == state["eval"]


def test_loss_check_can_fail(tmp_path: Path, images: np.ndarray) -> None:
    """With a vanishing learning rate the same comparison does not pass: the check above is real."""
    train = VQTrainConfig(steps=12, batch_size=16, lr=1e-12, warmup=2)
    train_vq(TINY, images, tmp_path, train, seed=0, progress=False)
    assert _recon_ratio(tmp_path) > 0.95


def _optimizer_tensors(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "optimizer.safetensors"))


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("extras", [{}, {"tile_swap": 0.5, "foreground_weight": 4.0}], ids=["plain", "swap"])
def test_resume_is_bit_exact(tmp_path: Path, images: np.ndarray, monkeypatch: pytest.MonkeyPatch,
                             extras: dict) -> None:
    train = VQTrainConfig(steps=6, batch_size=4, lr=2e-3, warmup=2, save_every=3, **extras)
    full = train_vq(TINY, images, tmp_path / "full", train, seed=3, progress=False)

    # Crash in step 5: checkpoint at step 3, log already at step 4.
    real_losses, calls = vq_trainer.vq_losses, []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_losses(*args, **kwargs)

    out = tmp_path / "resumed"
    monkeypatch.setattr(vq_trainer, "vq_losses", crashing)
    with pytest.raises(KeyboardInterrupt):
        train_vq(TINY, images, out, train, seed=3, progress=False)
    monkeypatch.undo()
    saved = json.loads((out / "checkpoint" / "trainer_state.json").read_text())
    assert saved["step"] == 3 and not saved["done"]
    saved_opt = _optimizer_tensors(out / "checkpoint")

    real_load, loaded = vq_trainer.load_optimizer, tmp_path / "loaded"

    def spying_load(opt, directory):
        real_load(opt, directory)
        loaded.mkdir()
        save_optimizer(opt, loaded)

    monkeypatch.setattr(vq_trainer, "load_optimizer", spying_load)
    resumed = train_vq(TINY, images, out, train, seed=3, progress=False)
    _assert_same(_optimizer_tensors(loaded), saved_opt)  # optimizer state restored exactly
    assert [r["step"] for r in _log(out)] == list(range(1, 7))  # steps 1-3 kept, 4-6 redone once
    _assert_same(load_file(str(resumed / "model.safetensors")), load_file(str(full / "model.safetensors")))
    _assert_same(_optimizer_tensors(resumed), _optimizer_tensors(full))
    assert json.loads((resumed / "optimizer.json").read_text()) == json.loads((full / "optimizer.json").read_text())


def test_finished_run_returned_and_other_run_refused(tmp_path: Path, images: np.ndarray,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    train = VQTrainConfig(steps=2, batch_size=4, warmup=1)
    ckpt = train_vq(TINY, images, tmp_path, train, seed=0, progress=False)
    monkeypatch.setattr(vq_trainer, "vq_losses", lambda *a, **k: pytest.fail("a finished run trained again"))
    assert train_vq(TINY, images, tmp_path, train, seed=0, progress=False) == ckpt
    with pytest.raises(ValueError, match="seed"):
        train_vq(TINY, images, tmp_path, train, seed=1, progress=False)
    with pytest.raises(ValueError, match="data"):
        train_vq(TINY, images[:8], tmp_path, train, seed=0, progress=False)


def _tiles(x: torch.Tensor, f: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/f, W/f, C*f*f): one row per token's pixel tile."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // f, f, w // f, f).permute(0, 2, 4, 1, 3, 5).reshape(b, h // f, w // f, -1)


@torch.no_grad()
def test_tile_swap_swaps_latents_and_target_tiles_together() -> None:
    """Every target tile is its own image's or the next image's; the decoder saw exactly those codes."""
    torch.manual_seed(0)
    model = MagvitV2(TINY).eval()
    pixels = torch.rand(6, 3, 16, 16) * 2 - 1  # noise: every tile differs from every other
    out, target = tile_swap_forward(model, pixels, 1.0, torch.Generator().manual_seed(1))
    f, partner = model.factor, torch.roll(torch.arange(6), -1)
    own, other, got = _tiles(pixels, f), _tiles(pixels[partner], f), _tiles(target, f)
    swapped = (got == other).all(-1)
    assert torch.all(swapped | (got == own).all(-1))
    assert 0 < int(swapped.sum()) < swapped.numel()  # some tiles swapped, not all
    codes = out.codes.reshape(6, *swapped.shape[1:])
    mixed = torch.where(swapped, codes[partner], codes)
    assert torch.allclose(out.reconstruction, model.decode_grid(mixed), atol=1e-5)
    assert torch.equal(out.codes, model.encode(pixels))


@torch.no_grad()
def test_tile_swap_share_zero_is_the_plain_forward() -> None:
    torch.manual_seed(0)
    model = MagvitV2(TINY).eval()
    pixels = torch.rand(4, 3, 16, 16) * 2 - 1
    out, target = tile_swap_forward(model, pixels, 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(target, pixels)
    assert torch.allclose(out.reconstruction, model(pixels).reconstruction)


def test_foreground_weight_scales_object_pixel_errors() -> None:
    target = torch.full((1, 3, 4, 4), -1.0)
    target[..., 0, 0] = 1.0  # one object pixel on black
    zero = torch.tensor(0.0)

    def loss(err_at: tuple[int, int], weight: float) -> float:
        recon = target.clone()
        recon[..., err_at[0], err_at[1]] += 0.5
        out = VQOutput(reconstruction=recon, codes=torch.zeros(1, 1, dtype=torch.int64), commit_loss=zero,
                       entropy_loss=zero)
        return float(vq_losses(out, target, VQTrainConfig(steps=1, foreground_weight=weight)).recon)

    assert loss((0, 0), 1.0) == pytest.approx(loss((2, 2), 1.0)) == pytest.approx(0.25 * 3 / 48)
    assert loss((0, 0), 5.0) == pytest.approx(5 * loss((2, 2), 5.0))


@pytest.mark.parametrize("bad", [{"tile_swap": 1.5}, {"tile_swap": -0.1}, {"foreground_weight": 0.5}])
def test_swap_and_weight_settings_are_checked(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        VQTrainConfig(steps=1, **bad)


def test_batch_order_epochs_and_random_access() -> None:
    order = BatchOrder(n=10, batch_size=4, seed=7)
    seq = np.concatenate([order.indices(s) for s in range(5)])  # 20 positions = 2 epochs
    assert sorted(seq[:10]) == list(range(10)) and sorted(seq[10:]) == list(range(10))
    assert not np.array_equal(seq[:10], seq[10:])
    assert np.array_equal(BatchOrder(10, 4, 7).indices(3), seq[12:16])
    assert not np.array_equal(BatchOrder(10, 4, 8).indices(0), seq[:4])


def test_psnr_known_values() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255))  # MSE 1
    assert psnr(a, a + 10) == pytest.approx(10 * math.log10(255 ** 2 / 100))  # MSE 100
    half = a.copy()
    half[:2] = 20  # MSE 200: half the elements off by 20
    assert psnr(a, half) == pytest.approx(10 * math.log10(255 ** 2 / 200))
    assert psnr(np.full((2, 2), 255, np.uint8), np.zeros((2, 2), np.uint8)) == pytest.approx(0.0)
    with pytest.raises(InputError):
        psnr(a, a[:2])
    with pytest.raises(InputError):
        psnr(a, a.astype(np.float32))


def test_evaluate_vq_matches_the_public_pipeline(heldout: np.ndarray) -> None:
    torch.manual_seed(0)
    vq = MagvitV2(TINY)
    scores = evaluate_vq(vq, list(heldout), batch_size=3)
    assert set(scores) == {"psnr_db", "psnr_pooled_db", "codebook_usage", "codes_used", "n"}
    assert scores["n"] == len(heldout)
    assert 0 < scores["codebook_usage"] <= 1 and scores["codes_used"] == round(scores["codebook_usage"] * 64)
    assert 0 < scores["psnr_db"] < 100 and 0 < scores["psnr_pooled_db"] < 100
    # One image through imageio.preprocess -> encode -> decode -> to_uint8 gives the same figure.
    with torch.no_grad():
        x = torch.from_numpy(preprocess(heldout[0], 16))[None]
        recon = to_uint8(vq.decode(vq.encode(x)).numpy())[0]
    assert evaluate_vq(vq, heldout[:1])["psnr_db"] == pytest.approx(psnr(heldout[0], recon), abs=1e-12)
    with pytest.raises(InputError):
        evaluate_vq(vq, heldout.astype(np.float32))


@pytest.mark.slow
def test_shipped_recipe_reaches_26_db(tmp_path: Path) -> None:
    """The issue's target for the shipped tokenizer (about 10 minutes on 2 idle cores)."""
    ckpt = train_vq(SHAPES_VQ, shapes_images(0, 8000, "train"), tmp_path, SHAPES_VQ_TRAIN, seed=0, progress=False)
    assert evaluate_vq(load_magvit(ckpt), shapes_images(0, 500, "heldout"))["psnr_db"] >= 26.0
