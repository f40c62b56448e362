"""Data-driven DeepONet and MultiONet baselines trained on labelled ``(a, u)`` pairs.

The branch takes the normalised coefficient on its grid (flattened), the trunk the grid point;
the loss is the relative mean squared error of ``u`` on the grid. With the same width and
depth the two networks differ only by MultiONet's ``depth`` layer weights (matched size).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from solvers.dgno.model import grid_points
from solvers.dgno.operators import make_operator

__all__ = ["DataDrivenOperator", "relative_l2", "train_data_driven"]


def relative_l2(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-sample relative L2 error ``||pred - true|| / ||true||`` over all but the first axis."""
    pred, true = np.asarray(pred).reshape(len(true), -1), np.asarray(true).reshape(len(true), -1)
    return np.linalg.norm(pred - true, axis=1) / np.linalg.norm(true, axis=1)


class DataDrivenOperator(nn.Module):
    """``a : (B, P, P) -> u : (B, P, P)`` with a DeepONet or MultiONet.

    Parameters
    ----------
    kind : {"deeponet", "multionet"}
    n_pix : int
    u_scale : float
        Targets are learned as ``u / u_scale``.
    low, high : float
        Coefficient normalisation ``(a - low) / (high - low)``.
    log_input : bool
        Feed ``log a`` to the branch instead (the log-normal case).
    """

    def __init__(self, kind: str, n_pix: int = 29, u_scale: float = 1.0, low: float = 5.0, high: float = 10.0,
                 width: int = 64, depth: int = 4, activation: str = "tanh", sum_layers: int | None = None,
                 weight_init: float = 0.0, log_input: bool = False, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.kind, self.n_pix, self.low, self.high, self.log_input = kind, n_pix, low, high, log_input
        self.net = make_operator(kind, n_pix ** 2, 2, width=width, depth=depth, activation=activation,
                                 sum_layers=sum_layers, weight_init=weight_init, dtype=dtype)
        self.register_buffer("u_scale", torch.tensor(float(u_scale), dtype=dtype))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        x = grid_points(self.n_pix, a.dtype, a.device)
        beta = torch.log(a) if self.log_input else (a - self.low) / (self.high - self.low)
        beta = beta.reshape(a.shape[0], -1)
        return (self.net(beta, x) * self.u_scale).reshape(a.shape)


def train_data_driven(kind: str, a_train: np.ndarray, u_train: np.ndarray, train_config, *, width: int = 64,
                      depth: int = 4, activation: str = "tanh", sum_layers: int | None = None,
                      weight_init: float = 0.0, log_input: bool = False, lr_decay_every: int = 0,
                      dtype: torch.dtype = torch.float32):
    """Train a :class:`DataDrivenOperator` with :func:`sciml.train.fit`; returns ``(model, TrainResult)``."""
    from sciml.train import fit, shard
    a = torch.as_tensor(np.asarray(a_train), dtype=dtype)
    u = torch.as_tensor(np.asarray(u_train), dtype=dtype)
    model = DataDrivenOperator(kind, a.shape[-1], float(u.std()), width=width, depth=depth,
                               activation=activation, sum_layers=sum_layers, weight_init=weight_init,
                               log_input=log_input, dtype=dtype)
    n = a.shape[0]

    def sample_batch(step, generator, batch_size, rank, world_size):
        idx = torch.randint(n, (batch_size,), generator=generator)
        return shard((a[idx], u[idx]), rank, world_size)

    def loss_fn(net, batch):
        a_b, u_b = batch
        return ((net(a_b) - u_b) ** 2).mean() / (u_b ** 2).mean()

    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, lr_decay_every, 0.5) if lr_decay_every else None
    result = fit(model, loss_fn, sample_batch, train_config, optimizer=optimizer, scheduler=scheduler)
    return model, result
