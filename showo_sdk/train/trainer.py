"""The Show-o training loop: mixed T2I/LM/MMU batches, AdamW, cosine LR, accumulation, clipping, DDP.

Runs on one CPU process or GPU, or on several under ``torchrun`` (gloo on CPU, NCCL on GPU, one GPU
per rank): each rank draws its own shard of examples; DistributedDataParallel keeps the weights identical.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..config import ShowoConfig, _JsonMixin
from ..errors import CheckpointError
from ..model.showo_io import load_showo, save_pretrained
from ..model.transformer import ShowoTransformer
from .batches import BatchBuilder
from .ema import WeightEMA
from .losses import showo_losses
from .optim import cosine_lr, load_optimizer, make_optimizer, save_optimizer


@dataclass
class Example:
    """One training image with its texts, all tokenized: codes (N,) and text id lists."""

    codes: np.ndarray
    caption: list[int]
    class_name: list[int]
    qa: list[tuple[list[int], list[int]]] = field(default_factory=list)  # (question template ids, answer ids)
    text: list[int] = field(default_factory=list)  # LM text (defaults to the caption)


@dataclass(frozen=True)
class StageConfig(_JsonMixin):
    """One training stage (a recipe is a list of them); JSON round-trip for the run log."""

    name: str
    steps: int
    lr: float
    warmup: int = 50
    batch_t2i: int = 8
    batch_lm: int = 2
    batch_mmu: int = 8
    t2i_text: str = "caption"  # "class" (stage 1) | "caption"
    mmu_kind: str = "caption"  # "caption" | "qa" | "mixed"
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    weight_decay: float = 0.01
    cond_dropout: float = 0.1
    min_lr_ratio: float = 0.1
    save_every: int = 0  # 0: only at the end
    #: "bf16": forward under bfloat16 autocast (weights, optimizer state and losses stay fp32);
    #: 1.7x the steps/s of "fp32" on an AVX512-BF16 CPU, so more steps fit the same hour.
    amp: str = "fp32"
    #: 0: off; else the stage ends on the exponential moving average of its weights (this decay per step)
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.t2i_text not in ("class", "caption") or self.mmu_kind not in ("caption", "qa", "mixed"):
            raise ValueError(f"bad stage texts: t2i_text={self.t2i_text!r}, mmu_kind={self.mmu_kind!r}")
        if self.amp not in ("fp32", "bf16"):
            raise ValueError(f"amp must be 'fp32' or 'bf16', got {self.amp!r}")
        if self.steps < 1 or self.grad_accum < 1 or self.lr <= 0:
            raise ValueError("steps and grad_accum must be >= 1 and lr > 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be 0 (off) or in (0, 1), got {self.ema_decay}")


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str | torch.device | None, dist_info: DistInfo) -> torch.device:
    """``None``/"auto": this rank's GPU (cuda:LOCAL_RANK) when CUDA is available, else the CPU.

    An explicit "cuda" without CUDA raises a ValueError that says so, rather than training on the CPU.
    """
    if device is None or device == "auto":
        return torch.device(f"cuda:{dist_info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but this torch build sees no CUDA GPU; use 'cpu' or 'auto'")
        if dev.index is None:
            dev = torch.device(f"cuda:{dist_info.local_rank}")
        if dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return dev


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1).

    ``backend``: "gloo" for CPU training, "nccl" for GPU training; None picks NCCL when CUDA is available.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _rows(examples: Sequence[Example], stage: StageConfig, rng: np.random.Generator):
    """Split drawn examples into the stage's T2I, LM and MMU rows."""
    t2i_ex = examples[: stage.batch_t2i]
    lm_ex = examples[stage.batch_t2i: stage.batch_t2i + stage.batch_lm]
    mmu_ex = examples[stage.batch_t2i + stage.batch_lm:]
    t2i = [(e.codes, e.class_name if stage.t2i_text == "class" else e.caption) for e in t2i_ex]
    lm = [e.text or e.caption for e in lm_ex]
    mmu = []
    for e in mmu_ex:
        use_qa = e.qa and (stage.mmu_kind == "qa" or (stage.mmu_kind == "mixed" and rng.random() < 0.5))
        if use_qa:
            q, a = e.qa[int(rng.integers(len(e.qa)))]
            mmu.append((e.codes, q, a))
        else:
            mmu.append((e.codes, None, e.caption))
    return t2i, lm, mmu


class Trainer:
    """Trains a ShowoTransformer on ``examples`` (this rank's shard) for one stage."""

    def __init__(self, config: ShowoConfig, examples: Sequence[Example], out_dir: str | os.PathLike,
                 tokenizer=None, vq=None, seed: int = 0, dist_info: DistInfo | None = None,
                 progress: bool = True, device: str | torch.device | None = None):
        self.config = config
        self.device = resolve_device(device, dist_info or DistInfo(local_rank=int(os.environ.get("LOCAL_RANK", "0"))))
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # NCCL works on the current device
        self.dist = dist_info or init_distributed("nccl" if self.device.type == "cuda" else "gloo")
        self.examples = [e for i, e in enumerate(examples) if i % self.dist.world == self.dist.rank]
        if not self.examples:
            raise ValueError("no training examples on this rank")
        self.out_dir = Path(out_dir)
        self.tokenizer, self.vq, self.seed, self.progress = tokenizer, vq, seed, progress

    def _model(self, init_from: str | os.PathLike | None) -> ShowoTransformer:
        if init_from is not None:
            model = load_showo(init_from)
            if model.showo_config != self.config:
                raise ValueError(f"checkpoint {init_from} has a different config than this run")
            return model.to(self.device).train()
        torch.manual_seed(self.seed)  # initialised on the CPU: the same first weights on any device
        return ShowoTransformer(self.config.transformer).to(self.device).train()

    def run(self, stage: StageConfig, init_from: str | os.PathLike | None = None,
            resume: bool = True, stop_after: int | None = None) -> Path:
        """Train one stage; returns its checkpoint directory ``out_dir/<stage.name>``.

        ``init_from`` starts from another checkpoint (the previous stage); with ``resume`` an
        interrupted run of this stage continues from its last saved step and optimizer state,
        giving the same weights as an uninterrupted run. ``stop_after`` ends early (and saves)
        at that step, for time-sliced training.
        """
        ckpt = self.out_dir / stage.name
        state_file = ckpt / "trainer_state.json"
        start = 0
        if resume and state_file.is_file():
            state = _read_state(state_file)
            if state.get("done"):
                return ckpt
            start, init_from = state["step"], ckpt
        model = self._model(init_from)
        optimizer = make_optimizer(model, stage.lr, stage.weight_decay)
        if start:
            if not (ckpt / "optimizer.safetensors").is_file():
                raise CheckpointError(
                    f"missing {ckpt / 'optimizer.safetensors'}: cannot resume at step {start} with the optimizer "
                    f"state it had (a fresh AdamW state would not reproduce an uninterrupted run); restore the "
                    f"file, or start from this checkpoint with init_from and resume=False")
            load_optimizer(optimizer, ckpt)
        ema = WeightEMA(model, stage.ema_decay) if stage.ema_decay else None
        if ema is not None and start:
            ema.load(ckpt)
        net: torch.nn.Module = model
        if self.dist.world > 1:
            on_gpu = self.device.type == "cuda"
            net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[self.device.index] if on_gpu else None)
        builder = BatchBuilder(self.config, stage.cond_dropout)
        stage_key = zlib.crc32(stage.name.encode())
        per_step = stage.batch_t2i + stage.batch_lm + stage.batch_mmu
        log = self.out_dir / "metrics.jsonl"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        bar = tqdm(range(start, stage.steps), desc=f"train {stage.name}", disable=not (self.progress and self.dist.is_main),
                   initial=start, total=stage.steps)
        t0, tokens = time.perf_counter(), 0
        for step in bar:
            rng = np.random.default_rng([self.seed, self.dist.rank, stage_key, step])  # resumable stream
            lr = cosine_lr(step, stage.steps, stage.warmup, stage.lr, stage.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            totals = np.zeros(4)
            for micro in range(stage.grad_accum):
                picks = rng.integers(0, len(self.examples), per_step)
                batch = builder.build(rng, *_rows([self.examples[i] for i in picks], stage, rng))
                sync = micro == stage.grad_accum - 1 or self.dist.world == 1
                ctx = net.no_sync() if not sync else contextlib.nullcontext()
                with ctx:
                    ids, mask, labels = (t.to(self.device, non_blocking=True)
                                         for t in (batch.input_ids, batch.attention_mask, batch.labels))
                    with _autocast(stage.amp, self.device):
                        logits = net(ids, attention_mask=mask)
                    losses = showo_losses(logits.float(), labels, batch.n_t2i, batch.n_lm, batch.n_mmu,
                                          self.config.text_block_len)
                    (losses.total / stage.grad_accum).backward()
                totals += [float(v.detach()) for v in (losses.total, losses.t2i, losses.lm, losses.mmu)]
                tokens += batch.num_tokens
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), stage.max_grad_norm))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update()
            totals /= stage.grad_accum
            if self.dist.is_main:
                rate = tokens * self.dist.world / max(1e-9, time.perf_counter() - t0)
                record = {"stage": stage.name, "step": step + 1, "loss": totals[0], "loss_t2i": totals[1],
                          "loss_lm": totals[2], "loss_mmu": totals[3], "lr": lr, "grad_norm": grad_norm,
                          "tokens_per_s": rate}
                with open(log, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
                bar.set_postfix(loss=f"{totals[0]:.3f}", t2i=f"{totals[1]:.3f}", mmu=f"{totals[3]:.3f}")
            last = step + 1 == stage.steps
            if last and ema is not None:
                ema.copy_to_model()
            if last or step + 1 == stop_after or (stage.save_every and (step + 1) % stage.save_every == 0):
                self._save(model, optimizer, ckpt, stage, step + 1, last, None if last else ema)
            if step + 1 == stop_after:
                break
        self.model = model
        return ckpt

    def _save(self, model: ShowoTransformer, optimizer, ckpt: Path, stage: StageConfig, step: int,
              done: bool, ema: WeightEMA | None = None) -> None:
        if self.dist.world > 1:
            import torch.distributed as dist

            dist.barrier()
        if not self.dist.is_main:
            return

        def extra(tmp: Path) -> None:
            save_optimizer(optimizer, tmp)
            if ema is not None:
                ema.save(tmp)
            state = {"step": step, "done": done, "stage": stage.to_dict(), "seed": self.seed}
            (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))

        save_pretrained(model, ckpt, self.config, tokenizer=self.tokenizer, vq=self.vq, extra=extra)


def _read_state(path: Path) -> dict:
    """trainer_state.json as a dict with an integer ``step`` >= 0; CheckpointError naming the file otherwise."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(state).__name__}")
    step = state.get("step")
    if not state.get("done") and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise CheckpointError(f"{path}: 'step' must be an integer >= 0, got {step!r:.80}")
    return state


def _autocast(amp: str, device: torch.device) -> torch.autocast:
    """The forward pass's autocast context on ``device`` for a stage's ``amp`` setting (disabled for "fp32")."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16")


def stage_from_dict(data: dict) -> StageConfig:
    return StageConfig(**{f.name: data[f.name] for f in dataclasses.fields(StageConfig) if f.name in data})
