"""A small 1-Lipschitz convolutional classifier and its certified robust accuracy.

Architecture (8 x 8 inputs, e.g. scikit-learn digits): three circular 3x3 convolutions
``1 -> w`` (stride 1), ``w -> 2w`` (stride 2), ``2w -> 4w`` (stride 2), each followed by the
norm-preserving MaxMin activation, then a linear layer to the classes.

* ``mode="exact"``: :class:`~sciml.nn.orthogonal.OrthoConv2d` layers and a row-orthonormal
  linear layer: Lipschitz constant 1 exactly (every layer is 1-Lipschitz).
* ``mode="lorth"``: ordinary convolutions trained with the Lorth penalty (and ``||W W^T - I||^2``
  on the linear layer): nearly orthogonal, Lipschitz constant measured exactly.
* ``mode="plain"``: the same ordinary layers without any penalty.

Certificate: the network is ``L``-Lipschitz in the L2 norm with ``L`` the product of the exact
layer spectral norms (:func:`~sciml.nn.conv_spectrum.conv_singular_values`, 1 for ``exact``); a
prediction is certified at radius ``eps`` when ``margin > sqrt(2) * L * eps`` (Tsuzuku et al. 2018).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sciml.nn.conv_spectrum import conv_singular_values
from sciml.nn.orthogonal import OrthoConv2d
from sciml.nn.orthogonal_kernels import orthonormal
from sciml.train import TrainConfig, fit, shard

__all__ = [
    "Certificate",
    "LipschitzConvNet",
    "MaxMin",
    "OrthoLinear",
    "certified_accuracy",
    "load_digits",
    "train_classifier",
]


class MaxMin(nn.Module):
    """Pairwise sort of channels ``(a, b) -> (max, min)``: 1-Lipschitz and gradient-norm preserving."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.cat([torch.maximum(a, b), torch.minimum(a, b)], dim=1)


class OrthoLinear(nn.Module):
    """Linear layer ``in -> out`` with orthonormal rows (``exact``) or a free matrix (``lorth`` / ``plain``)."""

    def __init__(self, in_features: int, out_features: int, mode: str = "exact",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.mode = mode
        self.param = nn.Parameter(torch.randn(out_features, in_features, generator=generator) / math.sqrt(in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    @property
    def weight(self) -> torch.Tensor:
        return orthonormal(self.param) if self.mode == "exact" else self.param

    def regularizer(self) -> torch.Tensor:
        w = self.weight
        eye = torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
        return ((w @ w.T - eye) ** 2).sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class LipschitzConvNet(nn.Module):
    """Conv classifier for ``(B, 1, 8, 8)`` inputs; see the module docstring for the modes.

    Parameters
    ----------
    mode : {"exact", "lorth", "plain"}
    width : int
        Channels of the first layer (even).
    classes : int
    input_size : int
        Spatial size (a multiple of 4).
    generator : torch.Generator, optional
    """

    def __init__(self, mode: str = "exact", width: int = 16, classes: int = 10, input_size: int = 8,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if mode not in ("exact", "lorth", "plain"):
            raise ValueError(f"mode must be 'exact', 'lorth' or 'plain', got {mode!r}")
        self.mode, self.input_size = mode, input_size
        conv_mode = "exact" if mode == "exact" else "lorth"
        chans = [1, width, 2 * width, 4 * width]
        strides = [1, 2, 2]
        self.convs = nn.ModuleList(OrthoConv2d(chans[i], chans[i + 1], 3, strides[i], mode=conv_mode,
                                               generator=generator) for i in range(3))
        self.act = MaxMin()
        self.linear = OrthoLinear(chans[-1] * (input_size // 4) ** 2, classes, mode, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x : (B, 1, n, n) -> logits (B, classes)``."""
        for conv in self.convs:
            x = self.act(conv(x))
        return self.linear(x.flatten(1))

    def regularizer(self) -> torch.Tensor:
        """Sum of the Lorth penalties of the convolutions and the linear orthogonality penalty."""
        return sum(conv.regularizer() for conv in self.convs) + self.linear.regularizer()

    def layer_singular_values(self) -> list[torch.Tensor]:
        """Exact singular values of every linear layer (circular convolutions at their input sizes)."""
        out, n = [], self.input_size
        with torch.no_grad():
            for conv in self.convs:
                out.append(conv_singular_values(conv.weight.double(), n, conv.stride))
                n //= conv.stride
            out.append(torch.linalg.svdvals(self.linear.weight.double()))
        return out

    def lipschitz_bound(self) -> float:
        """Product of the exact layer spectral norms (MaxMin is 1-Lipschitz); 1 up to rounding for ``exact``."""
        return math.prod(float(sv.max()) for sv in self.layer_singular_values())


@dataclass
class Certificate:
    """Clean and certified accuracy at ``radius`` (L2) with the Lipschitz bound used."""

    clean: float
    certified: float
    radius: float
    lipschitz: float


def certified_accuracy(model: LipschitzConvNet, x: torch.Tensor, y: torch.Tensor, radius: float) -> Certificate:
    """Fraction correct, and fraction correct with ``margin > sqrt(2) * L * radius``.

    ``margin`` = top logit minus the runner-up; ``L`` = :meth:`LipschitzConvNet.lipschitz_bound`.
    """
    lip = model.lipschitz_bound()
    with torch.no_grad():
        logits = model(x)
    top2 = logits.topk(2, dim=1)
    correct = top2.indices[:, 0] == y
    margin = top2.values[:, 0] - top2.values[:, 1]
    certified = correct & (margin > math.sqrt(2.0) * lip * radius)
    return Certificate(float(correct.float().mean()), float(certified.float().mean()), radius, lip)


def load_digits(seed: int = 0, test_fraction: float = 0.25):
    """scikit-learn's bundled 8 x 8 digits in ``[0, 1]``: ``(x_train, y_train, x_test, y_test)``, float32.

    ``x : (N, 1, 8, 8)``; a fixed random split from ``seed``.
    """
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn ships with the environment
        raise ImportError("the orthoconv demo needs scikit-learn for its bundled digits: pip install scikit-learn") \
            from exc
    data = sk_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(y) * test_fraction)
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


def train_classifier(mode: str, x: torch.Tensor, y: torch.Tensor, steps: int = 600, batch_size: int = 64,
                     lr: float = 5e-3, temperature: float = 8.0, margin: float = 0.7, penalty: float = 0.1,
                     width: int = 16, seed: int = 0, device: str = "cpu") -> LipschitzConvNet:
    """Train with cross-entropy on ``temperature * (logits - margin * onehot)`` (a margin-aware loss).

    ``penalty`` weights :meth:`LipschitzConvNet.regularizer` in ``mode="lorth"`` (ignored otherwise).
    """
    model = LipschitzConvNet(mode, width=width, generator=torch.Generator().manual_seed(seed))
    x, y = x.to(device), y.to(device)

    def sample_batch(step, generator, size, rank, world_size):
        idx = torch.randint(len(y), (size,), generator=generator)
        return shard((x[idx.to(x.device)], y[idx.to(y.device)]), rank, world_size)

    def loss_fn(net, batch):
        xb, yb = batch
        logits = net(xb)
        shifted = logits - margin * F.one_hot(yb, logits.shape[1]).to(logits.dtype)
        loss = F.cross_entropy(temperature * shifted, yb)
        if mode == "lorth":
            loss = loss + penalty * net.regularizer()
        return loss
    fit(model, loss_fn, sample_batch, TrainConfig(steps=steps, lr=lr, batch_size=batch_size, seed=seed,
                                                  device=device))
    return model.eval()
