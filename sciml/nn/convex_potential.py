"""What every input-convex potential shares: non-negative weights and a convex activation.

An input-convex network stays convex in its input while its *constrained* weights (those that
multiply convex features) are non-negative and its activation is convex and non-decreasing.
:class:`ConvexPotential` holds that bookkeeping for :class:`~sciml.nn.icnn.ConvICNN` and
:class:`~sciml.nn.icnn_global.GlobalICNN`: initialisation of the constrained weights (the
paper's ``init_weights``), the projection after every optimiser step (the paper's ``wclip``) and
the softplus activation.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ConvexPotential"]


class ConvexPotential(nn.Module):
    """Base of the convex potentials; subclasses set ``self.beta`` and ``self.out`` (the last,
    non-negative layer) and list their constrained weights, ``self.out.weight`` last."""

    beta: float
    out: nn.Module

    def constrained_parameters(self) -> list[nn.Parameter]:
        """The weights that must stay non-negative, the output weight last."""
        raise NotImplementedError

    @torch.no_grad()
    def reset_constrained(self, log_mean: float = -10.0, log_std: float = 0.1,
                          generator: torch.Generator | None = None) -> None:
        """Set the constrained weights to ``exp(N(log_mean, log_std))``.

        The output weights start at ``1 / fan_in`` instead, so that ``psi`` is not flat at
        initialisation (which would make every training gradient vanish).
        """
        for w in self.constrained_parameters()[:-1]:
            noise = torch.randn(w.shape, generator=generator, dtype=w.dtype, device="cpu").to(w.device)
            w.copy_(torch.exp(log_mean + log_std * noise))
        self.out.weight.fill_(1.0 / self.out.weight.shape[1])

    @torch.no_grad()
    def clamp_weights(self) -> None:
        """Project the constrained weights onto ``>= 0`` (call after every optimiser step)."""
        for w in self.constrained_parameters():
            w.clamp_(min=0.0)

    def min_constrained_weight(self) -> float:
        """Smallest constrained weight (``>= 0`` whenever the network is convex by construction)."""
        return min(float(w.detach().min()) for w in self.constrained_parameters())

    def act(self, t: torch.Tensor) -> torch.Tensor:
        """Softplus of sharpness ``beta``: convex and non-decreasing."""
        return F.softplus(t, beta=self.beta)
