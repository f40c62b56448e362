"""Geometric multigrid V-cycle preconditioner for :class:`~sciml.linalg.PoissonStencil`.

After McAdams, Sifakis & Teran (SCA 2010): a purely geometric, matrix-free,
cell-centred multigrid on the voxel grid whose V-cycle is symmetric, hence a valid
SPD preconditioner for CG: ``pcg(A, b, M=GeometricMultigrid(A))`` or :func:`mgpcg`.

* **Hierarchy.** Each level is padded with solid cells to even sizes and coarsened by
  2 per axis; a coarse cell is fluid when any of its 8 children is. The coarse operator
  is a 7-point stencil whose face weight *counts the fluid-fluid fine faces* crossing
  the coarse face and whose diagonal counts the fine faces leaving the block (Dirichlet
  faces included): exactly ``P^T A P / 2`` for piecewise-constant ``P`` (see
  :func:`coarsen`). It never leaks through thin walls and needs no Dirichlet bookkeeping.
* **Transfer.** ``P`` copies a coarse value to the fluid children; ``R = P^T`` sums them.
* **Smoothing.** Red-black Gauss-Seidel or damped Jacobi as steps ``x += W (b - A x)``
  with diagonal ``W``; the post-smoother runs them in reverse order (black-red after
  red-black), the adjoint of the pre-smoother. Optional extra sweeps on a band next to
  obstacles and walls (McAdams et al.'s boundary smoothing), mirrored as well.
* **Coarsest level.** Dense Cholesky on its fluid cells (float64, same device).

So the V-cycle ``M`` is symmetric, and positive definite on the fluid cells because
every smoothing step contracts in the energy norm. All work is tensor-wide (no loop over
cells); vectors are ``(nx, ny, nz, k)`` grids inside, so ``k`` right-hand sides share a cycle.
"""
from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F

from sciml.linalg.cg import pcg
from sciml.linalg.operator import LinearOperator
from sciml.linalg.result import SolveResult
from sciml.linalg.stencil import PoissonStencil

logger = logging.getLogger(__name__)

COARSE_SCALE = 0.5
MAX_DENSE = 2048
_OPTIONS = ("levels", "smoother", "pre", "post", "omega", "boundary_sweeps", "band", "coarsest")


class StencilLevel:
    """One grid level: a weighted 7-point stencil on an even-sized grid with a fluid mask.

    Parameters
    ----------
    diag : (nx, ny, nz) tensor
        Diagonal, zero at solid cells.
    links : list of three tensors
        ``links[a]``, of the grid shape less one along axis ``a``: weight of the face
        between cells ``m`` and ``m + 1`` along ``a`` (zero when either is solid).

    Notes
    -----
    Fluid cells are those with a positive diagonal. Every field carries a trailing
    singleton axis to broadcast against vectors stored as ``(nx, ny, nz, k)``.
    """

    def __init__(self, diag: torch.Tensor, links: list[torch.Tensor]):
        self.grid = tuple(diag.shape)
        self.diag = diag[..., None]
        self.links = [w[..., None] for w in links]
        self.mask = self.diag.sign()  # 1 on fluid, 0 on solid (float arithmetic beats bool ops on CPU)
        inv = torch.add(self.diag, 1.0).sub_(self.mask)  # diag on fluid, 1 on solid; few temporaries
        self.inv_diag = torch.div(self.mask, inv, out=inv)

    @property
    def fluid(self) -> torch.Tensor:
        """(nx, ny, nz, 1) bool, True on fluid cells."""
        return self.mask > 0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` for ``x : (nx, ny, nz, k)``."""
        return self._couple(self.diag * x, x, -1.0)

    def residual(self, b: torch.Tensor, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``b - A x`` for ``b, x : (nx, ny, nz, k)``, written to ``out`` when given."""
        return self._couple(torch.addcmul(b, self.diag, x, value=-1.0, out=out), x, 1.0)

    def _couple(self, out: torch.Tensor, x: torch.Tensor, sign: float) -> torch.Tensor:
        """Add ``sign * sum_f w_f x_neighbour`` to ``out`` in place."""
        for axis, w in enumerate(self.links):
            m = x.shape[axis] - 1
            if m > 0:
                out.narrow(axis, 0, m).addcmul_(w, x.narrow(axis, 1, m), value=sign)
                out.narrow(axis, 1, m).addcmul_(w, x.narrow(axis, 0, m), value=sign)
        return out


def red_black(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``weights : (nx, ny, nz, 1)`` into its red (``i + j + k`` even) and black parts."""
    red = weights.clone()
    for i, j, k in ((0, 0, 1), (0, 1, 0), (1, 0, 0), (1, 1, 1)):
        red[i::2, j::2, k::2] = 0.0
    return red, weights - red


def _every_other(x: torch.Tensor, axis: int, start: int) -> torch.Tensor:
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, None, 2)
    return x[tuple(index)]


def _pair_sum(x: torch.Tensor, axes) -> torch.Tensor:
    """Add neighbouring pairs ``2I, 2I+1`` along each of ``axes`` (halving them)."""
    for axis in axes:
        x = _every_other(x, axis, 0) + _every_other(x, axis, 1)
    return x


def _pad_to_even(diag: torch.Tensor, links: list[torch.Tensor]) -> StencilLevel:
    """Pad a level with solid cells at the high end of every odd axis."""
    extra = [s % 2 for s in diag.shape]
    pad = [0, extra[2], 0, extra[1], 0, extra[0]]
    if any(extra):
        diag, links = F.pad(diag, pad), [F.pad(w, pad) for w in links]
    return StencilLevel(diag, links)


def level_from_stencil(A: PoissonStencil, dtype: torch.dtype | None = None) -> StencilLevel:
    """The finest level: the coefficients of ``A`` (in ``dtype``, default ``A.dtype``), padded to even sizes."""
    dtype = dtype or A.dtype
    return _pad_to_even(A._diag.to(dtype), [w.to(dtype) for w in A._links])


def coarsen(level: StencilLevel, scale: float = COARSE_SCALE) -> StencilLevel:
    """The next coarser level: ``scale * P^T A P`` for piecewise-constant ``P``, as a 7-point stencil.

    Parameters
    ----------
    level : StencilLevel on an even ``(nx, ny, nz)`` grid
    scale : float
        ``1/2`` matches rediscretisation. The fine residual carries ``h^2 (-laplacian)``
        per cell, so the coarse equation ``(2h)^2 (-laplacian) e = 4 * mean(children)``
        reads ``A_2h e = (1/2) P^T r`` for the integer stencil ``A_2h`` on the coarse
        grid, i.e. ``2 A_2h e = P^T r``; on uniform fluid ``P^T A P = 4 A_2h`` (four
        fine faces per coarse face), hence ``P^T A P / 2``. Any ``scale > 0`` keeps
        the V-cycle SPD; this one gives the fastest convergence.

    Returns
    -------
    StencilLevel on the ``(nx/2, ny/2, nz/2)`` grid, padded to even sizes
    """
    diag = _pair_sum(level.diag[..., 0], range(3))
    links = []
    for axis, w in enumerate(level.links):
        w = w[..., 0]  # 2m - 1 faces along ``axis``: even ones inside a block, odd ones between blocks
        others = [a for a in range(3) if a != axis]
        diag = diag - 2.0 * _pair_sum(_every_other(w, axis, 0), others)
        links.append(scale * _pair_sum(_every_other(w, axis, 1), others))
    return _pad_to_even(scale * diag, links)


def prolong_add(x: torch.Tensor, coarse: torch.Tensor, fine: StencilLevel) -> None:
    """``x += P coarse``: add to ``x : (nx, ny, nz, k)`` the values of ``coarse : (>= nx/2, >= ny/2, >= nz/2, k)``
    (a coarse grid, possibly padded) at their fluid children."""
    (a, b, c), k = (s // 2 for s in fine.grid), x.shape[3]
    x.view(a, 2, b, 2, c, 2, k).addcmul_(coarse[:a, None, :b, None, :c, None], fine.mask.view(a, 2, b, 2, c, 2, 1))


def restrict(r: torch.Tensor, coarse: StencilLevel) -> torch.Tensor:
    """``P^T r``: sums of 2x2x2 blocks, ``(nx, ny, nz, k) -> coarse.grid + (k,)`` (zero-padded; r zero on solid)."""
    return _pad_grid(_pair_sum(r, range(3)), coarse.grid)


def _pad_grid(x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Zero-pad ``x : (mx, my, mz, k)`` at the high ends to ``grid + (k,)``."""
    if tuple(x.shape[:3]) == tuple(grid):
        return x
    return F.pad(x, [0, 0, 0, grid[2] - x.shape[2], 0, grid[1] - x.shape[1], 0, grid[0] - x.shape[0]])


def _boundary_band(level: StencilLevel, width: int) -> torch.Tensor:
    """(nx, ny, nz, 1) bool: fluid cells within ``width`` cells (max-norm) of a solid cell or the box."""
    solid = (1.0 - level.mask[..., 0])[None, None]
    near = F.max_pool3d(F.pad(solid, (width,) * 6, value=1.0), 2 * width + 1, stride=1)[0, 0]
    return (near > 0)[..., None] & level.fluid


def smoothing_steps(level: StencilLevel, smoother: str, sweeps: int, omega: float,
                    boundary_sweeps: int = 0, band: int = 2) -> list[torch.Tensor]:
    """Diagonal weights ``W : (nx, ny, nz, 1)`` of the pre-smoothing steps ``x += W * (b - A x)``.

    Each step is symmetric (``W`` diagonal, ``0 <= W <= 1/diag``); the post-smoother
    applies them in reverse order, which makes it the adjoint of the pre-smoother.
    """
    if smoother == "jacobi":
        steps = [omega * level.inv_diag] * sweeps
    else:
        steps = list(red_black(level.inv_diag if omega == 1.0 else omega * level.inv_diag)) * sweeps
    if boundary_sweeps > 0 and band > 0:
        near = _boundary_band(level, band)
        steps += list(red_black(level.inv_diag * near)) * boundary_sweeps
    return steps


class _CoarseSolver:
    """Exact solve on the fluid cells of the coarsest level by a float64 Cholesky factor,
    or, above ``MAX_DENSE`` fluid cells, 20 symmetric Gauss-Seidel sweeps."""

    def __init__(self, level: StencilLevel):
        self.level = level
        self.index = torch.nonzero(level.fluid.reshape(-1)).reshape(-1)
        nf, self.factor = self.index.numel(), None
        if nf > MAX_DENSE:
            logger.warning("coarsest multigrid level has %d fluid cells; smoothing it instead of an exact "
                           "solve (pass levels=None or a larger levels)", nf)
            self.steps = smoothing_steps(level, "rbgs", 20, 1.0)
        elif nf:
            size = level.diag.numel()
            basis = torch.zeros(size, nf, dtype=level.diag.dtype, device=level.diag.device)
            basis[self.index, torch.arange(nf, device=basis.device)] = 1.0
            dense = level.apply(basis.view(*level.grid, nf)).view(size, nf)[self.index]
            self.factor, info = torch.linalg.cholesky_ex(dense.double())
            pivots = self.factor.diagonal()
            if int(info) or float(pivots.min()) <= 1e-6 * float(pivots.max()):
                raise ValueError("the coarsest multigrid operator is singular: some fluid region touches no "
                                 "Dirichlet face; mark it solid (solid |= enclosed_fluid(solid, dirichlet)) or "
                                 "open a face")

    def __call__(self, b: torch.Tensor) -> torch.Tensor:
        if self.factor is None:
            return smooth(self.level, self.steps, b) if self.index.numel() else torch.zeros_like(b)
        out = torch.zeros_like(b)
        flat, dest = b.reshape(-1, b.shape[-1]), out.view(-1, b.shape[-1])
        dest[self.index] = torch.cholesky_solve(flat[self.index].double(), self.factor).to(b.dtype)
        return out


def smooth(level: StencilLevel, steps: list[torch.Tensor], b: torch.Tensor, coarse=None,
           out: torch.Tensor | None = None, work: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric smoothing from ``x = 0``: the steps, then ``coarse`` (if any), then the steps reversed.

    Parameters
    ----------
    level : StencilLevel
    steps : list of (nx, ny, nz, 1) tensors, from :func:`smoothing_steps`
    b : (nx, ny, nz, k) tensor, zero at solid cells
    coarse : callable ``(x) -> None`` adding the coarse-grid correction to ``x`` in place, optional
    out, work : (nx, ny, nz, k) tensors, optional
        Buffers for the result and for the residuals (saves allocations).

    Returns
    -------
    (nx, ny, nz, k) tensor, zero at solid cells
    """
    x = torch.mul(steps[0], b, out=out)
    for w in steps[1:]:
        x.addcmul_(w, level.residual(b, x, work))
    if coarse is not None:
        coarse(x)
    for w in reversed(steps):
        x.addcmul_(w, level.residual(b, x, work))
    return x


class GeometricMultigrid(LinearOperator):
    """One symmetric multigrid V-cycle as an SPD preconditioner for a :class:`PoissonStencil`.

    Parameters
    ----------
    A : PoissonStencil, shape (n, n)
    levels : int, optional
        Number of grid levels including the finest. Default: coarsen until the
        coarsest grid has at most ``coarsest`` cells per side.
    smoother : {"rbgs", "jacobi"}
        Red-black Gauss-Seidel (red then black before the coarse correction, black
        then red after it) or damped Jacobi.
    pre, post : int
        Smoothing sweeps before and after the coarse correction; they must be equal,
        otherwise the V-cycle is not symmetric and CG loses its guarantees.
    omega : float, optional
        Relaxation weight. Default ``6/7`` for Jacobi (the optimal 3D smoothing
        factor; ``2/3`` is the 1D/2D habit and takes ~25% more iterations) and ``1``
        for Gauss-Seidel.
    boundary_sweeps : int
        Extra mirrored Gauss-Seidel sweeps, on every level, on the cells within
        ``band`` cells of an obstacle or the box (McAdams et al.). Each costs two
        full-grid residuals; worth it for hard geometry, not by default.
    band : int
        Width of that boundary band in cells.
    dtype : torch.dtype, optional
        Precision of the cycle (default ``A.dtype``). ``torch.float32`` under a float64
        ``A`` halves the memory traffic (cycle ~1.5x faster on a CPU) at no measured
        iteration cost, but ``M`` is then symmetric only to float32 rounding.
    coarsest : int
        Cells per side of the coarsest grid when ``levels`` is not given. The default
        4 (a 64-cell Cholesky) saves ~2.5 ms of setup at 64^3 on a CPU over 8 (512
        cells), for at most one more CG iteration.

    Attributes
    ----------
    levels : list of StencilLevel
        Finest first; ``[lv.grid for lv in M.levels]`` shows the hierarchy.
    setup_time : float
        Seconds the hierarchy took to build (device synchronised).

    Notes
    -----
    ``matvec(r)`` maps ``r : (n,)`` or ``(n, k)`` to ``z ~ A^{-1} r``, zero at solid
    cells (whatever ``r`` holds there). ``_matvec``, which :func:`~sciml.linalg.pcg`
    calls, also accepts another floating dtype (e.g. float64 Krylov vectors with a
    float32 ``A``) and returns that dtype.
    """

    symmetric = True

    def __init__(self, A: PoissonStencil, levels: int | None = None, smoother: str = "rbgs", pre: int = 2,
                 post: int = 2, omega: float | None = None, *, boundary_sweeps: int = 0, band: int = 2,
                 dtype: torch.dtype | None = None, coarsest: int = 4):
        _check_arguments(A, levels, smoother, pre, post)
        start = time.perf_counter()
        self.A, self.options = A, dict(levels=levels, smoother=smoother, pre=pre, post=post, omega=omega,
                                       boundary_sweeps=boundary_sweeps, band=band, dtype=dtype, coarsest=coarsest)
        self.shape, self.dtype, self.device = A.shape, A.dtype, A.device
        omega = (6.0 / 7.0 if smoother == "jacobi" else 1.0) if omega is None else float(omega)
        self.cycle_dtype = dtype or A.dtype
        self.levels = [level_from_stencil(A, self.cycle_dtype)]
        while len(self.levels) < levels if levels else max(self.levels[-1].grid) > coarsest:
            if max(self.levels[-1].grid) <= 2:
                break
            self.levels.append(coarsen(self.levels[-1]))
        self.steps = [smoothing_steps(lv, smoother, pre, omega, boundary_sweeps, band) for lv in self.levels[:-1]]
        self.coarse_solve = _CoarseSolver(self.levels[-1])
        self._work_k, self._work = None, []
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.setup_time = time.perf_counter() - start
        logger.debug("multigrid: %d levels %s, setup %.3g s", len(self.levels),
                     [lv.grid for lv in self.levels], self.setup_time)

    def _matvec(self, r: torch.Tensor) -> torch.Tensor:
        nx, ny, nz = self.A.grid
        fine = self.levels[0]
        b = _pad_grid(r.reshape(nx, ny, nz, -1).to(self.cycle_dtype), fine.grid)
        z = self._cycle(0, b * fine.mask)
        return z[:nx, :ny, :nz].reshape(r.shape).to(r.dtype)

    def _cycle(self, depth: int, b: torch.Tensor) -> torch.Tensor:
        """V-cycle from a zero guess on level ``depth``: ``b : (grid, k) -> x : (grid, k)``."""
        if depth == len(self.levels) - 1:
            return self.coarse_solve(b)
        level = self.levels[depth]
        out, work = self._workspace(depth, b.shape[-1])

        def correct(x: torch.Tensor) -> None:
            coarse_b = restrict(level.residual(b, x, work), self.levels[depth + 1])
            prolong_add(x, self._cycle(depth + 1, coarse_b), level)

        return smooth(level, self.steps[depth], b, correct, out, work)

    def _workspace(self, depth: int, k: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Reused result and residual buffers of level ``depth`` for ``k`` columns (the
        finest result is always fresh: it goes to the caller). Not thread-safe."""
        if self._work_k != k:
            self._work_k = k
            new = [torch.empty(*lv.grid, k, dtype=self.cycle_dtype, device=self.device) for lv in self.levels[:-1]]
            self._work = [(None if d == 0 else torch.empty_like(r), r) for d, r in enumerate(new)]
        return self._work[depth]

    def to(self, device=None, dtype=None) -> "GeometricMultigrid":
        """Rebuild the hierarchy for ``A.to(device, dtype)``."""
        return GeometricMultigrid(self.A.to(device, dtype), **self.options)

    def __repr__(self) -> str:
        return f"GeometricMultigrid({[lv.grid for lv in self.levels]}, {self.options}, device={self.device})"


def mgpcg(A: PoissonStencil, b: torch.Tensor, x0: torch.Tensor | None = None, **kwargs) -> SolveResult:
    """Multigrid-preconditioned CG: build :class:`GeometricMultigrid` for ``A`` and call :func:`pcg`.

    Parameters
    ----------
    A : PoissonStencil, shape (n, n)
    b : (n,) tensor
    x0 : (n,) tensor, optional
    **kwargs
        ``levels, smoother, pre, post, omega, boundary_sweeps, band, coarsest`` and ``mg_dtype``
        (its ``dtype``) go to :class:`GeometricMultigrid`, the rest (``rtol``, ``dtype``...) to :func:`pcg`.

    Returns
    -------
    SolveResult
        ``info["setup_time"]`` (seconds to build the hierarchy, not included in
        ``wall_time``) and ``info["grids"]`` (the level shapes) added.
    """
    options = {key: kwargs.pop(key) for key in _OPTIONS if key in kwargs}
    options["dtype"] = kwargs.pop("mg_dtype", None)
    M = GeometricMultigrid(A, **options)
    result = pcg(A, b, x0, M=M, **kwargs)
    result.info.update(setup_time=M.setup_time, grids=[lv.grid for lv in M.levels])
    return result


def _check_arguments(A, levels, smoother: str, pre: int, post: int) -> None:
    if not isinstance(A, PoissonStencil):
        raise TypeError(f"GeometricMultigrid needs a PoissonStencil (it coarsens the voxel grid), got "
                        f"{type(A).__name__}; for other SPD matrices use M='jacobi' or an algebraic multigrid")
    if smoother not in ("rbgs", "jacobi"):
        raise ValueError(f"unknown smoother {smoother!r}; use 'rbgs' (red-black Gauss-Seidel) or 'jacobi'")
    if pre != post or pre < 1:
        raise ValueError(f"pre={pre} and post={post} smoothing sweeps must be equal and positive so that the "
                         "V-cycle is symmetric positive definite, as CG requires")
    if levels is not None and levels < 1:
        raise ValueError(f"levels={levels} must be at least 1 (or None to choose automatically)")
