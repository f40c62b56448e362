"""The symmetric Lanczos process and Ritz pairs."""
from __future__ import annotations

from dataclasses import dataclass

import scipy.linalg
import torch

from sciml.linalg._krylov_common import as_operator, check_finite


@dataclass
class LanczosResult:
    """Output of :func:`lanczos`.

    Attributes
    ----------
    alpha : (m,) float64 tensor
        Diagonal of the tridiagonal matrix ``T = Q^T A Q``.
    beta : (m - 1,) float64 tensor
        Off-diagonal of ``T``.
    basis : (n, m) tensor or None
        Orthonormal Lanczos vectors ``Q`` (kept when ``store_basis``).
    breakdown : bool
        True when an invariant subspace was found before ``m`` steps (``m`` is then smaller).
    """

    alpha: torch.Tensor
    beta: torch.Tensor
    basis: torch.Tensor | None
    breakdown: bool

    @property
    def steps(self) -> int:
        return int(self.alpha.numel())

    def ritz_values(self) -> torch.Tensor:
        """Eigenvalues of ``T``, ascending, shape ``(m,)``."""
        return torch.from_numpy(scipy.linalg.eigh_tridiagonal(self.alpha.numpy(), self.beta.numpy(),
                                                              eigvals_only=True))

    def ritz_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Ritz values ``(m,)`` ascending and Ritz vectors ``(n, m)`` (needs the stored basis)."""
        if self.basis is None:
            raise ValueError("Ritz vectors need the Lanczos basis; call lanczos(..., store_basis=True)")
        theta, S = scipy.linalg.eigh_tridiagonal(self.alpha.numpy(), self.beta.numpy())
        S = torch.from_numpy(S).to(self.basis)
        return torch.from_numpy(theta), self.basis @ S


def lanczos(A, steps: int, v0: torch.Tensor | None = None, *, reorthogonalize: bool = True,
            store_basis: bool = True, generator: torch.Generator | None = None,
            dtype: torch.dtype = torch.float64) -> LanczosResult:
    """Run ``steps`` steps of the Lanczos process on a symmetric operator.

    Parameters
    ----------
    A : symmetric LinearOperator, tensor or scipy sparse matrix, shape (n, n)
    steps : int
        Number of Lanczos vectors ``m`` (at most ``n``).
    v0 : (n,) tensor, optional
        Start vector (normalised here). Default: standard normal from ``generator``.
    reorthogonalize : bool
        Full re-orthogonalisation (two passes of classical Gram-Schmidt against the
        stored basis): exact-arithmetic behaviour, ``O(m^2 n)`` work, needs ``store_basis``.
    store_basis : bool
        Keep the ``(n, m)`` basis (``m n`` numbers of memory). Without it only ``T``
        is returned (three vectors of memory): enough for Ritz values.
    generator : torch.Generator, optional
        For the random start vector.
    dtype : torch.dtype
        Working precision.

    Returns
    -------
    LanczosResult
    """
    A = as_operator(A)
    n = A.shape[0]
    if not 1 <= steps <= n:
        raise ValueError(f"steps must be in [1, n={n}], got {steps}")
    if reorthogonalize and not store_basis:
        raise ValueError("full re-orthogonalisation needs the stored basis; pass store_basis=True "
                         "or reorthogonalize=False")
    apply = (lambda v: A._matvec(v)) if A.dtype == dtype else (lambda v: A._matvec(v.to(A.dtype)).to(dtype))
    if v0 is None:
        v0 = torch.randn(n, generator=generator, dtype=dtype, device=generator.device if generator else "cpu")
    q = v0.to(device=A.device, dtype=dtype)
    q = q / torch.linalg.vector_norm(q)
    basis = torch.empty(n, steps, dtype=dtype, device=A.device) if store_basis else None
    alphas, betas, q_prev, beta, breakdown = [], [], torch.zeros_like(q), 0.0, False
    for j in range(steps):
        if basis is not None:
            basis[:, j] = q
        w = apply(q) - beta * q_prev
        alpha = torch.dot(w, q)
        w = w - alpha * q
        if reorthogonalize:
            for _ in range(2):
                w = w - basis[:, : j + 1] @ (basis[:, : j + 1].T @ w)
        alphas.append(float(alpha))
        check_finite(alphas[-1], "the Lanczos coefficient alpha", j)
        beta = float(torch.linalg.vector_norm(w))
        if j == steps - 1:
            break
        if beta <= 1e-12 * max(abs(a) for a in alphas):
            breakdown = True
            break
        betas.append(beta)
        q_prev, q = q, w / beta
    if basis is not None:
        basis = basis[:, : len(alphas)]
    return LanczosResult(torch.tensor(alphas, dtype=torch.float64), torch.tensor(betas, dtype=torch.float64),
                         basis, breakdown)
