"""Preconditioners for :func:`sciml.linalg.pcg`.

A preconditioner is anything that maps a residual ``r : (n,)`` to ``z ~ A^{-1} r``:
a :class:`~sciml.linalg.LinearOperator`, a callable, or the string ``"jacobi"``.
It must be symmetric positive definite for PCG to converge.
"""
from __future__ import annotations

import torch

from sciml.linalg.dense import Diagonal
from sciml.linalg.operator import LinearOperator


def jacobi(A: LinearOperator) -> Diagonal:
    """The Jacobi (diagonal) preconditioner ``diag(A)^{-1}``.

    Zero diagonal entries (empty rows, e.g. solid cells of a Poisson stencil) map
    to zero so that those components stay zero.

    Parameters
    ----------
    A : LinearOperator, shape (n, n)

    Returns
    -------
    Diagonal, shape (n, n)
    """
    d = A.diagonal()
    if (d < 0).any():
        i = int(torch.nonzero(d < 0)[0])
        raise ValueError(f"Jacobi needs a non-negative diagonal, but A[{i},{i}] = {float(d[i]):.3g}; "
                         "the operator is not SPD (check its sign convention: use -Laplacian)")
    inv = torch.where(d > 0, 1.0 / torch.where(d > 0, d, torch.ones_like(d)), torch.zeros_like(d))
    return Diagonal(inv)
