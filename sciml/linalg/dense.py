"""Operators stored as dense tensors: :class:`Dense`, :class:`Diagonal`, :class:`Identity`."""
from __future__ import annotations

import torch

from sciml.linalg.operator import LinearOperator, resolve_device


class Dense(LinearOperator):
    """A dense matrix as an operator.

    Parameters
    ----------
    matrix : (m, n) tensor
    symmetric : bool, optional
        Declare ``A^T = A`` (checked to 1e-12 relative when ``None``, the default,
        for square matrices).
    """

    def __init__(self, matrix: torch.Tensor, symmetric: bool | None = None):
        if matrix.ndim != 2:
            raise ValueError(f"Dense expects a 2-D matrix, got shape {tuple(matrix.shape)}")
        self.matrix = matrix
        self.shape = tuple(matrix.shape)
        self.dtype, self.device = matrix.dtype, matrix.device
        if symmetric is None:
            symmetric = self.shape[0] == self.shape[1] and bool(
                torch.allclose(matrix, matrix.mT, rtol=1e-12, atol=1e-12 * float(matrix.abs().max().clamp_min(1e-300))))
        self.symmetric = symmetric

    def _matvec(self, x):
        return self.matrix @ x

    def _rmatvec(self, y):
        return self.matrix.mT @ y

    def diagonal(self):
        return torch.diagonal(self.matrix)

    def to_dense(self):
        return self.matrix

    def to(self, device=None, dtype=None):
        return Dense(self.matrix.to(device=device, dtype=dtype), symmetric=self.symmetric)


class Diagonal(LinearOperator):
    """``diag(d)``.

    Parameters
    ----------
    diag : (n,) tensor
    """

    symmetric = True

    def __init__(self, diag: torch.Tensor):
        if diag.ndim != 1:
            raise ValueError(f"Diagonal expects a 1-D tensor of diagonal entries, got shape {tuple(diag.shape)}")
        self.diag = diag
        self.shape = (diag.shape[0], diag.shape[0])
        self.dtype, self.device = diag.dtype, diag.device

    def _matvec(self, x):
        return self.diag * x if x.ndim == 1 else self.diag[:, None] * x

    def diagonal(self):
        return self.diag

    def to(self, device=None, dtype=None):
        return Diagonal(self.diag.to(device=device, dtype=dtype))


class Identity(LinearOperator):
    """The ``n x n`` identity (the forward operator of denoising)."""

    symmetric = True

    def __init__(self, n: int, dtype: torch.dtype = torch.float64, device=None):
        self.shape = (int(n), int(n))
        self.dtype, self.device = dtype, resolve_device(device)

    def _matvec(self, x):
        return x

    def diagonal(self):
        return torch.ones(self.shape[0], dtype=self.dtype, device=self.device)

    def to(self, device=None, dtype=None):
        return Identity(self.shape[0], dtype=dtype or self.dtype, device=device or self.device)
