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
import torch.nn.functional as F

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


def prolonged_modes(coarse: RitzBasis, coarse_fluid: torch.Tensor, count: int, fine_grid: tuple[int, int, int],
                    fluid: torch.Tensor, chunk: int = 32) -> RitzBasis:
    """The ``count`` lowest Ritz vectors of a coarse grid, interpolated to a finer one (beyond the paper).

    A few hundred Lanczos steps from the paper's start vector ``A z`` do not reach the
    lowest modes of a 128^3 matrix (the smallest Ritz value comes out several times too
    large), yet those modes are what a larger grid adds. The coarse grid's converged low
    modes, interpolated and restricted to the fine grid's fluid cells, are smooth vectors
    close to the fine matrix's lowest eigenvectors. The interpolation is normalised by the
    interpolated fluid indicator, so fine fluid cells next to a coarse solid cell take the
    fluid neighbours' values instead of being pulled to zero (such dips at every obstacle
    surface would give the modes far more energy than the lowest eigenvalues allow).

    Parameters
    ----------
    coarse : RitzBasis
        Basis on a grid whose sides divide ``fine_grid``'s by the same integer factor.
    coarse_fluid : (n_coarse,) bool tensor
        Fluid cells of the coarse grid.
    count : int
        Lowest coarse modes to carry over.
    fine_grid : (int, int, int)
    fluid : (n_fine,) bool tensor
    chunk : int
        Vectors interpolated at once (bounds the temporary memory).

    Returns
    -------
    RitzBasis
        ``count`` unit-norm vectors ``(n_fine, count)`` float32 on the coarse basis' device;
        their values are the coarse ones divided by the squared refinement factor (the
        scaling of an unscaled Laplacian's low eigenvalues), and all of them are low modes.
    """
    factors = {f // c for f, c in zip(fine_grid, coarse.grid)}
    if len(factors) != 1 or any(f % c for f, c in zip(fine_grid, coarse.grid)):
        raise ValueError(f"cannot interpolate modes from a {coarse.grid} grid to {fine_grid}: every side must "
                         "grow by the same integer factor")
    factor = factors.pop()
    count = min(count, coarse.values.numel())
    device = coarse.vectors.device

    def interpolate(block: torch.Tensor) -> torch.Tensor:
        return F.interpolate(block, scale_factor=factor, mode="trilinear", align_corners=False)

    weight = interpolate(coarse_fluid.to(device=device, dtype=torch.float32).reshape(1, 1, *coarse.grid))
    mask = fluid.to(device=device, dtype=torch.float32).reshape(-1, 1)
    scale = mask / weight.reshape(-1, 1).clamp_min(1e-3)
    vectors = torch.empty(mask.shape[0], count, dtype=torch.float32, device=device)
    for start in range(0, count, chunk):
        block = coarse.vectors[:, start:min(start + chunk, count)].T.reshape(-1, 1, *coarse.grid)
        vectors[:, start:start + block.shape[0]] = interpolate(block).reshape(block.shape[0], -1).T * scale
    vectors /= torch.linalg.vector_norm(vectors, dim=0, keepdim=True)
    return RitzBasis(coarse.values[:count] / factor ** 2, vectors, tuple(fine_grid), count)


def merged(low: RitzBasis, basis: RitzBasis) -> RitzBasis:
    """One basis of the vectors of both, ascending by value; the low modes of both stay biased.

    The vectors need not be orthogonal to each other: samples are random combinations,
    normalised afterwards.
    """
    if low.grid != basis.grid:
        raise ValueError(f"cannot merge bases on grids {low.grid} and {basis.grid}")
    values = torch.cat([low.values, basis.values])
    order = torch.argsort(values)
    vectors = torch.cat([low.vectors, basis.vectors], dim=1)[:, order.to(low.vectors.device)]
    return RitzBasis(values[order], vectors, basis.grid, low.low_modes + basis.low_modes)
