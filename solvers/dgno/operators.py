"""DeepONet and MultiONet behind one module.

Both map a parameter vector ``beta : (B, m)`` (branch input) and points ``x : (N, d)`` or
``(B, N, d)`` (trunk input) to ``out : (B, N)``. Branch and trunk are MLPs of the same depth and
width; layer ``k`` of each gives hidden features ``b_k(beta), t_k(x) : (width,)``.

* DeepONet: ``out = <b_L(beta), t_L(x)> + b0`` (one inner product after the last layer).
* MultiONet: ``out = (1/l) * sum_{k in last l layers} w_k <b_k(beta), t_k(x)> + b0`` with
  learnable scalars ``w_k`` (``sum_layers = l``; ``None`` sums over all layers).

With ``sum_layers=1`` and ``w = 1`` a MultiONet is exactly the DeepONet with the same
weights (parameter names are shared, so ``state_dict`` loads across).
"""
from __future__ import annotations

import itertools
import math

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "MLP", "DeepONet", "MultiONet", "make_operator"]


class TanhSin(nn.Module):
    """``tanh(sin(pi (x + 1))) + x`` (DGenNO's ``Tanh_Sin``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(torch.sin(math.pi * (x + 1.0))) + x

    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:
        s = torch.sin(math.pi * (x + 1.0))
        return (1.0 - torch.tanh(s) ** 2) * math.pi * torch.cos(math.pi * (x + 1.0)) + 1.0


class SiLUId(nn.Module):
    """``silu(x) + x`` (DGenNO's ``SiLU_Id``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(x) + x

    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:
        return _silu_derivative(x) + 1.0


def _silu_derivative(x: torch.Tensor) -> torch.Tensor:
    sig = torch.sigmoid(x)
    return sig * (1.0 + x * (1.0 - sig))


class Tanh(nn.Tanh):
    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:
        return 1.0 - torch.tanh(x) ** 2


class SiLU(nn.SiLU):
    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:
        return _silu_derivative(x)


class ReLU(nn.ReLU):
    @staticmethod
    def derivative(x: torch.Tensor) -> torch.Tensor:
        return (x > 0).to(x.dtype)


ACTIVATIONS = {"tanh": Tanh, "silu": SiLU, "relu": ReLU, "tanh_sin": TanhSin, "silu_id": SiLUId}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; use one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """``depth`` layers ``h_k = act(W_k h_{k-1} + c_k)`` of equal width; returns every ``h_k``."""

    def __init__(self, in_dim: int, width: int, depth: int, activation: str = "tanh",
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"MLP needs depth >= 1 and width >= 1, got depth={depth}, width={width}")
        dims = [in_dim] + [width] * depth
        self.layers = nn.ModuleList(nn.Linear(i, o, dtype=dtype) for i, o in itertools.pairwise(dims))
        self.act = _activation(activation)

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All hidden features ``[h_1, ..., h_depth]``, each ``(..., width)``."""
        out = []
        for layer in self.layers:
            x = self.act(layer(x))
            out.append(x)
        return out

    def hidden_and_jacobian(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Hidden features ``h_k : (N, width)`` and their input Jacobians ``(N, width, d)`` for ``x : (N, d)``
        (forward-mode, one pass: cheaper than autograd when many samples share the points)."""
        hs, js = [], []
        jac = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device).expand(*x.shape, x.shape[-1])
        for layer in self.layers:
            z = layer(x)
            jac = self.act.derivative(z)[..., None] * torch.einsum("ow,...wd->...od", layer.weight, jac)
            x = self.act(z)
            hs.append(x)
            js.append(jac)
        return hs, js

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(x)[-1]


def _inner(b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``<b, t>`` for ``b : (B, w)`` and ``t : (N, w)`` or ``(B, N, w)`` -> ``(B, N)``."""
    if t.dim() == 2:
        return b @ t.T
    return torch.einsum("bw,bnw->bn", b, t)


class _ONetBase(nn.Module):
    def __init__(self, branch_in: int, trunk_in: int, width: int, depth: int, activation: str,
                 dtype: torch.dtype | None) -> None:
        super().__init__()
        self.branch = MLP(branch_in, width, depth, activation, dtype)
        self.trunk = MLP(trunk_in, width, depth, activation, dtype)
        self.bias = nn.Parameter(torch.zeros((), dtype=dtype))

    @staticmethod
    def _check(beta: torch.Tensor, x: torch.Tensor) -> None:
        if beta.dim() != 2:
            raise ValueError(f"beta must be (B, m), got shape {tuple(beta.shape)}")
        if x.dim() == 3 and x.shape[0] != beta.shape[0]:
            raise ValueError(f"x has batch {x.shape[0]} but beta has batch {beta.shape[0]}; "
                             "pass x as (N, d) to share the points or as (B, N, d)")
        if x.dim() not in (2, 3):
            raise ValueError(f"x must be (N, d) or (B, N, d), got shape {tuple(x.shape)}")


    def _weights(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def trunk_features(self, x: torch.Tensor, grad: bool = False
                       ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """The trunk features that enter the output at shared points ``x : (N, d)``: the summed layers'
        ``t_k : (N, width)`` and, with ``grad=True``, their Jacobians ``(N, width, d)``.

        With frozen weights these do not depend on ``beta``: compute them once and evaluate many
        latents with :meth:`forward_features` (what the inverse solve does).
        """
        n_sum = len(self._weights())
        if grad:
            ts, js = self.trunk.hidden_and_jacobian(x)
            return ts[-n_sum:], js[-n_sum:]
        return self.trunk.hidden(x)[-n_sum:], None

    def forward_features(self, beta: torch.Tensor, ts: list[torch.Tensor], js: list[torch.Tensor] | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Output ``(B, N)`` (and its ``x``-gradient ``(B, N, d)`` when ``js`` is given) from
        :meth:`trunk_features`; the same numbers as :meth:`forward` / :meth:`forward_and_grad`."""
        weights = self._weights()
        n_sum = len(weights)
        bs = self.branch.hidden(beta)[-n_sum:]
        out = sum(w * (b @ t.T) for w, b, t in zip(weights, bs, ts)) / n_sum + self.bias
        if js is None:
            return out, None
        grad = sum(w * torch.einsum("bw,nwd->bnd", b, j) for w, b, j in zip(weights, bs, js)) / n_sum
        return out, grad

    def forward_and_grad(self, beta: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output ``(B, N)`` and its gradient in ``x`` ``(B, N, d)`` for points ``x : (N, d)`` shared by the batch.

        The trunk Jacobian is propagated forward once for the ``N`` points, so the cost does not
        grow with ``B`` (autograd on ``(B, N, d)`` points would run the trunk ``B`` times).
        """
        self._check(beta, x)
        if x.dim() != 2:
            raise ValueError(f"forward_and_grad needs shared points x : (N, d), got shape {tuple(x.shape)}")
        return self.forward_features(beta, *self.trunk_features(x, grad=True))


class DeepONet(_ONetBase):
    """``out[b, n] = <branch(beta_b), trunk(x_n)> + b0`` (last-layer inner product).

    Parameters
    ----------
    branch_in, trunk_in : int
        Sizes of ``beta`` and of one point ``x``.
    width, depth : int
        Width and number of layers of both branch and trunk.
    activation : str
        One of :data:`ACTIVATIONS`.
    """

    def __init__(self, branch_in: int, trunk_in: int, width: int = 64, depth: int = 4,
                 activation: str = "tanh", dtype: torch.dtype | None = None) -> None:
        super().__init__(branch_in, trunk_in, width, depth, activation, dtype)

    def forward(self, beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``beta : (B, m)``, ``x : (N, d)`` or ``(B, N, d)`` -> ``(B, N)``."""
        self._check(beta, x)
        return _inner(self.branch(beta), self.trunk(x)) + self.bias

    def _weights(self) -> list[torch.Tensor]:
        return [self.bias.new_ones(())]


class MultiONet(_ONetBase):
    """``out = (1/l) sum_{k in last l} w_k <b_k(beta), t_k(x)> + b0`` with learnable ``w_k``.

    Parameters
    ----------
    branch_in, trunk_in, width, depth, activation
        As in :class:`DeepONet`.
    sum_layers : int, optional
        ``l``, the number of last layers whose inner products are summed (``None``: all ``depth``).
    weight_init : float
        Initial ``w_k`` (the authors start at 0).
    """

    def __init__(self, branch_in: int, trunk_in: int, width: int = 64, depth: int = 4,
                 activation: str = "tanh", sum_layers: int | None = None, weight_init: float = 0.0,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__(branch_in, trunk_in, width, depth, activation, dtype)
        sum_layers = depth if sum_layers is None else sum_layers
        if not 1 <= sum_layers <= depth:
            raise ValueError(f"sum_layers={sum_layers} must be between 1 and depth={depth}")
        self.sum_layers = sum_layers
        self.layer_weights = nn.Parameter(torch.full((sum_layers,), float(weight_init), dtype=dtype))

    def forward(self, beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``beta : (B, m)``, ``x : (N, d)`` or ``(B, N, d)`` -> ``(B, N)``."""
        self._check(beta, x)
        bs = self.branch.hidden(beta)[-self.sum_layers:]
        ts = self.trunk.hidden(x)[-self.sum_layers:]
        out = sum(w * _inner(b, t) for w, b, t in zip(self.layer_weights, bs, ts))
        return out / self.sum_layers + self.bias

    def _weights(self) -> list[torch.Tensor]:
        return list(self.layer_weights)


def make_operator(kind: str, branch_in: int, trunk_in: int, **kwargs) -> nn.Module:
    """``kind`` in ``{"deeponet", "multionet"}`` -> the network (keyword arguments as in the classes)."""
    if kind == "deeponet":
        kwargs.pop("sum_layers", None)
        kwargs.pop("weight_init", None)
        return DeepONet(branch_in, trunk_in, **kwargs)
    if kind == "multionet":
        return MultiONet(branch_in, trunk_in, **kwargs)
    raise ValueError(f"unknown operator {kind!r}; use 'deeponet' or 'multionet'")
