"""Small, deterministic test problems for the linear-algebra tests."""
from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp
import torch
from hypothesis import settings

from sciml.linalg import FACES, LinearOperator, PoissonStencil

#: Settings of every property test: small, fast, and the same examples on every run.
PROPERTY = settings(max_examples=25, deadline=None, derandomize=True)


def sphere_mask(n: int, radius: float | None = None, center=None) -> np.ndarray:
    """(n, n, n) bool mask of a ball (cell centres within ``radius`` of ``center``)."""
    radius = n / 4 if radius is None else radius
    center = np.full(3, (n - 1) / 2) if center is None else np.asarray(center, float)
    i, j, k = np.meshgrid(*(np.arange(n),) * 3, indexing="ij")
    return (i - center[0]) ** 2 + (j - center[1]) ** 2 + (k - center[2]) ** 2 <= radius ** 2


def poisson_problem(n: int, seed: int = 0, dirichlet=("z+",), device="cpu", dtype=torch.float64):
    """The 7-point Poisson operator on ``n^3`` cells around a sphere obstacle, with a random rhs.

    Returns
    -------
    A : PoissonStencil
    b : (n^3,) tensor, standard normal on fluid cells and zero on solid ones
    solid : (n, n, n) bool numpy array
    """
    solid = sphere_mask(n)
    A = PoissonStencil(n, solid, dirichlet, dtype=dtype, device=device)
    rng = np.random.default_rng(seed)
    b = rng.standard_normal(n ** 3) * (~solid).ravel()
    return A, torch.as_tensor(b, dtype=dtype, device=device), solid


def dirichlet_poisson(n: int, device="cpu", dtype=torch.float64) -> PoissonStencil:
    """The 7-point Poisson operator on ``n^3`` cells with all six faces Dirichlet (no obstacle)."""
    return PoissonStencil(n, None, FACES, dtype=dtype, device=device)


def dirichlet_poisson_eigenvalues(n: int) -> np.ndarray:
    """All ``n^3`` eigenvalues (ascending) of :func:`dirichlet_poisson`, in closed form."""
    lam1 = 2 - 2 * np.cos(np.pi * np.arange(1, n + 1) / (n + 1))
    return np.sort((lam1[:, None, None] + lam1[None, :, None] + lam1[None, None, :]).ravel())


def path_laplacian(n: int) -> sp.csr_matrix:
    """Graph Laplacian of the path on ``n`` nodes (PSD, one exact zero eigenvalue, distinct eigenvalues)."""
    main = np.full(n, 2.0)
    main[[0, -1]] = 1.0
    return sp.diags([-np.ones(n - 1), main, -np.ones(n - 1)], [-1, 0, 1], format="csr")


def ring_laplacian(n: int) -> sp.csr_matrix:
    """Graph Laplacian of the cycle on ``n`` nodes (PSD, one exact zero eigenvalue, double eigenvalues)."""
    L = sp.lil_matrix((n, n))
    for i in range(n):
        L[i, i] = 2.0
        L[i, (i + 1) % n] = -1.0
        L[(i + 1) % n, i] = -1.0
    return L.tocsr()


def random_mask(shape, density: float, seed: int) -> np.ndarray:
    """Random bool mask with about ``density`` of the cells True."""
    return np.random.default_rng(seed).random(shape) < density


def reference_poisson_dense(solid: np.ndarray, dirichlet) -> np.ndarray:
    """The stencil matrix assembled cell by cell with Python loops (an independent reference).

    Row ``c`` of a fluid cell: ``+1`` on the diagonal and ``-1`` at the neighbour for every
    fluid neighbour, ``+1`` on the diagonal for every Dirichlet domain face the cell touches.
    Solid rows and columns are zero.
    """
    shape = solid.shape
    n = solid.size
    index = np.arange(n).reshape(shape)
    A = np.zeros((n, n))
    for cell in itertools.product(*(range(s) for s in shape)):
        if solid[cell]:
            continue
        c = index[cell]
        for axis in range(3):
            for step, face in ((-1, "-"), (1, "+")):
                nb = list(cell)
                nb[axis] += step
                if 0 <= nb[axis] < shape[axis]:
                    if not solid[tuple(nb)]:
                        A[c, c] += 1
                        A[c, index[tuple(nb)]] -= 1
                elif "xyz"[axis] + face in dirichlet:
                    A[c, c] += 1
    return A


def iterate_directions(xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Search directions (up to scale) from the iterates ``x_0, x_1, ...``: ``x_{k+1} - x_k``."""
    return [b - a for a, b in zip(xs[:-1], xs[1:])]


def randn(*shape, seed: int, device="cpu", dtype=torch.float64) -> torch.Tensor:
    """Standard normal tensor from a seeded CPU generator (the same numbers on every device)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def sprandn(m: int, n: int, seed: int, density: float = 0.4) -> sp.csr_matrix:
    """Random non-symmetric scipy matrix (with at least one stored entry when m, n > 0)."""
    rng = np.random.default_rng(seed)
    A = sp.random(m, n, density=density, format="csr", random_state=rng, data_rvs=rng.standard_normal)
    A = A.tolil()
    A[rng.integers(m), rng.integers(n)] = 1.5
    return A.tocsr()


def true_relative_residual(A: LinearOperator, x: torch.Tensor, b: torch.Tensor) -> float:
    """``||b - A x|| / ||b||`` recomputed in float64 on the CPU."""
    A64 = A.to(device="cpu", dtype=torch.float64)
    b64, x64 = b.cpu().double(), x.cpu().double()
    return float(torch.linalg.vector_norm(b64 - A64.matvec(x64)) / torch.linalg.vector_norm(b64))
