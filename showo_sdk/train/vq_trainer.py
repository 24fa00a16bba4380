"""Train a small MAGVIT-v2 LFQ tokenizer (SHOWO_SPEC.md §7) on uint8 RGB images, resumably.

Loss = reconstruction + OFFICIAL_COMMIT_WEIGHT * commitment + OFFICIAL_ENTROPY_WEIGHT * entropy
(the official LFQ multipliers, ``magvit.py``). MAGVIT-v2 trains its reconstruction with L2 plus an
LPIPS perceptual loss and a GAN; we skip those two: LPIPS needs pretrained VGG weights we cannot
download, and a GAN costs CPU time that buys sharpness, not PSNR. L2 is the default: on our shape
scenes (84% black pixels) L1 stalls at the loss of the all-black median image (~0.13, 13 dB) for
hundreds of steps while L2 goes on to the objects at once; and L2 is what PSNR measures.
Two options of ours, for token grids a transformer must draw: ``foreground_weight`` (non-black
pixels weigh more in the reconstruction) and ``tile_swap`` (random tokens decode from another
image's latent, so the decoder cannot lean on context and each code must carry its own tile).

Optimisation reuses ``optim.py``: AdamW without decay on 1-d parameters, linear warmup then cosine
LR, gradient-norm clipping. A run is a pure function of (config, images, hyper-parameters, seed):
``torch.manual_seed(seed)`` fixes the init and a numpy Generator seeded by (seed, epoch) fixes the
batch order, so an interrupted run resumed from its last checkpoint ends bit-identical to an
uninterrupted one (on one machine with one thread count: CPU kernels round per thread split).

Layout of ``out_dir``: ``checkpoint/`` (``config.json`` + ``model.safetensors`` via
``magvit_io.save_pretrained``, ``optimizer.safetensors`` + ``optimizer.json`` via
``optim.save_optimizer``, ``trainer_state.json``), replaced atomically as a whole at each save, and
``metrics.jsonl`` (one JSON object per step, plus eval records). ``load_magvit(out_dir/"checkpoint")``
loads the tokenizer; the optimizer files are ignored by it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..config import VQConfig, _JsonMixin
from ..model.magvit import OFFICIAL_COMMIT_WEIGHT, OFFICIAL_ENTROPY_WEIGHT, MagvitV2, VQOutput
from ..model.magvit_io import load_magvit, save_pretrained
from ..utils.atomic import atomic_dir, atomic_write_text
from .optim import cosine_lr, load_optimizer, make_optimizer, save_optimizer
from .vq_eval import as_uint8_images, evaluate_vq, to_pixels

CHECKPOINT = "checkpoint"
STATE_NAME = "trainer_state.json"
METRICS_NAME = "metrics.jsonl"

#: Shipped tokenizer for 32x32 shape scenes: x4 downsampling (3 levels) -> 8x8 tokens, 2^8 codes,
#: 0.79 M parameters (3.2 MB fp32). 8 bits rather than 10: the same held-out PSNR (30.4 vs 30.5 dB
#: after 2000 steps, on the first release's scenes) with 74 codes in use instead of 41, and a 4x
#: smaller codebook for Show-o.
SHAPES_VQ = VQConfig(
    base_channels=32, encoder_ch_mult=(1, 2, 2), encoder_num_res_blocks=(1, 1, 1),
    decoder_ch_mult=(1, 2, 2), decoder_num_res_blocks=(1, 1, 1), codebook_bits=8,
    resolution=32, norm_groups=8)


@dataclass(frozen=True)
class VQTrainConfig(_JsonMixin):
    """Hyper-parameters of one tokenizer run; stored in ``trainer_state.json`` and checked on resume."""

    steps: int
    batch_size: int = 32
    lr: float = 2e-3
    warmup: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    recon_loss: str = "l2"  # "l1" | "l2"
    commit_weight: float = OFFICIAL_COMMIT_WEIGHT
    entropy_weight: float = OFFICIAL_ENTROPY_WEIGHT
    save_every: int = 0  # 0: only at the end
    tile_swap: float = 0.0  # most tokens per image whose latents (and pixels) come from another image
    foreground_weight: float = 1.0  # loss weight of non-black pixels relative to near-black background

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or self.warmup < 0 or self.save_every < 0:
            raise ValueError("steps and batch_size must be >= 1, lr > 0, warmup and save_every >= 0")
        if not 0.0 <= self.tile_swap <= 1.0:
            raise ValueError(f"tile_swap must be a fraction in [0, 1], got {self.tile_swap!r}")
        if self.foreground_weight < 1.0:
            raise ValueError(f"foreground_weight must be >= 1, got {self.foreground_weight!r}")
        if self.recon_loss not in ("l1", "l2"):
            raise ValueError(f"recon_loss must be 'l1' or 'l2', got {self.recon_loss!r}")


#: Shipped recipe for SHAPES_VQ (run by ``shapes.py`` on its 20,000 train scenes): held-out PSNR 23.9 /
#: 33.0 / 36.4 / 38.3 dB after 500 / 1000 / 1500 / 2000 steps, 68 of 256 codes in use; about 0.24 s a
#: step on 2 idle cores, so ~8 minutes (a slow test checks 26 dB on 8,000 scenes). Tile swapping and
#: the foreground weight give each 4-px tile of a shape its own code (a circle's corner, a square's
#: corner): without them the codebook settled on 7 codes for all 18 shape/colour objects and the
#: decoder drew the shape from context, which the transformer could not learn to control.
SHAPES_VQ_TRAIN = VQTrainConfig(steps=2000, batch_size=32, lr=2e-3, warmup=100, save_every=500,
                                tile_swap=1.0, foreground_weight=10.0)


@dataclass
class VQLosses:
    """Weighted total and its unweighted parts (scalars)."""

    total: torch.Tensor
    recon: torch.Tensor
    commit: torch.Tensor
    entropy: torch.Tensor


def tile_swap_forward(model: MagvitV2, pixels: torch.Tensor, share: float,
                      generator: torch.Generator) -> tuple[VQOutput, torch.Tensor]:
    """Training forward where random tokens take another image's quantized latent: (output, target).

    Image i swaps each token with probability u_i * ``share`` (u_i uniform in [0, 1]) for the same
    token of image i+1, and its target takes that image's pixels under those tokens. The decoder can
    then no longer lean on neighbouring codes, so each code must carry its own tile: a circle's
    corner and a square's corner get different codes, which is what Show-o has to predict.
    """
    q = model.quantize.quantize(model.encode_latents(pixels))
    b, _, h, w = q.z_q.shape
    rate = torch.rand(b, 1, 1, 1, generator=generator) * share
    swap = torch.rand(b, 1, h, w, generator=generator) < rate
    partner = torch.roll(torch.arange(b), -1)
    z_mix = torch.where(swap, q.z_q[partner], q.z_q)
    swap_px = swap.repeat_interleave(model.factor, 2).repeat_interleave(model.factor, 3)
    target = torch.where(swap_px, pixels[partner], pixels)
    out = VQOutput(reconstruction=model.decoder(z_mix), codes=q.codes, commit_loss=q.commit_loss,
                   entropy_loss=q.entropy_loss)
    return out, target


#: A pixel is background when every channel is below this (in [-1, 1]; black is -1).
_BACKGROUND_LEVEL = -0.95


def vq_losses(out: VQOutput, target: torch.Tensor, train: VQTrainConfig) -> VQLosses:
    """Reconstruction (L1 or L2, weighted mean over pixels in [-1, 1]) plus the weighted LFQ losses.

    Non-black pixels weigh ``train.foreground_weight`` times the background: on scenes that are
    mostly black, an object's edge pixels (what tells a circle from a square) would otherwise
    cost next to nothing, and the codebook would not spend codes on them.
    """
    err = (out.reconstruction - target).abs()
    err = err if train.recon_loss == "l1" else err.pow(2)
    fg = (target.amax(dim=1, keepdim=True) > _BACKGROUND_LEVEL).to(err.dtype)
    weight = 1.0 + (train.foreground_weight - 1.0) * fg  # all ones at the default weight: the plain mean
    recon = (weight * err).mean() / weight.mean()
    total = recon + train.commit_weight * out.commit_loss + train.entropy_weight * out.entropy_loss
    return VQLosses(total, recon, out.commit_loss, out.entropy_loss)


class BatchOrder:
    """Image indices of step ``s``: positions s*B .. s*B+B-1 of a sequence of epoch permutations.

    Epoch e is ``default_rng([seed, e]).permutation(n)``: every image once per epoch, and any step's
    batch is computable without replaying earlier ones (which is what makes resume exact).
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._perm

    def indices(self, step: int) -> np.ndarray:
        pos = np.arange(step * self.batch_size, (step + 1) * self.batch_size, dtype=np.int64)
        return np.array([self._permutation(int(p // self.n))[p % self.n] for p in pos], dtype=np.int64)


def data_digest(images: np.ndarray) -> str:
    """Short hash of the training images (shape + bytes), so a resume on other data is refused."""
    h = hashlib.blake2b(repr(images.shape).encode(), digest_size=8)
    h.update(np.ascontiguousarray(images).data)
    return h.hexdigest()


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    """Drop records past ``step`` (logged after the last checkpoint by an interrupted run)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
             if ln.strip() and json.loads(ln).get("step", 0) <= step]
    atomic_write_text(path, "".join(ln + "\n" for ln in lines))


def _save(model: MagvitV2, optimizer: torch.optim.Optimizer, ckpt: Path, state: dict[str, Any]) -> None:
    """Model, optimizer and trainer state into one temp directory, then renamed onto ``ckpt``."""
    with atomic_dir(ckpt, overwrite=True) as tmp:
        save_pretrained(model, tmp, overwrite=True)  # swaps ``tmp`` for a directory holding the model
        save_optimizer(optimizer, tmp)
        (tmp / STATE_NAME).write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _resume_state(ckpt: Path, expected: dict[str, Any]) -> dict[str, Any] | None:
    """The saved trainer state if ``ckpt`` holds one, after checking it is the same run."""
    file = ckpt / STATE_NAME
    if not file.is_file():
        return None
    state = json.loads(file.read_text(encoding="utf-8"))
    diff = sorted(k for k, v in expected.items() if state.get(k) != v)
    if diff:
        raise ValueError(f"{ckpt} was written by a different run (differs in {diff}); "
                         "use another out_dir or pass resume=False to start over")
    return state


def train_vq(cfg: VQConfig, images: Iterable[np.ndarray] | np.ndarray, out_dir: str | os.PathLike,
             train: VQTrainConfig, seed: int = 0, eval_images: Iterable[np.ndarray] | np.ndarray | None = None,
             resume: bool = True, progress: bool = True) -> Path:
    """Train a MagvitV2(``cfg``) on uint8 (H, W, 3) ``images``; returns ``out_dir/checkpoint``.

    ``eval_images`` (held-out, optional) are scored with ``evaluate_vq`` at every save; the last
    scores land in ``trainer_state.json["eval"]``. With ``resume`` a checkpoint of the same run in
    ``out_dir`` is continued from its step (a finished one is returned as is); ``resume=False``
    starts over and replaces it.
    """
    data = as_uint8_images(images)
    held = as_uint8_images(eval_images) if eval_images is not None else None
    out = Path(out_dir)
    ckpt, log = out / CHECKPOINT, out / METRICS_NAME
    out.mkdir(parents=True, exist_ok=True)
    run_id = json.loads(json.dumps(  # as read back from JSON (tuples become lists)
        {"seed": seed, "vq": cfg.to_dict(), "train": train.to_dict(), "data": data_digest(data)}))
    state = _resume_state(ckpt, run_id) if resume else None
    if state is not None and state["done"]:
        return ckpt
    start = int(state["step"]) if state is not None else 0
    if start:
        model = load_magvit(ckpt).train()
        _truncate_log(log, start)
    else:
        torch.manual_seed(seed)
        model = MagvitV2(cfg).train()
        if log.exists():
            log.unlink()
    optimizer = make_optimizer(model, train.lr, train.weight_decay)
    if start:
        load_optimizer(optimizer, ckpt)
    order = BatchOrder(len(data), train.batch_size, seed)
    images_t = torch.from_numpy(data)
    bar = tqdm(range(start, train.steps), desc="train vq", initial=start, total=train.steps,
               disable=not progress)
    t0 = time.perf_counter()
    for step in bar:
        lr = cosine_lr(step, train.steps, train.warmup, train.lr, train.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        pixels = to_pixels(images_t[torch.from_numpy(order.indices(step))])
        if train.tile_swap:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
            out, target = tile_swap_forward(model, pixels, train.tile_swap, gen)
        else:
            out, target = model(pixels), pixels
        losses = vq_losses(out, target, train)
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), train.max_grad_norm))
        optimizer.step()
        record = {"step": step + 1, "loss": losses.total.item(), "recon": losses.recon.item(),
                  "commit": losses.commit.item(), "entropy": losses.entropy.item(), "lr": lr,
                  "grad_norm": grad_norm, "elapsed_s": time.perf_counter() - t0}
        _append_jsonl(log, record)
        bar.set_postfix(loss=f"{record['loss']:.4f}", recon=f"{record['recon']:.4f}")
        done = step + 1 == train.steps
        if done or (train.save_every and (step + 1) % train.save_every == 0):
            scores = evaluate_vq(model, held) if held is not None else None
            model.train()
            if scores is not None:
                _append_jsonl(log, {"step": step + 1, "eval": scores})
                bar.write(f"step {step + 1}: held-out PSNR {scores['psnr_db']:.2f} dB, "
                          f"codebook usage {scores['codebook_usage']:.3f}")
            _save(model, optimizer, ckpt, {**run_id, "step": step + 1, "done": done, "eval": scores})
    return ckpt


def shapes_images(seed: int, n: int, split: str, size: int = 32) -> np.ndarray:
    """(n, size, size, 3) uint8 images of ``data.make_split`` (train or held-out scenes)."""
    from .data import make_split

    return np.stack([r["image"] for r in make_split(seed, n, split, size)])
