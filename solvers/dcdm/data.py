"""Training data of DCDM: Ritz vectors of training matrices, sampled with the paper's spectrum bias.

Kaneda et al. run Lanczos on a training matrix, keep the Ritz vectors ``q_i`` (ascending
Ritz values, values below 1e-8 dropped) and draw right-hand sides

    b = sum_i c_i q_i / ||.||,   c_i ~ 9 N(0, 1) for the lowest m/2 + theta modes, N(0, 1) above,

so that the network sees mostly the smooth, low-frequency residuals CG struggles with.
The paper's dense, fully re-orthogonalised 10,000-step Lanczos needs 21 GB at 64^3; here
the number of steps is capped by a memory budget (``max_memory_gb``) and the basis is
kept in float32, and the samples are formed on the fly from the basis (a ``(B, m) x
(m, n)`` product per batch) instead of being stored.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from sciml.linalg import PoissonStencil, lanczos

logger = logging.getLogger(__name__)

SPECTRUM_BIAS = 9.0


@dataclass
class RitzBasis:
    """Ritz pairs of one training matrix.

    Attributes
    ----------
    values : (m,) float64 tensor
        Ritz values, ascending, all above the drop threshold.
    vectors : (n, m) float32 tensor
        Orthonormal Ritz vectors (C-order grid flattening), on the device Lanczos ran on;
        samples are formed there.
    grid : (int, int, int)
    low_modes : int
        Number of leading modes whose coefficients get the spectrum bias.
    """

    values: torch.Tensor
    vectors: torch.Tensor
    grid: tuple[int, int, int]
    low_modes: int

    def coefficient_scale(self) -> torch.Tensor:
        """``(m,)`` standard deviations of the coefficients: 9 on the low modes, 1 above."""
        scale = torch.ones(self.values.numel(), dtype=torch.float32)
        scale[: self.low_modes] = SPECTRUM_BIAS
        return scale

    def sample(self, count: int, generator: torch.Generator, noise: float = 0.0,
               fluid: torch.Tensor | None = None) -> torch.Tensor:
        """Draw ``count`` unit-norm right-hand sides, shape ``(count, n)`` float32, on the basis' device.

        Parameters
        ----------
        count : int
        generator : torch.Generator
        noise : float
            Beyond the paper: add white noise on the fluid cells with a relative size drawn
            uniformly in ``[0, noise]`` per sample. The Ritz vectors of a few hundred Lanczos
            steps span ~1% of the space at 32^3; the noise shows the network the rest,
            which is where the residuals of later iterations live.
        fluid : (n,) bool tensor, optional
            Where the noise goes (required when ``noise > 0``).

        The random numbers come from the CPU ``generator`` whatever the device, so a
        seed gives the same samples on CPU and GPU (up to rounding).
        """
        device = self.vectors.device
        c = torch.randn(count, self.values.numel(), generator=generator) * self.coefficient_scale()
        b = c.to(device) @ self.vectors.T
        b = b / torch.linalg.vector_norm(b, dim=1, keepdim=True)
        if noise > 0:
            white = torch.randn(b.shape, generator=generator).to(device) * fluid.to(device=device, dtype=b.dtype)
            white = white / torch.linalg.vector_norm(white, dim=1, keepdim=True)
            b = b + noise * torch.rand(count, 1, generator=generator).to(device) * white
            b = b / torch.linalg.vector_norm(b, dim=1, keepdim=True)
        return b


def ritz_basis(A: PoissonStencil, steps: int | None = None, *, theta: int | None = None,
               max_memory_gb: float = 2.0, drop_below: float = 1e-8, seed: int = 0) -> RitzBasis:
    """Run Lanczos on a training operator and return its Ritz basis.

    Parameters
    ----------
    A : PoissonStencil
        The training matrix (solid cells have empty rows; the start vector ``A z`` with
        ``z ~ N(0, I)`` lies in its range, as in the paper).
    steps : int, optional
        Lanczos steps ``m``. Default: as many as ``max_memory_gb`` allows for the float64
        basis, at most ``n / 8`` and at most 10,000 (the paper's value).
    theta : int, optional
        Extra biased modes beyond ``m / 2`` (the paper's 500 for ``m = 10,000``); default ``m / 20``.
    max_memory_gb : float
        Memory budget of the Lanczos basis.
    drop_below : float
        Ritz values below this (numerically zero modes) are dropped.
    seed : int

    Returns
    -------
    RitzBasis
    """
    n = A.shape[0]
    affordable = int(max_memory_gb * 2**30 / (8 * n))
    m = steps if steps is not None else max(16, min(affordable, n // 8, 10_000))
    if m * 8 * n > max_memory_gb * 2**30 * 1.01:
        raise ValueError(f"{m} Lanczos steps at n={n} need {m * 8 * n / 2**30:.1f} GB for the basis, over "
                         f"max_memory_gb={max_memory_gb}; lower steps or raise the budget")
    generator = torch.Generator().manual_seed(seed)
    start = A.matvec(torch.randn(n, generator=generator, dtype=A.dtype).to(A.device))
    logger.info("Lanczos: %d steps on n=%d (basis %.2f GB)", m, n, m * 8 * n / 2**30)
    result = lanczos(A, m, start, reorthogonalize=True, store_basis=True)
    values, vectors = result.ritz_pairs()
    keep = values > drop_below
    values, vectors = values[keep], vectors[:, keep.to(vectors.device)]
    theta = max(1, m // 20) if theta is None else theta
    low = min(values.numel(), m // 2 + theta)
    return RitzBasis(values, vectors.float(), A.grid, low)
