"""One small training loop shared by the learned solvers (LPN, DGNO, DCDM, OReX, UMat, ...).

:func:`fit` runs ``config.steps`` optimiser steps of ``loss_fn(model, sample_batch(...))``
with

* **reproducible randomness**: at step ``i`` the data generator handed to
  ``sample_batch`` and the global torch RNG (dropout, ...) are reseeded from
  ``(config.seed, i)``. A step's batch is therefore a pure function of the seed and the
  step, which is what makes a resumed run bitwise equal to an uninterrupted one. The
  caller's global RNG state is restored when :func:`fit` returns.
* **periodic atomic checkpoints** (model, optimizer, scheduler, step, loss history) in
  ``config.checkpoint_dir / "last.safetensors"``; ``config.resume=True`` continues from it.
* **data parallelism**: launched by ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in
  the environment), :func:`fit` joins a process group (gloo on CPU, nccl on CUDA), wraps
  the model in ``DistributedDataParallel`` and lets each rank process its shard of the
  global batch. Only rank 0 writes checkpoints and shows the progress bar.

Example
-------
>>> def sample_batch(step, generator, batch_size, rank, world_size):
...     x = torch.randn(batch_size, 3, generator=generator, dtype=torch.float64)
...     return shard((x, x.sum(1, keepdim=True)), rank, world_size)
>>> def loss_fn(model, batch):
...     x, y = batch
...     return ((model(x) - y) ** 2).mean()
>>> model = torch.nn.Linear(3, 1, dtype=torch.float64)
>>> result = fit(model, loss_fn, sample_batch, TrainConfig(steps=200, lr=0.05, device="cpu"))
>>> result.losses[-1] < 1e-3
True
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from sciml.io.checkpoint import load_state, save_state

__all__ = ["TrainConfig", "TrainResult", "NonFiniteLossError", "fit", "resolve_device", "shard",
           "step_seed", "reproducing_command", "CHECKPOINT_NAME"]

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.safetensors"


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step and the fix."""


@dataclass
class TrainConfig:
    """Settings of :func:`fit`.

    Attributes
    ----------
    steps : int
        Total number of optimiser steps (a resumed run stops at the same total).
    lr : float
        Learning rate of the default Adam optimiser (ignored if an optimiser is given).
    batch_size : int
        *Global* batch size, split evenly over the ``torchrun`` processes.
    seed : int
        Seed of all randomness inside :func:`fit` (data sampling, dropout).
    device : str or torch.device
        ``"auto"`` picks CUDA when available (``cuda:LOCAL_RANK`` under ``torchrun``).
    checkpoint_dir : str or Path, optional
        Folder of ``last.safetensors``; no checkpoints when ``None``.
    checkpoint_every : int
        Write a checkpoint every this many steps (``0``: only after the last step).
    resume : bool
        Continue from ``checkpoint_dir/last.safetensors`` when it exists.
    progress : bool
        Show a tqdm progress bar (rank 0 only).
    grad_clip : float, optional
        Clip the global gradient norm to this value.
    log_every : int
        Log the loss every this many steps at INFO level (``0``: never).
    time_limit_s : float, optional
        Stop after the first step that ends more than this many seconds after the call
        began, with a checkpoint; ``TrainResult.steps`` tells how many steps were done
        (rerunning with ``steps`` set to that number reproduces the run exactly).
    """

    steps: int = 1000
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    device: str | torch.device = "auto"
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int = 0
    resume: bool = False
    progress: bool = False
    grad_clip: float | None = None
    log_every: int = 0
    time_limit_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "checkpoint_every", "log_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)} is negative; use a value >= 0")
        if self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"TrainConfig needs batch_size >= 1 and lr > 0, got batch_size={self.batch_size}, "
                             f"lr={self.lr}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"TrainConfig.grad_clip={self.grad_clip} must be positive or None")
        if self.time_limit_s is not None and self.time_limit_s <= 0:
            raise ValueError(f"TrainConfig.time_limit_s={self.time_limit_s} must be positive or None")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("TrainConfig.resume=True needs a checkpoint_dir to resume from")

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict (stored in every checkpoint)."""
        return {k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
                for k, v in dataclasses.asdict(self).items()}


@dataclass
class TrainResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    model : nn.Module
        The trained model (unwrapped from DDP), on the training device.
    losses : list of float
        Loss of every step from step 0 (including steps done before a resume); under
        DDP the mean over all ranks, i.e. the loss of the global batch.
    steps : int
        Total number of steps done.
    start_step : int
        The step this call started at (``> 0`` after a resume).
    wall_time : float
        Seconds spent in this call.
    checkpoint : Path or None
        The checkpoint file, if checkpoints were enabled.
    """

    model: nn.Module
    losses: list[float] = field(default_factory=list, repr=False)
    steps: int = 0
    start_step: int = 0
    wall_time: float = 0.0
    checkpoint: Path | None = None


# ------------------------------------------------------------------------ helpers
def reproducing_command(prog: str, argv: list[str], steps_done: int) -> str:
    """The command ``prog ARGV`` with ``--time-limit`` dropped and ``--steps`` set to ``steps_done``.

    A run stopped by :attr:`TrainConfig.time_limit_s` is reproduced exactly by this command,
    because every step's batch depends only on the seed and the step.
    """
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--time-limit", "--steps"):
            skip = True
        elif not arg.startswith(("--time-limit=", "--steps=")):
            kept.append(arg)
    return " ".join([prog, *kept, "--steps", str(steps_done)])


def resolve_device(device: str | torch.device = "auto", local_rank: int | None = None) -> torch.device:
    """Turn ``"auto"``/``"cpu"``/``"cuda"``/``"cuda:1"`` into a concrete ``torch.device``.

    ``"auto"`` picks CUDA when available. A CUDA device without an index gets
    ``local_rank`` (one GPU per ``torchrun`` process) or the current device.
    """
    if isinstance(device, str) and device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} was requested but CUDA is not available; "
                             "use device='cpu' or device='auto'")
        if dev.index is None:
            dev = torch.device("cuda", local_rank if local_rank is not None else torch.cuda.current_device())
    return dev


def _map_tensors(fn: Callable[[torch.Tensor], torch.Tensor], obj: Any) -> Any:
    """Apply ``fn`` to every tensor inside nested tuples, lists and dicts."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {key: _map_tensors(fn, value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(fn, value) for value in obj)
    return obj


def shard(batch: Any, rank: int, world_size: int) -> Any:
    """This rank's part of a global batch: rows ``[rank*n, (rank+1)*n)`` of every tensor.

    Parameters
    ----------
    batch : Tensor or nested tuple/list/dict of Tensors, each ``(B, ...)``
    rank, world_size : int
        ``B`` must be divisible by ``world_size``.

    Returns
    -------
    The same structure with tensors ``(B // world_size, ...)``.
    """
    def part(t: torch.Tensor) -> torch.Tensor:
        if t.shape[0] % world_size:
            raise ValueError(f"batch dimension {t.shape[0]} is not divisible by world_size={world_size}; "
                             "use a global batch_size that is a multiple of the number of processes")
        n = t.shape[0] // world_size
        return t[rank * n:(rank + 1) * n]
    return _map_tensors(part, batch)


def step_seed(seed: int, step: int, stream: str = "data") -> int:
    """A 63-bit seed derived from ``(seed, step, stream)``; independent streams for data and dropout."""
    digest = hashlib.blake2b(f"{seed}/{step}/{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _seed_global(seed: int, device: torch.device) -> None:
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)


@dataclass
class _Dist:
    rank: int
    world_size: int
    device: torch.device


@contextlib.contextmanager
def _distributed(device: str | torch.device) -> Iterator[_Dist]:
    """Join the ``torchrun`` process group if there is one; leave it cleanly afterwards."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():  # the caller owns the group
        yield _Dist(dist.get_rank(), dist.get_world_size(), resolve_device(device, local_rank))
        return
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield _Dist(0, 1, resolve_device(device))
        return
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    try:
        logger.info("rank %d of %d on %s", dist.get_rank(), dist.get_world_size(), dev)
        yield _Dist(dist.get_rank(), dist.get_world_size(), dev)
        dist.barrier()  # only on success: a failed rank must not leave the others waiting
    finally:
        dist.destroy_process_group()


def _global_mean(value: torch.Tensor, world_size: int) -> float:
    if world_size > 1:
        value = value.clone()
        dist.all_reduce(value)
        value /= world_size
    return float(value)


def _training_state(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    step: int, losses: list[float]) -> dict[str, Any]:
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "step": step, "losses": torch.tensor(losses, dtype=torch.float64)}


def _resume(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
            config: TrainConfig) -> tuple[int, list[float]]:
    """Load ``path`` into model/optimizer/scheduler; return the step to continue at and the losses."""
    if not path.exists():
        logger.info("no checkpoint at %s; starting from step 0", path)
        return 0, []
    state, saved = load_state(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    for key in ("seed", "batch_size"):
        if saved.get(key) != getattr(config, key):
            logger.warning("resuming with %s=%s but %s was written with %s=%s; the run will differ "
                           "from an uninterrupted one", key, getattr(config, key), path, key, saved.get(key))
    logger.info("resumed from %s at step %d", path, state["step"])
    return int(state["step"]), state["losses"].tolist()


def _nonfinite(value: float, step: int, config: TrainConfig, path: Path | None, saved: int | None
               ) -> NonFiniteLossError:
    kept = (f"the last good checkpoint {path} (step {saved}) was kept" if saved is not None
            else "no checkpoint was written (set checkpoint_dir and checkpoint_every to keep progress)")
    return NonFiniteLossError(f"loss is {value} at step {step}; lower the learning rate (lr={config.lr}) "
                              f"or set grad_clip (e.g. grad_clip=1.0); {kept}")


# ---------------------------------------------------------------------------- fit
def fit(model: nn.Module, loss_fn: Callable[[nn.Module, Any], torch.Tensor],
        sample_batch: Callable[[int, torch.Generator, int, int, int], Any], config: TrainConfig,
        optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None) -> TrainResult:
    """Train ``model`` for ``config.steps`` steps with checkpoints, resume and optional DDP.

    Parameters
    ----------
    model : nn.Module
        Moved to the training device; its dtype is kept.
    loss_fn : callable ``(model, batch) -> Tensor ()``
        Scalar loss of this rank's batch. Under DDP it must be the *mean* over the
        local shard (DDP averages gradients over ranks), and ``model`` is the DDP wrapper.
    sample_batch : callable ``(step, generator, batch_size, rank, world_size) -> batch``
        This rank's part of the global batch of step ``step``: draw the global batch of
        ``batch_size`` samples from the CPU ``generator`` (reseeded from ``(seed, step)``
        before every call) and return :func:`shard` of it. Tensors in the returned
        (nested tuple/list/dict) batch are moved to the training device.
    config : TrainConfig
    optimizer : torch.optim.Optimizer, optional
        Defaults to ``Adam(model.parameters(), lr=config.lr)``.
    scheduler : learning-rate scheduler, optional
        Stepped once after every optimiser step; checkpointed with the rest.

    Returns
    -------
    TrainResult

    Raises
    ------
    NonFiniteLossError
        If the loss is NaN or infinite; the step is not applied and the last good
        checkpoint is kept.
    """
    started = time.perf_counter()
    path = Path(config.checkpoint_dir) / CHECKPOINT_NAME if config.checkpoint_dir is not None else None
    with _distributed(config.device) as ctx:
        if config.batch_size % ctx.world_size:
            raise ValueError(f"global batch_size={config.batch_size} is not divisible by the {ctx.world_size} "
                             "processes; choose a multiple of the number of processes")
        model.to(ctx.device).train()
        optimizer = optimizer if optimizer is not None else torch.optim.Adam(model.parameters(), lr=config.lr)
        start, losses = _resume(path, model, optimizer, scheduler, config) if config.resume else (0, [])
        net = model
        if ctx.world_size > 1:
            net = nn.parallel.DistributedDataParallel(
                model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        # the loop reseeds the global RNG (dropout) every step; the caller's state is restored after
        with torch.random.fork_rng(devices=[ctx.device.index] if ctx.device.type == "cuda" else []):
            _loop(net, model, loss_fn, sample_batch, config, optimizer, scheduler, ctx, start, losses, path, started)
    return TrainResult(model=model, losses=losses, steps=max(start, len(losses)), start_step=start,
                       wall_time=time.perf_counter() - started, checkpoint=path)


def _out_of_time(config: TrainConfig, started: float, ctx: _Dist) -> bool:
    """Whether ``config.time_limit_s`` has passed (on any rank: all ranks stop together)."""
    if config.time_limit_s is None:
        return False
    over = float(time.perf_counter() - started > config.time_limit_s)
    if ctx.world_size == 1:
        return bool(over)
    return _global_mean(torch.tensor(over, device=ctx.device), ctx.world_size) > 0


def _loop(net: nn.Module, model: nn.Module, loss_fn: Callable, sample_batch: Callable, config: TrainConfig,
          optimizer: torch.optim.Optimizer, scheduler: Any, ctx: _Dist, start: int, losses: list[float],
          path: Path | None, started: float) -> None:
    """The steps ``start .. config.steps - 1`` (fewer past ``config.time_limit_s``); appends to
    ``losses`` and writes checkpoints."""
    generator = torch.Generator(device="cpu")
    saved = start if config.resume and start > 0 else None
    every = config.checkpoint_every or config.steps
    with tqdm(total=config.steps, initial=start, desc="train", dynamic_ncols=True,
              disable=not (config.progress and ctx.rank == 0)) as bar:
        for step in range(start, config.steps):
            generator.manual_seed(step_seed(config.seed, step, "data"))
            _seed_global(step_seed(config.seed, step, f"rank{ctx.rank}"), ctx.device)
            batch = _map_tensors(lambda t: t.to(ctx.device),
                                 sample_batch(step, generator, config.batch_size, ctx.rank, ctx.world_size))
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net, batch)
            value = _global_mean(loss.detach(), ctx.world_size)
            if not math.isfinite(value):
                raise _nonfinite(value, step, config, path, saved)
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            losses.append(value)
            done = step + 1
            bar.set_postfix(loss=f"{value:.3e}", refresh=False)
            bar.update()
            if ctx.rank == 0 and config.log_every and done % config.log_every == 0:
                logger.info("step %d/%d loss %.6e", done, config.steps, value)
            out_of_time = _out_of_time(config, started, ctx)
            if path is not None and (done % every == 0 or done == config.steps or out_of_time):
                if ctx.rank == 0:
                    save_state(path, _training_state(model, optimizer, scheduler, done, losses),
                               config={**config.to_json(), "world_size": ctx.world_size})
                saved = done
            if out_of_time:
                logger.info("time limit of %.0f s reached after step %d", config.time_limit_s, done)
                break
