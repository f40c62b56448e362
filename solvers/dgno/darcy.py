"""Darcy-flow data from real finite-element solves (scikit-fem, P1 on triangles).

Problem: ``-div(a grad u) = f`` on the unit square, ``u = 0`` on the boundary, with the
coefficient ``a`` given on ``P x P`` node-centred pixels (pixel ``(i, j)`` is the square of side
``1/(P-1)`` centred at ``(i, j)/(P-1)``, clipped to the domain; the authors' 29 x 29 setting).

* :func:`gaussian_random_field` -- cosine-series field with spectrum ``(pi^2|k|^2 + tau^2)^(-alpha/2)``.
* :func:`two_phase_coefficient` (values 5 and 10, thresholded at 0) and
  :func:`lognormal_coefficient` (``exp`` of a normalised field).
* :class:`DarcyFEM` -- P1 solver on a mesh whose lines contain every pixel edge, so a
  piecewise-constant ``a`` is represented exactly (one value per triangle).
* :func:`generate_darcy` -- ``n`` samples from a seed, cached to ``.npz`` (atomic write, no pickle).
* :func:`self_check` -- ``h`` vs ``h/2`` agreement and the discrete maximum principle.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sciml.io import atomic_path

__all__ = [
    "KINDS",
    "DarcyData",
    "DarcyFEM",
    "SelfCheck",
    "gaussian_random_field",
    "generate_darcy",
    "grf_expansion",
    "lognormal_coefficient",
    "sample_coefficient",
    "self_check",
    "two_phase_coefficient",
]

logger = logging.getLogger(__name__)

KINDS = ("two_phase", "lognormal")


def gaussian_random_field(n_pix: int, rng: np.random.Generator, tau: float = 3.0, alpha: float = 2.0,
                          modes: int | None = None) -> np.ndarray:
    """One draw of a zero-mean Gaussian field on the ``n_pix x n_pix`` node grid of ``[0,1]^2``.

    ``g(x, y) = sum_{k != 0} (pi^2|k|^2 + tau^2)^(-alpha/2) xi_k cos(pi k1 x) cos(pi k2 y)``,
    ``xi_k ~ N(0, 1)``: the Neumann-Laplacian eigen-expansion of ``N(0, (-Delta + tau^2)^-alpha)``
    (FNO's Darcy prior for ``tau=3, alpha=2``), without the constant mode.

    Returns
    -------
    g : (n_pix, n_pix) float64 array, ``g[i, j]`` at ``x = i/(n_pix-1), y = j/(n_pix-1)``.
    """
    cos, lam = grf_expansion(n_pix, tau, alpha, modes)
    return cos.T @ (lam * rng.standard_normal(lam.shape)) @ cos


def grf_expansion(n_pix: int, tau: float = 3.0, alpha: float = 2.0, modes: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The expansion of :func:`gaussian_random_field`: ``g = cos.T @ (lam * xi) @ cos`` with ``xi ~ N(0, I)``.

    Returns
    -------
    cos : (K, n_pix) array
        ``cos(pi k x_i)`` for ``K = modes`` (default ``n_pix``) cosine modes.
    lam : (K, K) array
        Spectral weights ``(pi^2|k|^2 + tau^2)^(-alpha/2)``, ``0`` for the constant mode.
    """
    modes = n_pix if modes is None else modes
    k = np.arange(modes)
    x = np.linspace(0.0, 1.0, n_pix)
    cos = np.cos(np.pi * k[:, None] * x[None, :])
    lam = (np.pi ** 2 * (k[:, None] ** 2 + k[None, :] ** 2) + tau ** 2) ** (-alpha / 2)
    lam[0, 0] = 0.0
    return cos, lam


def _grf_pointwise_std(n_pix: int, tau: float, alpha: float) -> float:
    """Spatially averaged pointwise standard deviation of :func:`gaussian_random_field`."""
    _, lam = grf_expansion(n_pix, tau, alpha)
    w = np.where(np.arange(n_pix) > 0, 0.5, 1.0)   # spatial mean of cos^2(pi k x)
    return float(np.sqrt((lam ** 2 * w[:, None] * w[None, :]).sum()))


def two_phase_coefficient(g: np.ndarray, low: float = 5.0, high: float = 10.0) -> np.ndarray:
    """``a = high`` where ``g >= 0`` else ``low`` (the authors' two-phase medium, 5 and 10)."""
    return np.where(g >= 0.0, high, low)


def lognormal_coefficient(g: np.ndarray, sigma: float = 1.0, n_pix: int | None = None, tau: float = 3.0,
                          alpha: float = 2.0) -> np.ndarray:
    """Smooth log-normal coefficient ``a = exp(sigma * g / std(g))`` (std averaged over the square)."""
    n_pix = g.shape[-1] if n_pix is None else n_pix
    return np.exp(sigma * g / _grf_pointwise_std(n_pix, tau, alpha))


class DarcyFEM:
    """P1 finite elements for ``-div(a grad u) = f``, ``u = 0`` on the boundary of ``[0,1]^2``.

    The mesh is the tensor grid with ``N = 2 * refine * (n_pix - 1) + 1`` nodes per side, each
    square cut into two right triangles: every pixel edge ``(i + 1/2)/(n_pix - 1)`` is a mesh
    line, so a pixel-wise constant ``a`` is constant on each triangle, and every pixel centre is
    a mesh node (``u`` on the pixel grid is read off without interpolation). Right triangles
    make the stiffness matrix an M-matrix: the discrete maximum principle holds.

    Parameters
    ----------
    n_pix : int
        Side of the coefficient / output grid (29 in the paper).
    refine : int
        ``1, 2, 4`` give ``N = 57, 113, 225`` for ``n_pix = 29``.
    f : float
        Constant source (10 in the paper).
    """

    def __init__(self, n_pix: int = 29, refine: int = 2, f: float = 10.0) -> None:
        from skfem import (
            Basis,
            BilinearForm,
            ElementTriP0,
            ElementTriP1,
            LinearForm,
            MeshTri,
        )
        from skfem.helpers import dot, grad
        if n_pix < 3 or refine < 1:
            raise ValueError(f"DarcyFEM needs n_pix >= 3 and refine >= 1, got n_pix={n_pix}, refine={refine}")
        self.n_pix, self.refine, self.f = n_pix, refine, float(f)
        n = 2 * refine * (n_pix - 1) + 1
        xs = np.linspace(0.0, 1.0, n)
        self.mesh = MeshTri.init_tensor(xs, xs)
        self.basis = Basis(self.mesh, ElementTriP1())
        centroids = self.mesh.p[:, self.mesh.t].mean(axis=1)           # (2, n_elem)
        pix = np.rint(centroids * (n_pix - 1)).astype(np.int64)
        self.element_pixel = pix[0] * n_pix + pix[1]                   # flat index into a[i, j]

        @BilinearForm
        def stiffness(u, v, w):
            return dot(grad(u), grad(v))

        @BilinearForm
        def weighted_mass(u, v, w):
            return w["e"] * u * v

        @BilinearForm
        def mass(u, v, w):
            return u * v

        # per-entry element index of the COO data (found from a mass form weighted by element id + 1)
        p0 = self.basis.with_element(ElementTriP0())
        ids = p0.interpolate(np.arange(self.mesh.t.shape[1], dtype=float) + 1.0)
        m_id = weighted_mass.coo_data(self.basis, e=ids)
        m_one = mass.coo_data(self.basis)
        self._entry_elem = np.rint(m_id.data / m_one.data).astype(np.int64) - 1
        coo = stiffness.coo_data(self.basis)
        self._rows, self._cols, self._kdata = coo.indices[0], coo.indices[1], coo.data
        self._ndofs = self.basis.N

        @LinearForm
        def load(v, w):
            return self.f * v

        self._b = load.assemble(self.basis)
        self._interior = self.basis.complement_dofs(self.basis.get_dofs())
        p = self.mesh.p
        node = np.rint(p * (n - 1)).astype(np.int64)
        on_grid = (node[0] % (2 * refine) == 0) & (node[1] % (2 * refine) == 0)
        idx = np.full((n_pix, n_pix), -1, dtype=np.int64)
        idx[node[0, on_grid] // (2 * refine), node[1, on_grid] // (2 * refine)] = np.nonzero(on_grid)[0]
        self.grid_nodes = idx                                           # (n_pix, n_pix) mesh node ids

    def element_coefficient(self, a: np.ndarray) -> np.ndarray:
        """``a`` on pixels ``(n_pix, n_pix)`` -> one value per triangle ``(n_elem,)``."""
        a = np.asarray(a, dtype=np.float64)
        if a.shape != (self.n_pix, self.n_pix):
            raise ValueError(f"coefficient has shape {a.shape}, expected ({self.n_pix}, {self.n_pix}); "
                             "resample it to the solver's n_pix")
        if not np.all(a > 0):
            raise ValueError(f"coefficient must be positive everywhere (min {a.min():.3g}); "
                             "Darcy needs an elliptic a(x) > 0")
        return a.reshape(-1)[self.element_pixel]

    def solve_nodal(self, a: np.ndarray) -> np.ndarray:
        """Nodal P1 solution ``(n_nodes,)`` for the pixel coefficient ``a : (n_pix, n_pix)``."""
        import scipy.sparse as sp
        import scipy.sparse.linalg as spla
        a_el = self.element_coefficient(a)
        A = sp.csr_matrix((self._kdata * a_el[self._entry_elem], (self._rows, self._cols)),
                          shape=(self._ndofs, self._ndofs))
        inner = self._interior
        u = np.zeros(self._ndofs)
        u[inner] = spla.spsolve(A[inner][:, inner].tocsc(), self._b[inner])
        return u

    def evaluate(self, u_nodal: np.ndarray, a: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The P1 function ``u_nodal`` at points ``x : (M, 2)``: values ``(M,)``, gradients ``(M, 2)``
        and the coefficient ``a`` of the containing triangle ``(M,)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != 2 or x.min() < 0.0 or x.max() > 1.0:
            raise ValueError(f"x must be (M, 2) points in the unit square, got shape {x.shape}")
        n = self.mesh.p.shape[1]
        side = round(np.sqrt(n)) - 1
        # right triangles of the tensor mesh: locate the cell, then the half by brute force on 2 candidates
        cells = self._cell_elements(side)
        i = np.minimum((x[:, 0] * side).astype(np.int64), side - 1)
        j = np.minimum((x[:, 1] * side).astype(np.int64), side - 1)
        cand = cells[i, j]                                              # (M, 2) triangle ids
        lam0 = self._barycentric(cand[:, 0], x)
        inside0 = lam0.min(axis=1) >= -1e-12
        elem = np.where(inside0, cand[:, 0], cand[:, 1])
        lam = np.where(inside0[:, None], lam0, self._barycentric(cand[:, 1], x))
        vert = self.mesh.t[:, elem]                                     # (3, M)
        vals = u_nodal[vert]                                            # (3, M)
        u = (lam.T * vals).sum(0)
        p = self.mesh.p[:, vert]                                        # (2, 3, M)
        J = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]], axis=2)    # (2, M, 2): columns e1, e2
        J = np.moveaxis(J, 1, 0)                                        # (M, 2, 2)
        du = np.stack([vals[1] - vals[0], vals[2] - vals[0]], axis=1)   # (M, 2)
        grad = np.linalg.solve(np.swapaxes(J, 1, 2), du[..., None])[..., 0]
        return u, grad, self.element_coefficient(a)[elem]

    def element_quadrature(self, u_nodal: np.ndarray, a: np.ndarray, intorder: int = 6
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Quadrature points ``(E, G, 2)``, weights ``(E, G)`` and the constant flux ``a grad u_h`` ``(E, 2)``
        of every triangle (for :func:`solvers.dgno.weak_form.weak_residual_elementwise`)."""
        from skfem import Basis, ElementTriP1
        basis = Basis(self.mesh, ElementTriP1(), intorder=intorder)
        pts = np.moveaxis(basis.mapping.F(basis.X), 0, -1)             # (E, G, 2)
        grad = basis.interpolate(u_nodal).grad.mean(axis=-1).T         # (E, 2), constant per element
        return pts, basis.dx, self.element_coefficient(a)[:, None] * grad

    def _cell_elements(self, side: int) -> np.ndarray:
        if getattr(self, "_cells", None) is None:
            centroids = self.mesh.p[:, self.mesh.t].mean(axis=1)
            ci = np.minimum((centroids * side).astype(np.int64), side - 1)
            order = np.lexsort((np.arange(ci.shape[1]), ci[1], ci[0]))
            self._cells = order.reshape(side, side, 2)
        return self._cells

    def _barycentric(self, elem: np.ndarray, x: np.ndarray) -> np.ndarray:
        p = self.mesh.p[:, self.mesh.t[:, elem]]                        # (2, 3, M)
        T = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]], axis=2)    # (2, M, 2)
        T = np.moveaxis(T, 1, 0)
        l12 = np.linalg.solve(T, (x - p[:, 0].T)[..., None])[..., 0]   # (M, 2)
        return np.concatenate([1.0 - l12.sum(1, keepdims=True), l12], axis=1)

    def solve(self, a: np.ndarray) -> np.ndarray:
        """Solution on the pixel grid ``(n_pix, n_pix)`` (exact nodal values) for ``a : (n_pix, n_pix)``."""
        return self.solve_nodal(a)[self.grid_nodes]


@dataclass
class DarcyData:
    """Samples ``a[s], u[s]`` on the ``P x P`` grid; ``x[i, j] = (i, j)/(P-1)``.

    Attributes
    ----------
    a, u : (n, P, P) float64 arrays
    kind : str
    seed, refine : int
    seconds : float
        Wall time of the FEM solves that produced the samples (also when loaded from the cache).
    cached : bool
        Whether the samples were loaded from the cache.
    """

    a: np.ndarray
    u: np.ndarray
    kind: str
    seed: int
    refine: int
    seconds: float = 0.0
    cached: bool = False

    @property
    def n_pix(self) -> int:
        return self.a.shape[-1]

    def grid(self) -> np.ndarray:
        """Grid points ``(P*P, 2)`` in the order of ``a[s].reshape(-1)``."""
        x = np.linspace(0.0, 1.0, self.n_pix)
        X, Y = np.meshgrid(x, x, indexing="ij")
        return np.stack([X.ravel(), Y.ravel()], axis=1)


def sample_coefficient(kind: str, seed: int, index: int, n_pix: int = 29) -> np.ndarray:
    """Coefficient number ``index`` of the stream ``seed`` (independent of how many are drawn)."""
    if kind not in KINDS:
        raise ValueError(f"unknown coefficient kind {kind!r}; use one of {KINDS}")
    g = gaussian_random_field(n_pix, np.random.default_rng([seed, index]))
    return two_phase_coefficient(g) if kind == "two_phase" else lognormal_coefficient(g)


def _cache_file(cache_dir: str | os.PathLike, kind: str, n: int, seed: int, n_pix: int, refine: int) -> Path:
    return Path(cache_dir) / f"darcy_{kind}_n{n}_seed{seed}_p{n_pix}_r{refine}.npz"


def generate_darcy(n: int, kind: str = "two_phase", seed: int = 0, n_pix: int = 29, refine: int = 2,
                   cache_dir: str | os.PathLike | None = None, progress: bool = False) -> DarcyData:
    """``n`` coefficient/solution pairs from the stream ``seed``, cached when ``cache_dir`` is given.

    Sample ``s`` depends only on ``(kind, seed, s)``, so different seeds give disjoint
    train/test sets. The cache is an ``.npz`` (loaded with ``allow_pickle=False``) written atomically.
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    path = _cache_file(cache_dir, kind, n, seed, n_pix, refine) if cache_dir is not None else None
    if path is not None and path.exists():
        with np.load(path, allow_pickle=False) as z:
            return DarcyData(a=z["a"], u=z["u"], kind=kind, seed=seed, refine=refine,
                             seconds=float(z["seconds"]) if "seconds" in z else float("nan"), cached=True)
    started = time.perf_counter()
    fem = DarcyFEM(n_pix=n_pix, refine=refine)
    a = np.stack([sample_coefficient(kind, seed, s, n_pix) for s in range(n)])
    u = np.empty_like(a)
    for s in tqdm(range(n), desc=f"darcy {kind}", disable=not progress, dynamic_ncols=True):
        u[s] = fem.solve(a[s])
    seconds = time.perf_counter() - started
    if path is not None:
        with atomic_path(path) as tmp:
            np.savez(tmp, a=a, u=u, seconds=np.array(seconds))
        logger.info("wrote %d Darcy samples to %s (%.1f s)", n, path, seconds)
    return DarcyData(a=a, u=u, kind=kind, seed=seed, refine=refine, seconds=seconds)


@dataclass
class SelfCheck:
    """Result of :func:`self_check`: worst ``h`` vs ``h/2`` relative L2 difference and min/max of ``u``."""

    rel_diff_h_h2: float
    min_u: float
    max_boundary_u: float
    passed: bool


def self_check(a: np.ndarray, refine: int = 2, tol: float = 5e-3) -> SelfCheck:
    """Solve ``a : (m, P, P)`` at ``refine`` and ``2 * refine``; check agreement and ``u >= 0``.

    With ``f > 0`` the maximum principle gives ``u >= 0`` with ``u = 0`` on the boundary; the
    right-triangle mesh makes it hold for the discrete solution too.
    """
    a = np.asarray(a)
    a = a[None] if a.ndim == 2 else a
    coarse, fine = DarcyFEM(a.shape[-1], refine), DarcyFEM(a.shape[-1], 2 * refine)
    worst, min_u, bnd = 0.0, np.inf, 0.0
    for a_s in a:
        uc, uf = coarse.solve_nodal(a_s), fine.solve(a_s)
        ug = uc[coarse.grid_nodes]
        worst = max(worst, float(np.linalg.norm(ug - uf) / np.linalg.norm(uf)))
        min_u = min(min_u, float(uc.min()))
        bnd = max(bnd, float(np.abs(uc[coarse.basis.get_dofs().all()]).max()))
    return SelfCheck(worst, min_u, bnd, bool(worst <= tol and min_u >= -1e-12 and bnd == 0.0))
