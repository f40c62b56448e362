"""Smallest eigenpairs of a sparse symmetric matrix: shift-invert on CPU, LOBPCG on GPU."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from sciml.linalg._krylov_common import as_operator
from sciml.linalg.dense import Dense
from sciml.linalg.lobpcg import lobpcg
from sciml.linalg.operator import LinearOperator
from sciml.linalg.sparse import SparseCSR

METHODS = ("auto", "shift-invert", "lobpcg", "dense")


def eigsh(A, k: int, *, method: str = "auto", sigma: float | None = None, tol: float = 1e-10,
          maxiter: int | None = None, generator: torch.Generator | None = None,
          X0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` smallest eigenvalues and eigenvectors of a symmetric matrix.

    Parameters
    ----------
    A : SparseCSR, PoissonStencil, Dense, torch tensor or scipy sparse matrix, shape (n, n)
        Symmetric (positive semi-definite for the default shift).
    k : int
    method : {"auto", "shift-invert", "lobpcg", "dense"}
        ``"auto"`` uses shift-invert Lanczos with a sparse LU factorisation
        (scipy ARPACK) on CPU, LOBPCG on GPU, and dense ``eigh`` for ``n <= 500``.
    sigma : float, optional
        Shift for shift-invert; eigenvalues nearest to it are found. Default:
        ``-1e-6 * max|diag(A)|``, just below zero, so the smallest eigenvalues of a
        PSD matrix (including exact zeros, e.g. graph Laplacians) are found with a
        non-singular factorisation.
    tol : float
        Relative accuracy of the eigenpairs.
    maxiter : int, optional
    generator : torch.Generator, optional
        Start vectors (ARPACK's ``v0``, LOBPCG's block).
    X0 : (n, m) tensor, optional
        LOBPCG start block (e.g. the previous solution of a slowly changing matrix).

    Returns
    -------
    values : (k,) tensor, ascending, in A's dtype on A's device
    vectors : (n, k) tensor, orthonormal columns
    """
    A = as_operator(A)
    n = A.shape[0]
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"eigsh needs a square matrix, got shape {A.shape}")
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, n-1] = [1, {n - 1}], got {k}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if method == "auto":
        method = "dense" if n <= 500 else ("shift-invert" if A.device.type == "cpu" else "lobpcg")
    if method == "dense":
        values, vectors = torch.linalg.eigh(A.to_dense())
        return values[:k], vectors[:, :k]
    if method == "lobpcg":
        values, vectors, info = lobpcg(A, k, X0=X0, tol=tol, maxiter=maxiter or 5000, generator=generator)
        if not info["converged"]:
            raise RuntimeError(f"LOBPCG did not converge in {info['iterations']} iterations (residuals up to "
                               f"{float(info['residual_norms'].max()):.2e}); raise maxiter, loosen tol or use "
                               "method='shift-invert' on the CPU")
        return values, vectors
    return _shift_invert(A, k, sigma, tol, maxiter, generator)


def _shift_invert(A: LinearOperator, k: int, sigma, tol, maxiter, generator):
    matrix = _to_scipy(A)
    if sigma is None:
        sigma = -1e-6 * float(np.abs(matrix.diagonal()).max() or 1.0)
    v0 = None
    if generator is not None:
        v0 = torch.randn(A.shape[0], generator=generator, dtype=torch.float64,
                         device=generator.device).cpu().numpy()
    values, vectors = spla.eigsh(matrix, k=k, sigma=sigma, which="LM", tol=tol, maxiter=maxiter, v0=v0)
    order = np.argsort(values)
    values = torch.as_tensor(values[order], dtype=A.dtype, device=A.device)
    vectors = torch.as_tensor(vectors[:, order], dtype=A.dtype, device=A.device)
    return values, vectors


def _to_scipy(A: LinearOperator) -> sp.csc_matrix:
    if isinstance(A, SparseCSR):
        return A.to_scipy().tocsc()
    if hasattr(A, "to_csr"):
        return A.to_csr().to_scipy().tocsc()
    if isinstance(A, Dense):
        return sp.csc_matrix(A.matrix.detach().cpu().double().numpy())
    raise TypeError(f"shift-invert needs an assembled matrix; {type(A).__name__} has none: "
                    "use method='lobpcg' for matrix-free operators")
