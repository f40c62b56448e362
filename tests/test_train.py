"""Training loop: convergence, determinism, checkpoints, kill + resume, and 2-process DDP.

This file doubles as the script that the subprocess tests run (``python tests/test_train.py``
or ``torchrun ... tests/test_train.py``), so the toy problem is defined once.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from sciml.io import load_checkpoint, load_state, save_checkpoint
from sciml.train import NonFiniteLossError, TrainConfig, fit, reproducing_command, resolve_device, shard

HERE = Path(__file__).resolve()
TIMEOUT = 120


# ------------------------------------------------------------------ the toy problem
def make_model(dropout: float = 0.0) -> nn.Module:
    """A 2-layer float64 MLP ``(B, 4) -> (B, 1)`` initialised from its own generator."""
    with torch.random.fork_rng(devices=[]):  # default init draws from the global RNG; leave it alone
        model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 1)).double()
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return model


def sample_batch(step, generator, batch_size, rank, world_size):
    """Global batch ``x : (B, 4)``, ``y : (B, 1)`` with ``y = sum(sin(x))``; this rank's shard."""
    x = torch.randn(batch_size, 4, generator=generator, dtype=torch.float64)
    return shard((x, torch.sin(x).sum(1, keepdim=True)), rank, world_size)


def loss_fn(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def train(steps=30, dropout=0.0, kill_at=None, **config):
    """Adam + StepLR on the toy problem; ``kill_at`` SIGKILLs the process when that step starts."""
    model = make_model(dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.7)

    def sampler(step, *args):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return sample_batch(step, *args)

    cfg = TrainConfig(steps=steps, batch_size=config.pop("batch_size", 16), device="cpu", **config)
    return fit(model, loss_fn, sampler, cfg, optimizer=optimizer, scheduler=scheduler)


def main(argv=None):
    """Script entry: train, and let rank 0 save the final weights and losses to ``out``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--checkpoint-dir")
    parser.add_argument("--checkpoint-every", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    result = train(args.steps, args.dropout, args.kill_at, checkpoint_dir=args.checkpoint_dir,
                   checkpoint_every=args.checkpoint_every, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        tensors = dict(result.model.state_dict(), losses=torch.tensor(result.losses, dtype=torch.float64))
        save_checkpoint(args.out, tensors, {"start_step": result.start_step})


def run_script(*args, torchrun=False, expect_kill=False):
    """Run this file in a fresh interpreter (or under ``torchrun`` with 2 processes)."""
    bin_dir = Path(sys.executable).parent
    launcher = ([str(bin_dir / "torchrun"), "--standalone", "--nproc_per_node=2"] if torchrun
                else [sys.executable])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE.parents[1]))
    proc = subprocess.run([*launcher, str(HERE), *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env, cwd=HERE.parents[1])
    if expect_kill:
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def assert_weights_equal(a: nn.Module | dict, b: nn.Module | dict, atol=0.0):
    a = a.state_dict() if isinstance(a, nn.Module) else a
    b = b.state_dict() if isinstance(b, nn.Module) else b
    assert a.keys() <= b.keys()
    for key in a:
        if atol == 0.0:
            assert torch.equal(a[key], b[key]), key
        else:
            torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0.0)


# ------------------------------------------------------------------------ tests
def test_loss_decreases_with_progress_and_logging(caplog, capsys):
    caplog.set_level(logging.INFO, logger="sciml.train")
    result = train(steps=60, progress=True, log_every=20)
    assert "step 40/60 loss" in caplog.text and "60/60" in capsys.readouterr().err  # the tqdm bar
    assert result.steps == 60 and len(result.losses) == 60 and result.start_step == 0
    assert sum(result.losses[-10:]) < 0.3 * sum(result.losses[:10])
    assert result.checkpoint is None and result.wall_time > 0


def test_same_seed_same_weights_and_caller_rng_untouched():
    before = torch.get_rng_state()
    a, b = train(seed=3, dropout=0.2), train(seed=3, dropout=0.2)
    assert torch.equal(torch.get_rng_state(), before)
    assert_weights_equal(a.model, b.model)
    assert a.losses == b.losses
    c = train(seed=4, dropout=0.2)
    assert not torch.equal(a.model[0].weight, c.model[0].weight)


def test_checkpoints_are_written_atomically(tmp_path):
    result = train(steps=12, checkpoint_dir=tmp_path, checkpoint_every=5)
    assert result.checkpoint == tmp_path / "last.safetensors"
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]
    state, config = load_state(result.checkpoint)
    assert state["step"] == 12 and config["checkpoint_every"] == 5 and config["world_size"] == 1
    assert state["losses"].tolist() == result.losses
    assert_weights_equal(state["model"], result.model)


def test_resume_in_process_matches_uninterrupted(tmp_path):
    full = train(steps=20, dropout=0.2)
    train(steps=9, dropout=0.2, checkpoint_dir=tmp_path)
    resumed = train(steps=20, dropout=0.2, checkpoint_dir=tmp_path, resume=True)
    assert resumed.start_step == 9 and resumed.losses == full.losses
    assert_weights_equal(resumed.model, full.model)
    again = train(steps=20, dropout=0.2, checkpoint_dir=tmp_path, resume=True)  # nothing left to do
    assert again.start_step == 20 and again.losses == full.losses
    assert_weights_equal(again.model, full.model)


def test_time_limit_stops_early_with_a_checkpoint_and_matches_a_short_run(tmp_path):
    limited = train(steps=10_000, checkpoint_dir=tmp_path, time_limit_s=0.3)
    assert 0 < limited.steps < 10_000 and len(limited.losses) == limited.steps
    state, _ = load_state(limited.checkpoint)
    assert state["step"] == limited.steps
    short = train(steps=limited.steps)  # the recipe "steps = what was done" reproduces the run
    assert short.losses == limited.losses
    with pytest.raises(ValueError, match="time_limit_s"):
        TrainConfig(time_limit_s=0)
    assert reproducing_command("sciml train x", ["--steps", "9", "--time-limit=5", "--lr", "1"], 7) \
        == "sciml train x --lr 1 --steps 7"


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    result = train(steps=5, checkpoint_dir=tmp_path / "new", resume=True)
    assert result.start_step == 0 and (tmp_path / "new" / "last.safetensors").exists()


def test_nonfinite_loss_names_step_and_keeps_checkpoint(tmp_path):
    calls = []

    def bad_loss(model, batch):  # NaN on the third call, i.e. at step 2
        calls.append(None)
        return loss_fn(model, batch) * (float("nan") if len(calls) == 3 else 1.0)

    cfg = TrainConfig(steps=10, batch_size=8, device="cpu", checkpoint_dir=tmp_path, checkpoint_every=1)
    with pytest.raises(NonFiniteLossError, match=r"nan at step 2.*lower the learning rate.*grad_clip.*"
                                                 r"step 2\) was kept"):
        fit(make_model(), bad_loss, sample_batch, cfg)
    state, _ = load_state(tmp_path / "last.safetensors")
    assert state["step"] == 2 and len(state["losses"]) == 2


def test_config_validation_and_devices():
    with pytest.raises(ValueError, match="checkpoint_dir"):
        TrainConfig(resume=True)
    with pytest.raises(ValueError, match="steps=-1"):
        TrainConfig(steps=-1)
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_shard_splits_the_global_batch():
    x = torch.arange(12.0).reshape(6, 2)
    parts = [shard({"x": x, "pair": (x, x[:, 0])}, r, 3) for r in range(3)]
    assert torch.equal(torch.cat([p["x"] for p in parts]), x)
    assert torch.equal(torch.cat([p["pair"][1] for p in parts]), x[:, 0])
    with pytest.raises(ValueError, match="not divisible by world_size=4"):
        shard(x, 0, 4)


def test_killed_run_resumes_to_same_weights(tmp_path):
    ckpt, out = tmp_path / "ckpt", tmp_path / "out.safetensors"
    common = ["--steps", 20, "--dropout", 0.2, "--checkpoint-dir", ckpt, "--checkpoint-every", 5]
    run_script(out, *common, "--kill-at", 12, expect_kill=True)
    assert [p.name for p in ckpt.iterdir()] == ["last.safetensors"]
    assert load_state(ckpt / "last.safetensors")[0]["step"] == 10
    run_script(out, *common, "--resume")
    resumed, meta = load_checkpoint(out)
    assert meta["start_step"] == 10
    full = train(steps=20, dropout=0.2)
    assert_weights_equal(full.model, resumed)
    assert resumed["losses"].tolist() == full.losses


def test_ddp_two_processes_match_single_process(tmp_path):
    ckpt, out = tmp_path / "ckpt", tmp_path / "out.safetensors"
    run_script(out, "--steps", 20, "--checkpoint-dir", ckpt, "--checkpoint-every", 10, torchrun=True)
    ddp, _ = load_checkpoint(out)
    single = train(steps=20)
    assert_weights_equal(single.model, ddp, atol=1e-10)
    torch.testing.assert_close(ddp["losses"], torch.tensor(single.losses, dtype=torch.float64),
                               atol=1e-10, rtol=0.0)
    state, config = load_state(ckpt / "last.safetensors")
    assert config["world_size"] == 2 and state["step"] == 20
    assert [p.name for p in ckpt.iterdir()] == ["last.safetensors"]


if __name__ == "__main__":
    main()
