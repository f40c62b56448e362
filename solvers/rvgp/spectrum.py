"""Smallest eigenpairs of the connection Laplacian through ``sciml.linalg.eigsh``."""
from __future__ import annotations

import torch

from geometry.manifold import ManifoldGraph
from sciml.linalg import SparseCSR, eigsh

__all__ = ["connection_eigenpairs", "graph_eigenpairs"]


def _eig(matrix, k: int, method: str, device, generator) -> tuple[torch.Tensor, torch.Tensor]:
    if k >= matrix.shape[0]:
        raise ValueError(f"n_eigenpairs = {k} must be below the matrix size {matrix.shape[0]} (N d); "
                         "use fewer eigenpairs or more points")
    # The matrix is assembled on the CPU: "auto" factorises it there (shift-invert) whatever the
    # GP's device; "lobpcg" runs on `device` (e.g. CUDA without a factorisation).
    where = "cpu" if method in ("auto", "shift-invert", "dense") else device
    op = SparseCSR.from_scipy(matrix, dtype=torch.float64, device=where, symmetric=True)
    values, vectors = eigsh(op, k, method=method, generator=generator)
    return values.to(device), vectors.to(device)


def connection_eigenpairs(manifold: ManifoldGraph, k: int, normalization: str | None = None, method: str = "auto",
                          device="cpu", generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` smallest eigenpairs of the connection Laplacian.

    Parameters
    ----------
    manifold : ManifoldGraph
    k : int
    normalization : {None, "sym"}
    method : {"auto", "shift-invert", "lobpcg", "dense"}
        ``sciml.linalg.eigsh`` method; ``"auto"`` runs shift-invert on the CPU, ``"lobpcg"``
        runs on ``device``.
    device
        Device of the returned tensors.
    generator : torch.Generator, optional

    Returns
    -------
    values : (k,) float64, ascending
    vectors : (N d, k) float64, orthonormal
    """
    return _eig(manifold.connection_laplacian(normalization), k, method, device, generator)


def graph_eigenpairs(manifold: ManifoldGraph, k: int, method: str = "auto", device="cpu",
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` smallest eigenpairs of the scalar graph Laplacian, ``(k,)`` and ``(N, k)``."""
    return _eig(manifold.graph_laplacian(), k, method, device, generator)
