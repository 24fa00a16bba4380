import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from showo_sdk.model.showo_io import load_showo
from showo_sdk.prompting import IGNORE_INDEX
from showo_sdk.train.batches import BatchBuilder
from showo_sdk.train.losses import showo_losses
from showo_sdk.train.masking import mask_image_tokens
from showo_sdk.train.optim import cosine_lr, load_optimizer, make_optimizer, param_groups, save_optimizer
from showo_sdk.train.trainer import DistInfo, Example, StageConfig, Trainer, resolve_device

ROOT = Path(__file__).resolve().parents[2]


def examples(cfg, n=12, seed=0):
    rng = np.random.default_rng(seed)
    k, tv = cfg.layout.codebook_size, cfg.layout.text_vocab_size
    out = []
    for i in range(n):
        cap = rng.integers(1, tv, 3).tolist()
        out.append(Example(codes=rng.integers(0, k, cfg.num_image_tokens), caption=cap, class_name=cap[:1],
                           qa=[(rng.integers(1, tv, 2).tolist(), [int(rng.integers(1, tv))])]))
    return out


def test_masking_counts_and_distribution():
    rng = np.random.default_rng(0)
    codes = np.zeros((2000, 64), np.int64)
    canvas = mask_image_tokens(codes, 99, rng)
    counts = (canvas == 99).sum(1)
    assert counts.min() >= 1 and counts.max() <= 64
    # ratio = cos(pi/2 t), t ~ U(0,1): E[ratio] = 2/pi
    assert abs(counts.mean() / 64 - 2 / np.pi) < 0.02


def test_batch_layout(tiny_cfg):
    b = BatchBuilder(tiny_cfg, cond_dropout=0.0)
    ex = examples(tiny_cfg, 4)
    rng = np.random.default_rng(0)
    batch = b.build(rng, t2i=[(e.codes, e.caption) for e in ex[:2]], lm=[ex[2].caption],
                    mmu=[(ex[3].codes, None, ex[3].caption)])
    L = tiny_cfg.t2i_seq_len
    assert batch.input_ids.shape == (4, L) and batch.attention_mask.shape == (4, 1, L, L)
    assert (batch.n_t2i, batch.n_lm, batch.n_mmu) == (2, 1, 1)
    t = tiny_cfg.text_block_len
    img = batch.input_ids[:2, t + 1: t + 1 + tiny_cfg.num_image_tokens]
    lab = batch.labels[:2, t + 1: t + 1 + tiny_cfg.num_image_tokens]
    masked = img == tiny_cfg.layout.mask_id
    assert masked.any() and ((lab != IGNORE_INDEX) == masked).all()
    assert not batch.attention_mask[2, 0].triu(1).any()  # LM row causal


def test_losses_respect_ignore_and_coefficients():
    logits = torch.randn(3, 6, 10)
    labels = torch.full((3, 6), IGNORE_INDEX)
    labels[0, 4] = 2
    labels[1, 3] = 5
    labels[2, 5] = 7
    out = showo_losses(logits, labels, 1, 1, 1, t2i_start=4)
    ce = torch.nn.functional.cross_entropy
    assert torch.isclose(out.t2i, ce(logits[0, 4:5], labels[0, 4:5]))
    assert torch.isclose(out.lm, ce(logits[1, 2:3], labels[1, 3:4]))
    assert torch.isclose(out.mmu, ce(logits[2, 4:5], labels[2, 5:6]))
    assert torch.isclose(out.total, out.t2i + 0.1 * out.lm + out.mmu)


def test_no_decay_on_biases_and_norms(tiny_model):
    decay, no_decay = param_groups(tiny_model, 0.01)
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0


def test_cosine_lr_shape():
    lrs = [cosine_lr(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[50] < lrs[10] and lrs[-1] == pytest.approx(0.1, abs=0.01)


def test_optimizer_state_round_trip(tmp_path, tiny_model):
    opt = make_optimizer(tiny_model, 1e-3)
    tiny_model(torch.randint(0, 10, (1, 4))).sum().backward()
    opt.step()
    opt.zero_grad()
    save_optimizer(opt, tmp_path)
    opt2 = make_optimizer(tiny_model, 1e-3)
    load_optimizer(opt2, tmp_path)
    a, b = opt.state_dict(), opt2.state_dict()
    for idx in a["state"]:
        for name, val in a["state"][idx].items():
            assert torch.equal(torch.as_tensor(val), torch.as_tensor(b["state"][idx][name]))
    assert a["param_groups"] == b["param_groups"]
    assert {p.name for p in tmp_path.iterdir()} == {"optimizer.safetensors", "optimizer.json"}


@pytest.mark.parametrize("amp", ["fp32", "bf16"])
def test_training_reduces_loss_and_resumes(tmp_path, tiny_cfg, amp):
    data = examples(tiny_cfg, 6)
    stage = StageConfig(name="s1", steps=30, lr=3e-3, warmup=3, batch_t2i=2, batch_lm=1, batch_mmu=2,
                        mmu_kind="mixed", save_every=15, amp=amp)
    trainer = Trainer(tiny_cfg, data, tmp_path, seed=0, progress=False, device="cpu")
    ckpt = trainer.run(stage)
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(log) == 30 and log[-1]["step"] == 30
    assert np.mean([r["loss"] for r in log[-5:]]) < 0.8 * np.mean([r["loss"] for r in log[:5]])
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state == {**state, "step": 30, "done": True}
    model = load_showo(ckpt)
    assert model.showo_config == tiny_cfg
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps fp32 master weights
    # a second stage starts from the first one's weights
    stage2 = StageConfig(name="s2", steps=2, lr=1e-3, warmup=1, batch_t2i=1, batch_lm=0, batch_mmu=1, mmu_kind="qa")
    ckpt2 = Trainer(tiny_cfg, data, tmp_path, seed=1, progress=False, device="cpu").run(stage2, init_from=ckpt)
    assert load_showo(ckpt2).showo_config == tiny_cfg


def test_stage_config_rejects_unknown_amp():
    with pytest.raises(ValueError, match="amp must be 'fp32' or 'bf16'"):
        StageConfig(name="s", steps=1, lr=1e-3, amp="fp16")


def test_resume_matches_uninterrupted(tmp_path, tiny_cfg):
    data = examples(tiny_cfg, 6)
    stage = StageConfig(name="s", steps=6, lr=1e-3, warmup=1, batch_t2i=2, batch_lm=1, batch_mmu=1)
    Trainer(tiny_cfg, data, tmp_path / "a", progress=False, device="cpu").run(stage)
    Trainer(tiny_cfg, data, tmp_path / "b", progress=False, device="cpu").run(stage, stop_after=3)
    assert json.loads((tmp_path / "b" / "s" / "trainer_state.json").read_text())["step"] == 3
    Trainer(tiny_cfg, data, tmp_path / "b", progress=False, device="cpu").run(stage)  # resumes at step 3
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 6
    sa = load_showo(tmp_path / "a" / "s").state_dict()
    sb = load_showo(tmp_path / "b" / "s").state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun test written for Linux")
def test_ddp_two_processes_identical_weights(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(f"""
import sys, json, hashlib
sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'tests')!r})
import torch
from conftest import tiny_config
from tests.train.test_trainer import examples
from showo_sdk.train.trainer import Trainer, StageConfig, init_distributed
cfg = tiny_config()
info = init_distributed('gloo')
tr = Trainer(cfg, examples(cfg, 8), {str(tmp_path)!r}, dist_info=info, progress=False, device="cpu")
tr.run(StageConfig(name='d', steps=3, lr=1e-3, warmup=1, batch_t2i=2, batch_lm=1, batch_mmu=1))
h = hashlib.sha256(b''.join(p.detach().numpy().tobytes() for p in tr.model.parameters())).hexdigest()
open({str(tmp_path)!r} + f'/rank{{info.rank}}.txt', 'w').write(h + ' ' + str(len(tr.examples)))
""")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{ROOT}:{ROOT / 'tests'}")
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    h0, n0 = (tmp_path / "rank0.txt").read_text().split()
    h1, n1 = (tmp_path / "rank1.txt").read_text().split()
    assert h0 == h1 and int(n0) == int(n1) == 4  # identical weights, disjoint halves of the data
    assert (tmp_path / "d" / "model.safetensors").is_file()


def test_ema_stage_ends_on_the_average_and_resumes(tmp_path, tiny_cfg):
    """A stage with ema_decay ends on the average of its per-step weights (from its initial ones);
    interrupted and resumed, it ends on the same average (ema.safetensors in the mid-stage checkpoint)."""
    data = examples(tiny_cfg, 6)
    start = Trainer(tiny_cfg, data, tmp_path / "init", progress=False, device="cpu").run(
        StageConfig(name="s0", steps=1, lr=1e-3, warmup=1, batch_t2i=2, batch_lm=1, batch_mmu=1))
    common = dict(steps=4, lr=3e-3, warmup=1, batch_t2i=2, batch_lm=1, batch_mmu=1)
    decay = 0.6
    # the raw trajectory, one step at a time (resuming is exact: test_resume_matches_uninterrupted)
    raw = StageConfig(name="s", **common)
    weights = [load_showo(start).state_dict()]
    for k in range(1, 5):
        Trainer(tiny_cfg, data, tmp_path / "raw", progress=False, device="cpu").run(raw, init_from=start, stop_after=k)
        weights.append(load_showo(tmp_path / "raw" / "s").state_dict())
    want = {name: w.clone() for name, w in weights[0].items()}
    for w in weights[1:]:
        for name in want:
            want[name].lerp_(w[name], 1 - decay)

    stage = StageConfig(name="s", ema_decay=decay, **common)
    trainer = Trainer(tiny_cfg, data, tmp_path / "a", progress=False, device="cpu")
    got = load_showo(trainer.run(stage, init_from=start)).state_dict()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-6)
    assert not torch.equal(got["showo.lm_head.weight"], weights[-1]["showo.lm_head.weight"])

    Trainer(tiny_cfg, data, tmp_path / "b", progress=False, device="cpu").run(stage, init_from=start, stop_after=2)
    assert (tmp_path / "b" / "s" / "ema.safetensors").is_file()
    resumed = load_showo(Trainer(tiny_cfg, data, tmp_path / "b", progress=False, device="cpu").run(stage)).state_dict()
    assert all(torch.equal(resumed[k], got[k]) for k in got)
    # a finished stage holds the average as its weights and no separate average file
    assert not (tmp_path / "a" / "s" / "ema.safetensors").exists()
    assert not (tmp_path / "b" / "s" / "ema.safetensors").exists()


def test_stage_config_rejects_bad_ema_decay():
    with pytest.raises(ValueError, match="ema_decay must be 0"):
        StageConfig(name="s", steps=1, lr=1e-3, ema_decay=1.0)


# ---- where the trainer runs -------------------------------------------------------------------------
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")


def test_auto_device_is_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None, DistInfo()) == torch.device("cpu")
    assert resolve_device("auto", DistInfo()) == torch.device("cpu")


def test_auto_device_takes_this_ranks_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto", DistInfo(rank=1, world=2, local_rank=1)) == torch.device("cuda:1")


def test_explicit_cuda_without_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        resolve_device("cuda", DistInfo())


@pytest.mark.parametrize("bad", ["tpu", "gpu0", "meta"])
def test_unknown_device_is_refused(bad):
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda'"):
        resolve_device(bad, DistInfo())


def test_cli_train_refuses_cuda_on_a_cpu_machine(tmp_path, monkeypatch, capsys):
    from showo_sdk.train.__main__ import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        main(["train", "--recipe", "tiny", "--out", str(tmp_path / "run"), "--quiet", "--device", "cuda"])


@CUDA
def test_stage_trains_on_the_gpu_and_matches_the_cpu_start(tmp_path, tiny_cfg):
    """A bf16 stage on CUDA lowers the loss, saves CPU-loadable fp32 weights, resumes, and starts where the CPU does."""
    data = examples(tiny_cfg, 6)
    stage = StageConfig(name="s", steps=30, lr=3e-3, warmup=3, batch_t2i=2, batch_lm=1, batch_mmu=2,
                        mmu_kind="mixed", save_every=10, amp="bf16", ema_decay=0.9)
    gpu = Trainer(tiny_cfg, data, tmp_path / "gpu", seed=0, progress=False, device="cuda")
    assert gpu.device.type == "cuda"
    ckpt = gpu.run(stage)
    assert next(gpu.model.parameters()).is_cuda
    log = [json.loads(line) for line in (tmp_path / "gpu" / "metrics.jsonl").read_text().splitlines()]
    assert np.mean([r["loss"] for r in log[-5:]]) < 0.8 * np.mean([r["loss"] for r in log[:5]])
    model = load_showo(ckpt)
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())
    # the first step's loss is the CPU's (same initial weights and batch; bf16 rounding apart)
    one = StageConfig(name="one", steps=1, lr=1e-3, warmup=1, batch_t2i=2, batch_lm=1, batch_mmu=2)
    Trainer(tiny_cfg, data, tmp_path / "c1", seed=0, progress=False, device="cpu").run(one)
    Trainer(tiny_cfg, data, tmp_path / "g1", seed=0, progress=False, device="cuda").run(one)
    cpu_loss = json.loads((tmp_path / "c1" / "metrics.jsonl").read_text())["loss"]
    gpu_loss = json.loads((tmp_path / "g1" / "metrics.jsonl").read_text())["loss"]
    assert abs(cpu_loss - gpu_loss) <= 1e-3 * abs(cpu_loss)
    # an interrupted GPU stage resumes (optimizer state and EMA reloaded onto the GPU) to the same weights
    Trainer(tiny_cfg, data, tmp_path / "r", seed=0, progress=False, device="cuda").run(stage, stop_after=10)
    resumed = Trainer(tiny_cfg, data, tmp_path / "r", seed=0, progress=False, device="cuda").run(stage)
    a, b = load_showo(ckpt).state_dict(), load_showo(resumed).state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-5
