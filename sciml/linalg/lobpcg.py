"""Block LOBPCG for the smallest eigenpairs of a symmetric operator (the GPU path of eigsh)."""
from __future__ import annotations

import logging

import torch

from sciml.linalg.operator import LinearOperator

logger = logging.getLogger(__name__)


def lobpcg(A: LinearOperator, k: int, *, X0: torch.Tensor | None = None, preconditioner=None,
           tol: float = 1e-8, maxiter: int = 1000, guard: int | None = None,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Smallest ``k`` eigenpairs of a symmetric operator by block LOBPCG (Knyazev 2001).

    Each iteration performs a Rayleigh-Ritz step on ``span[X, T R, P]`` with an
    orthonormal basis from a QR factorisation (robust when the span is nearly
    rank deficient), so it costs one operator application on ``3 m`` vectors.

    Parameters
    ----------
    A : symmetric LinearOperator, shape (n, n)
    k : int
        Number of wanted eigenpairs.
    X0 : (n, m) tensor, optional
        Initial block (``m >= k``); default random with ``m = k + guard``.
    preconditioner : callable ``(n, b) -> (n, b)``, optional
        Approximates ``A^{-1}``; default Jacobi.
    tol : float
        Converged when ``||A x - lambda x|| <= tol * max(|lambda|, ||A||_est)`` for the first ``k``.
    maxiter : int
    guard : int, optional
        Extra block vectors that speed up convergence of the last wanted ones
        (default ``min(k, 10)``).
    generator : torch.Generator, optional

    Returns
    -------
    values : (k,) tensor, ascending
    vectors : (n, k) tensor, orthonormal columns
    info : dict
        ``iterations``, ``converged``, ``residual_norms``.
    """
    n = A.shape[0]
    m = k + (min(k, 10) if guard is None else guard)
    m = min(m, n // 3)
    if k > m:
        raise ValueError(f"LOBPCG needs 3 * (k + guard) <= n; k={k} is too large for n={n}: use method='dense'")
    if X0 is None:
        X0 = torch.randn(n, m, generator=generator, dtype=A.dtype,
                         device=generator.device if generator is not None else "cpu").to(A.device)
    if preconditioner is None:
        d = A.diagonal().abs()
        inv = torch.where(d > 0, 1.0 / d.clamp_min(1e-300), torch.ones_like(d))[:, None]
        preconditioner = lambda R: inv * R  # noqa: E731
    X, theta, AX = _rayleigh_ritz(A, torch.linalg.qr(X0)[0], m)
    scale = float(theta.abs().max())
    P = None
    for it in range(1, maxiter + 1):
        R = AX - X * theta
        norms = torch.linalg.vector_norm(R, dim=0)
        scale = max(scale, float(theta.abs().max()))
        if bool((norms[:k] <= tol * scale).all()):
            return theta[:k], X[:, :k], {"iterations": it, "converged": True, "residual_norms": norms[:k]}
        W = preconditioner(R)
        W = W - X @ (X.T @ W)
        blocks = [X, W] if P is None else [X, W, P]
        Q = torch.linalg.qr(torch.cat(blocks, dim=1))[0]
        X_new, theta, AX = _rayleigh_ritz(A, Q, m)
        P = X_new - X @ (X.T @ X_new)
        X = X_new
    logger.warning("LOBPCG did not converge in %d iterations (max residual %.2e)", maxiter, float(norms[:k].max()))
    return theta[:k], X[:, :k], {"iterations": maxiter, "converged": False, "residual_norms": norms[:k]}


def _rayleigh_ritz(A: LinearOperator, Q: torch.Tensor, m: int):
    """Best ``m`` Ritz pairs of ``A`` in ``span(Q)`` (Q orthonormal): (X (n,m), theta (m,), A X)."""
    AQ = A._matvec(Q)
    H = Q.T @ AQ
    theta, C = torch.linalg.eigh((H + H.T) / 2)
    C = C[:, :m]
    return Q @ C, theta[:m], AQ @ C
