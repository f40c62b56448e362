"""The paper's fixed-size input-convex potential: strided convolutions and a fully connected head.

This is the network of the LPN paper's MNIST experiment (Fang, Buchanan & Sulam, ICLR 2024),
for square images of one size ``S`` (a multiple of 4; 28 for MNIST):

* ``z_1 = act(W_0 x + b_0)`` at ``S x S``;
* three constrained 3 x 3 convolutions with strides 2, 1, 2 (``S -> S/2 -> S/2 -> S/4``), each
  ``z_{k+1} = act(V_k z_k + W_k x_k + b_k)`` with ``V_k >= 0`` and a skip convolution of ``x_k``,
  the input bilinearly resized to the layer's input resolution (a linear map of ``x``);
* a fully connected layer ``h = act(V z + W x_q + b)`` over the whole ``S/4 x S/4`` feature map
  (``V >= 0``; ``x_q`` is ``x`` resized to ``S/4 x S/4``);
* ``psi(x) = u^T h + alpha ||x||^2`` with ``u >= 0``.

Every step keeps ``psi`` convex in ``x`` for the reasons given in :mod:`sciml.nn.icnn`. Unlike
:class:`~sciml.nn.icnn.ConvICNN` the head sees the whole image at once, so the learned prior can
model global shape (a digit's strokes), which a sum of local terms cannot; the price is that it
only accepts ``S x S`` images.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sciml.nn.convex_potential import ConvexPotential

__all__ = ["GlobalICNN"]

_STRIDES = (2, 1, 2)


class GlobalICNN(ConvexPotential):
    """Convex potential ``psi : (B, C, S, S) -> (B,)`` with a fully connected head.

    Parameters
    ----------
    in_channels : int
        Image channels ``C``.
    size : int
        Image side ``S``; a multiple of 4.
    hidden : int
        Channels of the convolutional layers (the paper: 64).
    head : int
        Width of the fully connected layer (the paper: 64).
    beta : float
        Softplus sharpness (the paper's MNIST network: 10).
    alpha : float
        Strong-convexity weight, ``psi += alpha ||x||^2`` (the paper's MNIST network: 0.01).
    init_log_mean, init_log_std : float
        The constrained weights start at ``exp(N(init_log_mean, init_log_std))``.
    """

    def __init__(self, in_channels: int = 1, size: int = 28, hidden: int = 64, head: int = 64, beta: float = 10.0,
                 alpha: float = 0.01, init_log_mean: float = -10.0, init_log_std: float = 0.1):
        super().__init__()
        if size < 4 or size % 4:
            raise ValueError(f"GlobalICNN needs an image side that is a multiple of 4, got size={size}; "
                             "pad or crop the images (e.g. 25 -> 24 or 28)")
        if min(in_channels, hidden, head) < 1:
            raise ValueError(f"in_channels, hidden and head must be >= 1, got {in_channels}, {hidden}, {head}")
        if alpha < 0 or beta <= 0:
            raise ValueError(f"need alpha >= 0 and beta > 0 for a convex potential, got alpha={alpha}, beta={beta}")
        self.config: dict[str, Any] = dict(in_channels=in_channels, size=size, hidden=hidden, head=head, beta=beta,
                                           alpha=alpha, init_log_mean=init_log_mean, init_log_std=init_log_std)
        self.size, self.beta, self.alpha = size, float(beta), float(alpha)
        self.first = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.z_path = nn.ModuleList([nn.Conv2d(hidden, hidden, 3, stride=s, padding=1, bias=False) for s in _STRIDES])
        self.x_path = nn.ModuleList([nn.Conv2d(in_channels, hidden, 3, stride=s, padding=1) for s in _STRIDES])
        quarter = size // 4
        self.z_head = nn.Linear(hidden * quarter * quarter, head, bias=False)
        self.x_head = nn.Linear(in_channels * quarter * quarter, head)
        self.out = nn.Linear(head, 1, bias=False)
        self.reset_constrained(init_log_mean, init_log_std)

    # -- the constraint ------------------------------------------------------------------
    def constrained_parameters(self) -> list[nn.Parameter]:
        """The weights that must stay non-negative (``V_k``, the head's ``V`` and ``u``)."""
        return [m.weight for m in self.z_path] + [self.z_head.weight, self.out.weight]

    @property
    def receptive_field(self) -> int:
        """The whole image: the fully connected head sees every pixel."""
        return self.size

    # -- evaluation -------------------------------------------------------------------------
    def _resized(self, x: torch.Tensor, side: int) -> torch.Tensor:
        return x if side == self.size else F.interpolate(x, (side, side), mode="bilinear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The potential ``psi(x)``.

        Parameters
        ----------
        x : (B, C, S, S) tensor

        Returns
        -------
        (B,) tensor
        """
        expected = (self.config["in_channels"], self.size, self.size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"this GlobalICNN takes images of shape (B, {expected[0]}, {self.size}, {self.size}), "
                             f"got {tuple(x.shape)}; resize or crop to {self.size} x {self.size}, or use the fully "
                             "convolutional ConvICNN for other sizes")
        z = self.act(self.first(x))
        side = self.size
        for layer, skip, stride in zip(self.z_path, self.x_path, _STRIDES):
            z = self.act(layer(z) + skip(self._resized(x, side)))
            side //= stride
        h = self.act(self.z_head(z.flatten(1)) + self.x_head(self._resized(x, side).flatten(1)))
        return self.out(h)[:, 0] + self.alpha * x.flatten(1).pow(2).sum(1)
