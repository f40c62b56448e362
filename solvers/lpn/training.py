"""Training an LPN as a denoiser: proximal-matching loss and the paper's schedule.

The paper (Fang et al. 2024) trains with

1. an l1 pretraining phase at learning rate 1e-3, then
2. the proximal-matching loss ``1 - exp(-(||f(y) - x|| / gamma)^2)`` (norm over the whole
   sample) at learning rate 1e-4, in 4 equal stages with ``gamma = gamma_min * 8, 4, 2, 1``,
   ``gamma_min = 0.08 sqrt(H W C)`` by default,

with Adam and the constrained weights clamped to ``>= 0`` after every step. :class:`Schedule`
encodes this for any total number of steps; ``loss="l2"`` or ``"l1"`` trains with that loss
throughout instead (for comparison). Training runs through :func:`sciml.train.fit`, so it is
reproducible from a seed, checkpointed atomically and resumable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from sciml.nn.icnn import LPN
from sciml.train import TrainConfig, TrainResult, fit, shard

__all__ = ["proximal_matching_loss", "l1_loss", "l2_loss", "Schedule", "ProjectedAdam", "train_lpn", "LOSSES"]

LOSSES = ("pm", "l2", "l1")


def proximal_matching_loss(pred: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """``mean_b (1 - exp(-(||pred_b - target_b|| / gamma)^2))``, norms over all but the batch axis.

    Parameters
    ----------
    pred, target : (B, ...) tensors
    gamma : float
        Width; as ``gamma -> 0`` the minimiser becomes the posterior mode (the MAP denoiser).
    """
    dist = (pred - target).flatten(1).norm(dim=1)
    return (1.0 - torch.exp(-(dist / gamma) ** 2)).mean()


def l2_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error (its minimiser is the MMSE denoiser)."""
    return (pred - target).pow(2).mean()


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return (pred - target).abs().mean()


@dataclass
class Schedule:
    """Loss, ``gamma`` and learning rate as functions of the step.

    Attributes
    ----------
    steps : int
        Total steps.
    loss : str
        ``"pm"`` (paper: l1 pretraining then proximal matching), ``"l2"`` or ``"l1"``.
    gamma_min : float
        Smallest ``gamma`` of the proximal-matching stages.
    pretrain_fraction : float
        Fraction of the steps spent in l1 pretraining (paper: 0.5, 20k of 40k steps).
    pretrain_lr, lr : float
        Learning rates of the pretraining and the proximal-matching phase (paper: 1e-3, 1e-4).
        For ``"l2"``/``"l1"`` the same two rates are used for the same two phases.
    stages : int
        Proximal-matching stages; stage ``s`` uses ``gamma_min * 2^(stages - 1 - s)``.
    stage_lr_decay : float
        The learning rate of proximal-matching stage ``s`` is ``lr * stage_lr_decay^s`` (1: the
        paper's image schedule; the 1-D notebook lowers it stage by stage).
    """

    steps: int
    loss: str = "pm"
    gamma_min: float = 1.0
    pretrain_fraction: float = 0.5
    pretrain_lr: float = 1e-3
    lr: float = 1e-4
    stages: int = 4
    stage_lr_decay: float = 1.0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; use one of {LOSSES}")
        if not 0 <= self.pretrain_fraction <= 1 or self.stages < 1 or self.gamma_min <= 0:
            raise ValueError("need 0 <= pretrain_fraction <= 1, stages >= 1 and gamma_min > 0, got "
                             f"{self.pretrain_fraction}, {self.stages}, {self.gamma_min}")

    @property
    def pretrain_steps(self) -> int:
        return int(round(self.steps * self.pretrain_fraction))

    def phase(self, step: int) -> tuple[str, float | None, float]:
        """``(loss name, gamma or None, learning rate)`` at ``step``."""
        if step < self.pretrain_steps:
            return ("l1" if self.loss == "pm" else self.loss), None, self.pretrain_lr
        if self.loss != "pm":
            return self.loss, None, self.lr
        per_stage = max((self.steps - self.pretrain_steps) / self.stages, 1)
        stage = min(int((step - self.pretrain_steps) // per_stage), self.stages - 1)
        return "pm", self.gamma_min * 2.0 ** (self.stages - 1 - stage), self.lr * self.stage_lr_decay ** stage

    def to_json(self) -> dict:
        return dict(self.__dict__)


class ProjectedAdam(torch.optim.Adam):
    """Adam followed by a projection (``model.clamp_weights``) after every step."""

    def __init__(self, params, project: Callable[[], None], lr: float = 1e-3, **kwargs):
        super().__init__(params, lr=lr, **kwargs)
        self._project = project

    def step(self, closure=None):
        loss = super().step(closure)
        self._project()
        return loss


def default_gamma_min(sample_shape: tuple[int, ...]) -> float:
    """The paper's ``0.08 sqrt(H W C)`` for one sample of shape ``(C, H, W)`` (or any shape)."""
    return 0.08 * math.sqrt(math.prod(sample_shape))


def train_lpn(model: LPN, sample_clean: Callable[[int, torch.Generator], torch.Tensor], noise: float,
              schedule: Schedule, config: TrainConfig) -> TrainResult:
    """Train ``model`` to denoise ``x + noise * n`` back to ``x``.

    Parameters
    ----------
    model : LPN
        Trained in its own dtype; its constrained weights are clamped after every step.
    sample_clean : callable ``(count, generator) -> (count, C, H, W) tensor``
        Clean training samples drawn with the (CPU) generator.
    noise : float
        Standard deviation of the additive Gaussian noise.
    schedule : Schedule
    config : TrainConfig
        ``config.steps`` must equal ``schedule.steps``; ``config.lr`` is ignored (the schedule
        sets the learning rate of every step).

    Returns
    -------
    TrainResult
    """
    if config.steps != schedule.steps:
        raise ValueError(f"TrainConfig.steps={config.steps} differs from Schedule.steps={schedule.steps}; "
                         "pass the same total to both")
    dtype = next(model.parameters()).dtype
    model.clamp_weights()

    def sample_batch(step, generator, batch_size, rank, world_size):
        clean = sample_clean(batch_size, generator)
        noisy = clean + noise * torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
        return shard((clean.to(dtype), noisy.to(dtype)), rank, world_size) + (step,)

    def loss_fn(net, batch):
        clean, noisy, step = batch
        kind, gamma, _ = schedule.phase(step)
        pred = net(noisy)
        if kind == "pm":
            return proximal_matching_loss(pred, clean, gamma)
        return l2_loss(pred, clean) if kind == "l2" else l1_loss(pred, clean)

    return fit_scheduled(model, loss_fn, sample_batch, schedule, config)


def fit_scheduled(model: LPN, loss_fn: Callable, sample_batch: Callable, schedule: Schedule,
                  config: TrainConfig) -> TrainResult:
    """:func:`sciml.train.fit` with projected Adam and the learning rate of ``schedule`` at every step."""
    optimizer = ProjectedAdam(model.parameters(), model.clamp_weights, lr=schedule.pretrain_lr)
    base = schedule.pretrain_lr

    def factor(step: int) -> float:
        return schedule.phase(min(step, schedule.steps - 1))[2] / base
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return fit(model, loss_fn, sample_batch, config, optimizer=optimizer, scheduler=scheduler)
