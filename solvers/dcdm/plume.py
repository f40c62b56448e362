"""A small smoke-plume simulator on a staggered grid, the test bed for DCDM pressure solves.

Grid and fields (``n^3`` cells on the unit box, spacing ``h = 1/n``, C-order indices
``(i, j, k)`` along ``x, y, z``; ``z`` is up):

* ``u : (n+1, n, n)`` x-velocity on the faces ``x = i h``, ``v : (n, n+1, n)``,
  ``w : (n, n, n+1)`` likewise (MAC grid), float64;
* ``density : (n, n, n)`` smoke density at cell centres;
* ``solid : (n, n, n)`` bool obstacle mask, which may change every step.

Boundaries: Neumann walls (normal velocity 0) on every side except the open top ``z+``
(``p = 0`` outside), a prescribed inflow through a disc in the bottom wall, and the
obstacle's velocity on every face that touches a solid cell.

One step: (1) smoke source and buoyancy, (2) semi-Lagrangian advection (RK2 backtrace,
trilinear interpolation) of ``u, v, w, density``, (3) wall, inflow and obstacle face
velocities, (4) pressure solve, (5) velocity correction.

Pressure scaling. With ``D u`` the net outflow of a cell in face units,
``div_h u = D u / h``, and the update ``u_f -= (p_nb - p_c) / h`` on the faces between
two fluid cells and on the open top (ghost ``p = 0``), the divergence becomes
``div_h u + (A p) / h^2`` where ``A`` is :class:`~sciml.linalg.PoissonStencil`
(``-h^2`` Laplacian, integer coefficients). So the solve is ``A p = -h^2 div_h u = -h D u``
on fluid cells, and the divergence left over is ``(A p - b) / h^2``: its 2-norm is at most
``rtol`` times the divergence before projection. ``p`` absorbs ``dt / rho``; the physical
pressure (``rho = 1``) written to ParaView is ``p / dt``.
"""
from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sciml.io import write_pvd, write_vti
from sciml.linalg import PoissonStencil, SolveResult, cg, enclosed_fluid
from solvers.dcdm.scenes import Sphere

logger = logging.getLogger(__name__)

PressureSolve = Callable[[PoissonStencil, torch.Tensor], SolveResult]
Velocity = tuple[float, float, float]


@dataclass
class PlumeResult:
    """Per-step statistics and final state of :func:`simulate_plume`.

    Attributes
    ----------
    iterations, residuals, solve_seconds, converged : lists, one entry per step
        Pressure-solve iterations, true relative residual ``||b - A p|| / ||b||`` (recomputed
        here, not taken from the solver), wall seconds of the ``pressure_solve`` call, and
        the solver's convergence flag.
    divergence : list of float
        ``max |div_h u|`` over fluid cells after projection (units 1 / time).
    divergence_before : list of float
        The same before projection.
    divergence_ratio : list of float
        ``||div_h u||_2`` after over before projection (<= the solver's ``rtol``).
    smoke_height : list of float
        Density-weighted mean height ``z`` of the smoke (box units) after each step.
    files : list of Path
        The ``.vti`` frames written (cell data ``density``, ``pressure``, ``speed``,
        ``solid``, ``velocity`` (n, n, n, 3) at cell centres).
    pvd : Path or None
        The ``.pvd`` series referencing ``files`` (``None`` without ``out_dir``).
    u, v, w : (n+1, n, n), (n, n+1, n), (n, n, n+1) tensors
        Final face velocities.
    density, pressure : (n, n, n) tensors
        Final smoke density and pressure ``p / dt`` (zero in solid cells).
    solid : (n, n, n) bool tensor
        Final solid mask (obstacle plus sealed pockets).
    obstacle_velocity : (3,) tuple
        Velocity of the obstacle at the last step.
    dt : float
        Time step used.
    """

    iterations: list[int] = field(default_factory=list)
    residuals: list[float] = field(default_factory=list)
    solve_seconds: list[float] = field(default_factory=list)
    converged: list[bool] = field(default_factory=list)
    divergence: list[float] = field(default_factory=list)
    divergence_before: list[float] = field(default_factory=list)
    divergence_ratio: list[float] = field(default_factory=list)
    smoke_height: list[float] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    pvd: Path | None = None
    u: torch.Tensor | None = None
    v: torch.Tensor | None = None
    w: torch.Tensor | None = None
    density: torch.Tensor | None = None
    pressure: torch.Tensor | None = None
    solid: torch.Tensor | None = None
    obstacle_velocity: Velocity = (0.0, 0.0, 0.0)
    dt: float = 0.0


def default_dt(n: int) -> float:
    """The default time step ``h = 1/n``: one cell per step at the inflow speed 1."""
    return 1.0 / n


def moving_sphere_obstacle(n: int, steps: int, *, dt: float | None = None, radius: float = 0.15,
                           height: float = 0.5, start: float = 0.2, end: float = 0.8
                           ) -> Callable[[int], tuple[np.ndarray, Velocity]]:
    """A sphere crossing the box along ``x`` at constant speed, at mid height.

    Parameters
    ----------
    n : int
        Cells per side.
    steps : int
        Steps the crossing takes (from ``x = start`` to ``x = end``).
    dt : float, optional
        Time step, to convert the motion to a velocity (default :func:`default_dt`).
    radius, height, start, end : float
        Sphere radius, centre height ``z`` and first / last centre ``x`` (box units); ``y = 1/2``.

    Returns
    -------
    callable ``step -> (solid, velocity)``
        ``solid`` is an (n, n, n) bool array, ``velocity`` the sphere's (3,) velocity
        (box units per unit time).
    """
    dt = default_dt(n) if dt is None else float(dt)
    speed = (end - start) / (max(steps, 1) * dt)

    def obstacle(step: int) -> tuple[np.ndarray, Velocity]:
        sphere = Sphere((start + speed * step * dt, 0.5, height), radius)
        return sphere.mask((n, n, n)), (speed, 0.0, 0.0)
    return obstacle


def simulate_plume(n: int = 32, steps: int = 20, *, pressure_solve: PressureSolve | None = None,
                   obstacle=None, dt: float | None = None, out_dir: str | Path | None = None, every: int = 1,
                   progress: bool = False, inflow_speed: float = 1.0, buoyancy: float = 4.0,
                   source_radius: float = 0.12, device=None) -> PlumeResult:
    """Run a buoyant smoke plume around a (moving) obstacle with a pluggable pressure solver.

    Parameters
    ----------
    n : int
        Cells per side (``n >= 4``); spacing ``h = 1/n``.
    steps : int
        Time steps.
    pressure_solve : callable ``(A: PoissonStencil, b: (n^3,) tensor) -> SolveResult``, optional
        Solves ``A p = b`` (see the module docstring for the scaling); called once per step.
        Default: :func:`sciml.linalg.cg` with ``rtol=1e-6``. DCDM plugs in as
        ``DCDMSolver.from_pretrained().solve``.
    obstacle : None, False, callable or iterable
        ``None``: :func:`moving_sphere_obstacle`. ``False``: no obstacle. A callable
        ``step -> mask`` or an iterable of masks, where a mask is an (n, n, n) bool array
        or tensor, or a pair ``(mask, velocity)`` with the obstacle's (3,) velocity (zero if
        not given). Fluid pockets sealed by the obstacle are made solid for that step.
    dt : float, optional
        Time step (default :func:`default_dt`).
    out_dir : str or Path, optional
        Where to write ``plume_XXXX.vti`` frames and ``plume.pvd``; nothing is written if None.
    every : int
        Write a frame after every ``every``-th step.
    progress : bool
        Show a tqdm bar.
    inflow_speed : float
        Upward velocity through the inflow disc in the bottom wall.
    buoyancy : float
        Upward acceleration per unit density.
    source_radius : float
        Radius of the inflow disc (box units; at least 1.5 cells).
    device : str or torch.device, optional
        Where the fields live (default CPU).

    Returns
    -------
    PlumeResult
    """
    if n < 4 or steps < 0 or every < 1:
        raise ValueError(f"need n >= 4, steps >= 0 and every >= 1, got n={n}, steps={steps}, every={every}")
    dt = default_dt(n) if dt is None else float(dt)
    if pressure_solve is None:
        def pressure_solve(A, b):
            return cg(A, b, rtol=1e-6)
    if obstacle is None:
        obstacle = moving_sphere_obstacle(n, steps, dt=dt)
    masks = _obstacle_steps(obstacle, n)
    sim = _Plume(n, dt, inflow_speed, buoyancy, source_radius, torch.device(device or "cpu"))
    result, frames = PlumeResult(dt=dt), []
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm
    bar = tqdm(total=steps, desc="plume", unit="step", disable=not progress)
    for step in range(steps):
        solid, velocity = masks(step)
        sim.step(solid, velocity, pressure_solve, result)
        logger.debug("step %d: %d iterations, residual %.2e, max|div| %.2e", step, result.iterations[-1],
                     result.residuals[-1], result.divergence[-1])
        if out is not None and (step + 1) % every == 0:
            frames.append(((step + 1) * dt, sim.write_frame(out / f"plume_{step + 1:04d}.vti")))
            result.pvd = write_pvd(out / "plume.pvd", frames)   # rewritten each frame: a kill loses nothing
        bar.set_postfix(iters=result.iterations[-1], refresh=False)
        bar.update(1)
    bar.close()
    result.files = [f for _, f in frames]
    result.u, result.v, result.w, result.density = sim.u, sim.v, sim.w, sim.density
    result.pressure, result.solid, result.obstacle_velocity = sim.pressure, sim.solid, sim.obstacle_velocity
    return result


def _obstacle_steps(obstacle, n: int) -> Callable[[int], tuple[np.ndarray, Velocity]]:
    """Normalise the ``obstacle`` argument to ``step -> ((n, n, n) bool array, (3,) velocity)``."""
    if obstacle is False:
        return lambda step: (np.zeros((n, n, n), bool), (0.0, 0.0, 0.0))
    if callable(obstacle):
        source = obstacle
    else:
        iterator = iter(obstacle)

        def source(step):
            try:
                return next(iterator)
            except StopIteration:
                raise ValueError(f"the obstacle iterable ran out at step {step}; give one mask per step") from None

    def get(step: int):
        item = source(step)
        mask, velocity = item if isinstance(item, tuple) and len(item) == 2 else (item, (0.0, 0.0, 0.0))
        mask = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        if mask.shape != (n, n, n) or mask.dtype != bool:
            raise ValueError(f"obstacle mask at step {step} must be a bool array of shape {(n, n, n)}, got "
                             f"{mask.dtype} {mask.shape}")
        velocity = tuple(float(c) for c in velocity)
        if len(velocity) != 3:
            raise ValueError(f"obstacle velocity at step {step} must have 3 components, got {velocity}")
        return mask, velocity
    return get


class _Plume:
    """The simulation state and the five stages of a step (see the module docstring)."""

    def __init__(self, n: int, dt: float, inflow_speed: float, buoyancy: float, source_radius: float,
                 device: torch.device):
        self.n, self.h, self.dt, self.buoyancy = n, 1.0 / n, dt, buoyancy
        self.kw = kw = dict(dtype=torch.float64, device=device)
        self.u, self.v, self.w = (torch.zeros(_face_shape(n, a), **kw) for a in range(3))
        self.density = torch.zeros((n,) * 3, **kw)
        self.pressure = torch.zeros((n,) * 3, **kw)
        self.solid = torch.zeros((n,) * 3, dtype=torch.bool, device=device)
        self.obstacle_velocity: Velocity = (0.0, 0.0, 0.0)
        centres = (torch.arange(n, **kw) + 0.5) * self.h
        disc = (centres[:, None] - 0.5) ** 2 + (centres[None, :] - 0.5) ** 2 < max(source_radius, 1.5 * self.h) ** 2
        self.inflow, self.inflow_speed = disc, inflow_speed          # disc: (n, n) bottom faces / cells
        # Sample points (physical coordinates, (..., 3)) of each face grid and of the cell centres.
        self.points = [_positions(_face_shape(n, a), _offsets(a), self.h, kw) for a in range(3)]
        self.points.append(_positions((n,) * 3, (0.5, 0.5, 0.5), self.h, kw))

    # (1) ---------------------------------------------------------------------------------
    def add_source(self) -> None:
        """Smoke in the bottom cells above the inflow disc; buoyancy ``buoyancy * density`` on ``w``."""
        bottom = self.density[:, :, 0]
        bottom[self.inflow] = torch.clamp(bottom[self.inflow], min=1.0)
        self.w[:, :, 1:-1] += self.dt * self.buoyancy * 0.5 * (self.density[:, :, :-1] + self.density[:, :, 1:])

    # (2) ---------------------------------------------------------------------------------
    def velocity_at(self, x: torch.Tensor) -> torch.Tensor:
        """Trilinear velocity ``(..., 3)`` at physical points ``x : (..., 3)``."""
        return torch.stack([_trilinear(f, x / self.h - torch.tensor(_offsets(a), **self.kw))
                            for a, f in enumerate((self.u, self.v, self.w))], dim=-1)

    def advect(self) -> None:
        """Semi-Lagrangian advection of ``u, v, w, density`` with a midpoint (RK2) backtrace."""
        fields = (self.u, self.v, self.w, self.density)
        offsets = [_offsets(a) for a in range(3)] + [(0.5, 0.5, 0.5)]
        new = []
        for f, x, off in zip(fields, self.points, offsets):
            mid = x - 0.5 * self.dt * self.velocity_at(x)
            back = x - self.dt * self.velocity_at(mid)
            new.append(_trilinear(f, back / self.h - torch.tensor(off, **self.kw)))
        self.u, self.v, self.w, self.density = new

    # (3) ---------------------------------------------------------------------------------
    def set_boundaries(self, solid: torch.Tensor, velocity: Velocity) -> None:
        """Obstacle velocity on faces touching solid cells, 0 on walls, inflow under the source."""
        for a, f in enumerate((self.u, self.v, self.w)):
            f[_touches(solid, a)] = velocity[a]
            if a < 2:
                f.index_fill_(a, torch.tensor([0, self.n], device=f.device), 0.0)
        self.w[:, :, 0] = torch.where(self.inflow & ~solid[:, :, 0], self.inflow_speed, 0.0)

    # (4) + (5) ---------------------------------------------------------------------------
    def divergence(self) -> torch.Tensor:
        """``div_h u : (n, n, n)`` at the cell centres."""
        return (self.u.diff(dim=0) + self.v.diff(dim=1) + self.w.diff(dim=2)) / self.h

    def project(self, A: PoissonStencil, pressure_solve: PressureSolve, result: PlumeResult) -> None:
        """Solve ``A p = -h^2 div_h u`` on fluid cells and subtract ``grad p`` from the free faces."""
        fluid, h = A.fluid, self.h
        before = self.divergence() * fluid
        b = (-h * h * before).reshape(-1)
        start = time.perf_counter()
        solve = pressure_solve(A, b)
        seconds = time.perf_counter() - start
        p = solve.x.detach().to(**self.kw).reshape(self.n, self.n, self.n) * fluid
        bnorm = float(torch.linalg.vector_norm(b))
        residual = float(torch.linalg.vector_norm(b - A.matvec(p.reshape(-1)))) / bnorm if bnorm > 0 else 0.0
        for a, f in enumerate((self.u, self.v, self.w)):
            both = fluid.narrow(a, 0, self.n - 1) & fluid.narrow(a, 1, self.n - 1)
            f.narrow(a, 1, self.n - 1).sub_(torch.where(both, p.diff(dim=a) / h, 0.0))
        self.w[:, :, -1] += torch.where(fluid[:, :, -1], p[:, :, -1], 0.0) / h   # ghost p = 0 above the top
        after = self.divergence() * fluid
        self.pressure = p / self.dt
        result.iterations.append(int(solve.iterations))
        result.residuals.append(residual)
        result.solve_seconds.append(seconds)
        result.converged.append(bool(solve.converged))
        result.divergence_before.append(float(before.abs().max()))
        result.divergence.append(float(after.abs().max()))
        norm_before = float(torch.linalg.vector_norm(before))
        result.divergence_ratio.append(float(torch.linalg.vector_norm(after)) / norm_before
                                       if norm_before > 0 else 0.0)

    def step(self, solid_np: np.ndarray, velocity: Velocity, pressure_solve: PressureSolve,
             result: PlumeResult) -> None:
        """Advance one time step with the obstacle ``solid_np : (n, n, n)`` moving at ``velocity``."""
        solid_np = solid_np | enclosed_fluid(solid_np, ("z+",))
        solid = torch.as_tensor(solid_np, device=self.density.device)
        self.solid, self.obstacle_velocity = solid, velocity
        self.add_source()
        self.advect()
        self.set_boundaries(solid, velocity)
        self.density = self.density.masked_fill(solid, 0.0).clamp(min=0.0)
        A = PoissonStencil(self.n, solid_np, dirichlet=("z+",), dtype=torch.float64, device=self.density.device)
        self.project(A, pressure_solve, result)
        z = self.points[3][..., 2]
        mass = float(self.density.sum())
        result.smoke_height.append(float((self.density * z).sum()) / mass if mass > 0 else 0.0)

    def write_frame(self, path: Path) -> Path:
        """Write the cell-centred fields of the current state to ``path`` (``.vti``)."""
        velocity = torch.stack([0.5 * (f.narrow(a, 0, self.n) + f.narrow(a, 1, self.n))
                                for a, f in enumerate((self.u, self.v, self.w))], dim=-1)
        cells = {"density": self.density, "pressure": self.pressure, "speed": velocity.norm(dim=-1),
                 "solid": self.solid.to(torch.uint8), "velocity": velocity}
        return write_vti(path, cell_data={k: t.cpu() for k, t in cells.items()}, spacing=(self.h,) * 3)


def _face_shape(n: int, axis: int) -> tuple[int, int, int]:
    """Shape of the face grid normal to ``axis``: ``n + 1`` faces along it, ``n`` across."""
    return tuple(n + 1 if d == axis else n for d in range(3))


def _offsets(axis: int) -> tuple[float, float, float]:
    """Position of face ``(0, 0, 0)`` normal to ``axis`` in cell units."""
    return tuple(0.0 if d == axis else 0.5 for d in range(3))


def _positions(shape, offset, h: float, kw: dict) -> torch.Tensor:
    """Physical coordinates ``(*shape, 3)`` of the points ``(index + offset) * h``."""
    axes = [(torch.arange(s, **kw) + o) * h for s, o in zip(shape, offset)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def _touches(solid: torch.Tensor, axis: int) -> torch.Tensor:
    """Faces normal to ``axis`` with a solid cell on either side, shape of the face grid."""
    pad = [0] * 6
    pad[2 * (2 - axis)], pad[2 * (2 - axis) + 1] = 1, 1      # F.pad order: last axis first
    padded = torch.nn.functional.pad(solid.to(torch.uint8), pad).bool()
    n = solid.shape[axis]
    return padded.narrow(axis, 0, n + 1) | padded.narrow(axis, 1, n + 1)


def _trilinear(field: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Trilinear interpolation of ``field : (X, Y, Z)`` at index coordinates ``idx : (..., 3)``.

    Points outside the grid are clamped to its boundary (constant extrapolation).
    """
    size = torch.tensor(field.shape, dtype=idx.dtype, device=idx.device)
    idx = torch.minimum(idx.clamp(min=0.0), size - 1)
    lo = torch.minimum(idx.floor(), size - 2).long()               # every axis has >= 2 points
    t = idx - lo
    strides = (field.shape[1] * field.shape[2], field.shape[2], 1)
    flat, out = field.reshape(-1), torch.zeros(idx.shape[:-1], dtype=field.dtype, device=field.device)
    for corner in itertools.product((0, 1), repeat=3):
        weight = torch.ones_like(out)
        index = torch.zeros(idx.shape[:-1], dtype=torch.long, device=field.device)
        for d, c in enumerate(corner):
            weight = weight * (t[..., d] if c else 1.0 - t[..., d])
            index = index + (lo[..., d] + c) * strides[d]
        out += weight * flat[index]
    return out
