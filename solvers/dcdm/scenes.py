"""Obstacle scenes in the unit cube for training and testing Poisson solvers.

A :class:`SceneSpec` is resolution independent: obstacles are defined in unit coordinates
and :meth:`SceneSpec.at` rasterises them at the cell centres of an ``n^3`` grid (cell
``(i, j, k)`` has its centre at ``((i + 0.5) / n, (j + 0.5) / n, (k + 0.5) / n)``, the
C order of :class:`sciml.linalg.PoissonStencil`). The result is a :class:`Scene`: a solid
mask, the Dirichlet (open) faces and the methods that build the operator and random
right-hand sides. By default the box has Neumann walls and an open top (``"z+"``); fluid
pockets that touch no open face are always marked solid, so the operator is SPD.

Training scenes (:func:`training_scenes`) and held-out scenes (:func:`heldout_scenes`)
have disjoint names and different kinds of geometry: training uses axis-aligned boxes,
spheres and horizontal plates; held-out adds rotations, tori, plate mazes, closed
triangle meshes (through :func:`geometry.voxelize`), many small bodies and unions.

Every obstacle (:class:`Sphere`, :class:`Box`, :class:`Plate`, :class:`Torus`,
:class:`Capsule`, :class:`MeshObstacle`, :class:`Union`) has ``mask(shape) -> (nx, ny, nz)
bool array``, True at the cell centres inside it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.ndimage as ndi
import torch

from geometry.voxelize import UNIT_BOUNDS, cell_centres, voxelize
from sciml.linalg.stencil import PoissonStencil, _as_shape, _check_faces, enclosed_fluid

__all__ = ["Scene", "SceneSpec", "Sphere", "Box", "Plate", "Torus", "Capsule", "MeshObstacle", "Union",
           "training_scenes", "heldout_scenes", "get_scene", "seal"]


def _rotation(angles: Sequence[float]) -> np.ndarray:
    """(3, 3) rotation from extrinsic x, y, z angles in degrees (local -> world)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", angles, degrees=True).as_matrix()


def _local(shape, centre, rotation) -> list[np.ndarray]:
    """Cell centres in an obstacle's frame, ``q = R^T (x - c)``: three broadcastable arrays."""
    axes = [a - c for a, c in zip(cell_centres(shape), centre)]
    grids = [axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]]
    return [sum(rotation[b, a] * grids[b] for b in range(3)) for a in range(3)]


@dataclass(frozen=True)
class Sphere:
    """Ball of ``radius`` around ``centre`` (unit coordinates)."""

    centre: tuple[float, float, float]
    radius: float

    def mask(self, shape) -> np.ndarray:
        q = _local(shape, self.centre, np.eye(3))
        return q[0] ** 2 + q[1] ** 2 + q[2] ** 2 <= self.radius ** 2


@dataclass(frozen=True)
class Box:
    """Box of half extents ``half`` around ``centre``, rotated by x, y, z Euler ``angles`` (degrees)."""

    centre: tuple[float, float, float]
    half: tuple[float, float, float]
    angles: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def mask(self, shape) -> np.ndarray:
        q = _local(shape, self.centre, _rotation(self.angles))
        return (np.abs(q[0]) <= self.half[0]) & (np.abs(q[1]) <= self.half[1]) & (np.abs(q[2]) <= self.half[2])


@dataclass(frozen=True)
class Plate:
    """Thin plate in its local xy plane (half sizes ``half``), rotated by ``angles`` (degrees).

    The plate is at least one cell thick at every resolution and rotation, so fluid never
    leaks through it between face neighbours.
    """

    centre: tuple[float, float, float]
    half: tuple[float, float]
    thickness: float = 0.02
    angles: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def mask(self, shape) -> np.ndarray:
        shape, rotation = np.asarray(_as_shape(shape)), _rotation(self.angles)
        q = _local(tuple(shape), self.centre, rotation)
        half_t = max(0.5 * self.thickness, 0.5 * float(np.sum(np.abs(rotation[:, 2]) / shape)))  # supercover
        return (np.abs(q[0]) <= self.half[0]) & (np.abs(q[1]) <= self.half[1]) & (np.abs(q[2]) <= half_t)


@dataclass(frozen=True)
class Torus:
    """Torus around the local z axis (radii ``major``, ``minor``), rotated by ``angles`` (degrees)."""

    centre: tuple[float, float, float]
    major: float
    minor: float
    angles: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def mask(self, shape) -> np.ndarray:
        q = _local(shape, self.centre, _rotation(self.angles))
        return (np.sqrt(q[0] ** 2 + q[1] ** 2) - self.major) ** 2 + q[2] ** 2 <= self.minor ** 2


@dataclass(frozen=True)
class Capsule:
    """Points within ``radius`` of the segment from ``a`` to ``b``."""

    a: tuple[float, float, float]
    b: tuple[float, float, float]
    radius: float

    def mask(self, shape) -> np.ndarray:
        q = _local(shape, self.a, np.eye(3))
        d = np.subtract(self.b, self.a)
        t = np.clip(sum(q[i] * d[i] for i in range(3)) / float(d @ d), 0.0, 1.0)
        return sum((q[i] - t * d[i]) ** 2 for i in range(3)) <= self.radius ** 2


@dataclass(frozen=True, eq=False)
class MeshObstacle:
    """A closed triangle mesh, voxelised by :func:`geometry.voxelize`.

    Parameters
    ----------
    mesh : trimesh.Trimesh, pyvista.PolyData, (vertices (V, 3), faces (F, 3)) or a callable
        returning one of these (called lazily, once per rasterisation).
    centre, size :
        The mesh is scaled so that the largest side of its bounding box is ``size`` and
        moved so that the box centre is ``centre``; ``size=None`` keeps its coordinates.
    """

    mesh: object
    centre: tuple[float, float, float] = (0.5, 0.5, 0.5)
    size: float | None = 0.5

    def mask(self, shape) -> np.ndarray:
        from geometry.voxelize import _mesh_arrays

        vertices, faces = _mesh_arrays(self.mesh() if callable(self.mesh) else self.mesh)
        vertices = np.asarray(vertices, dtype=np.float64)
        if self.size is not None:
            lo, hi = vertices.min(axis=0), vertices.max(axis=0)
            vertices = (vertices - 0.5 * (lo + hi)) * (self.size / float((hi - lo).max())) + np.asarray(self.centre)
        return voxelize((vertices, faces), _as_shape(shape), UNIT_BOUNDS)


@dataclass(frozen=True)
class Union:
    """Union of obstacles (any of the above)."""

    parts: tuple

    def mask(self, shape) -> np.ndarray:
        out = np.zeros(_as_shape(shape), dtype=bool)
        for part in self.parts:
            out |= part.mask(shape)
        return out


def seal(solid: np.ndarray, dirichlet: Sequence[str] = ("z+",)) -> np.ndarray:
    """Mark enclosed fluid pockets solid.

    Parameters
    ----------
    solid : (nx, ny, nz) bool array
    dirichlet : open faces. With none (a closed box), all fluid regions but the largest are
        marked solid: the operator then has a one-dimensional null space, the constants.

    Returns
    -------
    (nx, ny, nz) bool array (a new one)
    """
    solid = np.array(solid, dtype=bool)
    if _check_faces(dirichlet):
        return solid | enclosed_fluid(solid, dirichlet)
    labels, count = ndi.label(~solid)
    if count > 1:
        solid |= (labels != 0) & (labels != 1 + int(np.argmax(np.bincount(labels.ravel())[1:])))
    return solid


@dataclass
class Scene:
    """A rasterised scene: solid mask and boundary conditions on an ``nx * ny * nz`` grid.

    Attributes
    ----------
    name : str
    shape : (nx, ny, nz)
    solid : (nx, ny, nz) bool numpy array
        True at obstacle cells; enclosed fluid pockets are sealed on construction.
    dirichlet : tuple of str
        Open faces (``p = 0``), among ``"x-", "x+", "y-", "y+", "z-", "z+"``.
    """

    name: str
    shape: tuple[int, int, int]
    solid: np.ndarray
    dirichlet: tuple[str, ...] = ("z+",)

    def __post_init__(self):
        self.shape = _as_shape(self.shape)
        self.dirichlet = _check_faces(self.dirichlet)
        if np.shape(self.solid) != self.shape:
            raise ValueError(f"solid mask has shape {np.shape(self.solid)} but the scene grid is {self.shape}")
        self.solid = seal(self.solid, self.dirichlet)
        if self.solid.all():
            raise ValueError(f"scene {self.name!r} has no fluid cell connected to an open face {self.dirichlet}")

    fluid = property(lambda self: ~self.solid, doc="(nx, ny, nz) bool, True at fluid cells.")

    def stencil(self, dtype: torch.dtype = torch.float64, device=None) -> PoissonStencil:
        """The 7-point Poisson operator of the scene, shape ``(n, n)`` with ``n = nx * ny * nz``."""
        return PoissonStencil(self.shape, self.solid, self.dirichlet, dtype=dtype, device=device,
                              allow_singular=not self.dirichlet)

    def velocity(self, seed: int | np.random.Generator = 0, *, modes: int = 16, max_wavenumber: int = 4,
                 noise: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A random smooth face velocity, zero on solid and wall faces.

        A sum of ``modes`` random plane waves per component, with integer wavevectors
        ``|k_i| <= max_wavenumber`` (in periods per unit length, so the field does not
        depend on the resolution) and amplitudes ``~ N(0, 1) / |k|``, plus white noise of
        relative size ``noise``.

        Returns
        -------
        u : (nx + 1, ny, nz), v : (nx, ny + 1, nz), w : (nx, ny, nz + 1) float64 arrays
        """
        rng = np.random.default_rng(seed)
        solid = np.pad(self.solid, 1, constant_values=True)  # walls; open faces are reopened below
        out = []
        for axis in range(3):
            coords = list(cell_centres(self.shape))
            coords[axis] = np.arange(self.shape[axis] + 1) / self.shape[axis]
            field_ = np.zeros([c.size for c in coords])
            for _ in range(modes):
                k = rng.integers(-max_wavenumber, max_wavenumber + 1, size=3)
                if not k.any():
                    k[rng.integers(3)] = 1
                amp = (rng.normal() + 1j * rng.normal()) / np.linalg.norm(k)
                waves = [np.exp(2j * np.pi * k[a] * coords[a]) for a in range(3)]
                field_ += (amp * waves[0][:, None, None] * waves[1][None, :, None] * waves[2][None, None, :]).real
            if noise:
                field_ += noise * field_.std() * rng.standard_normal(field_.shape)
            lo, hi = [slice(1, -1)] * 3, [slice(1, -1)] * 3
            lo[axis], hi[axis] = slice(0, -1), slice(1, None)
            blocked = solid[tuple(lo)] | solid[tuple(hi)]
            for face in (f for f in self.dirichlet if "xyz".index(f[0]) == axis):  # open: fluid goes through
                side = 0 if face[1] == "-" else -1
                blocked[(slice(None),) * axis + (side,)] = np.take(self.solid, side, axis=axis)
            field_[blocked] = 0.0
            out.append(field_)
        return tuple(out)

    def rhs(self, seed: int | np.random.Generator = 0, *, modes: int = 16, max_wavenumber: int = 4,
            noise: float = 0.0, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
        """Unit-norm right-hand side: the divergence of a random velocity (:meth:`velocity`).

        ``b = -div(u)`` with the face-based (MAC) divergence, zero at solid cells. Every
        wall and obstacle face carries no flux, so ``b`` sums to zero over each region
        closed by walls: it lies in the range of the operator even without open faces.

        Returns
        -------
        b : (nx * ny * nz,) tensor in C order, ``||b|| = 1``
        """
        u, v, w = self.velocity(seed, modes=modes, max_wavenumber=max_wavenumber, noise=noise)
        b = -(np.diff(u, axis=0) + np.diff(v, axis=1) + np.diff(w, axis=2))
        b[self.solid] = 0.0
        if not self.dirichlet:  # remove rounding from the null-space component
            b[self.fluid] -= b[self.fluid].mean()
        norm = np.linalg.norm(b)
        if norm == 0.0:
            raise ValueError(f"the random velocity has zero divergence on scene {self.name!r}; use another seed")
        return torch.as_tensor((b / norm).reshape(-1), dtype=dtype, device=device)


@dataclass(frozen=True)
class SceneSpec:
    """A resolution-independent scene: obstacles in the unit cube and open faces."""

    name: str
    obstacles: tuple = ()
    dirichlet: tuple[str, ...] = ("z+",)
    description: str = field(default="", compare=False)

    def at(self, n: int | Sequence[int]) -> Scene:
        """Rasterise at ``n^3`` (or ``(nx, ny, nz)``) cells; enclosed pockets become solid."""
        shape = _as_shape(n)
        solid = Union(tuple(self.obstacles)).mask(shape)
        return Scene(self.name, shape, solid, tuple(self.dirichlet))


@functools.lru_cache(maxsize=None)
def bunny_mesh():
    """A bunny-like closed mesh (trimesh): ellipsoid body, head, two ears, tail; parts overlap."""
    import trimesh

    def ellipsoid(centre, radii, subdivisions=3):
        return trimesh.creation.icosphere(subdivisions=subdivisions).apply_scale(radii).apply_translation(centre)

    def ear(base, tilt):
        tilt = trimesh.transformations.rotation_matrix(np.radians(tilt), [1, 0, 0])
        return trimesh.creation.capsule(height=0.5, radius=0.07).apply_transform(tilt).apply_translation(
            np.add(base, [0, 0, 0.25]))

    return trimesh.util.concatenate([
        ellipsoid((0, 0, 0), (0.45, 0.32, 0.3)), ellipsoid((0.38, 0, 0.22), (0.2, 0.18, 0.18)),
        ear((0.42, -0.07, 0.3), -15), ear((0.42, 0.07, 0.3), 15), ellipsoid((-0.45, 0, 0.05), (0.09,) * 3, 2)])


@functools.lru_cache(maxsize=None)
def _pyvista_example(name: str):
    from pyvista import examples

    return getattr(examples, f"load_{name}")()


def _many_spheres(count: int = 24, seed: int = 7) -> tuple[Sphere, ...]:
    rng = np.random.default_rng(seed)
    return tuple(Sphere(tuple(rng.uniform(0.12, 0.8, size=3)), float(rng.uniform(0.04, 0.08))) for _ in range(count))


def _small_boxes(count: int = 16, seed: int = 3) -> tuple[Box, ...]:
    rng = np.random.default_rng(seed)
    return tuple(Box(tuple(rng.uniform(0.15, 0.8, size=3)), tuple(rng.uniform(0.03, 0.06, size=3)))
                 for _ in range(count))


_TRAINING = (
    SceneSpec("empty", (), description="closed box, open top, no obstacle"),
    SceneSpec("sphere", (Sphere((0.5, 0.5, 0.4), 0.2),)),
    SceneSpec("two_spheres", (Sphere((0.3, 0.4, 0.35), 0.15), Sphere((0.7, 0.6, 0.6), 0.12))),
    SceneSpec("box_plate", (Box((0.5, 0.5, 0.2), (0.15, 0.2, 0.1)), Plate((0.5, 0.5, 0.6), (0.3, 0.25)))),
    SceneSpec("floor_box", (Box((0.3, 0.6, 0.2), (0.12, 0.25, 0.2)),), description="box standing on the floor"),
    SceneSpec("sphere_plate", (Sphere((0.35, 0.5, 0.3), 0.15), Plate((0.6, 0.5, 0.7), (0.25, 0.4), 0.03))),
    SceneSpec("small_boxes", _small_boxes(), description="16 small axis-aligned boxes"),
)

_HELDOUT = (
    SceneSpec("rotated_box", (Box((0.5, 0.5, 0.45), (0.25, 0.12, 0.1), (30.0, 20.0, 45.0)),)),
    SceneSpec("torus", (Torus((0.5, 0.5, 0.4), 0.25, 0.08, (60.0, 15.0, 0.0)),)),
    SceneSpec("plate_stack", tuple(Plate((0.375 if i % 2 == 0 else 0.625, 0.5, 0.2 + 0.2 * i), (0.375, 0.5), 0.03)
                                   for i in range(4)), description="serpentine channel between wall plates"),
    SceneSpec("bunny", (MeshObstacle(bunny_mesh, (0.5, 0.5, 0.4), 0.6),), description="voxelised trimesh union"),
    SceneSpec("many_spheres", _many_spheres(), description="24 small spheres"),
    SceneSpec("union", (Union((Capsule((0.2, 0.3, 0.3), (0.8, 0.7, 0.5), 0.08), Sphere((0.5, 0.5, 0.4), 0.15),
                               Box((0.5, 0.5, 0.7), (0.3, 0.05, 0.05), (0.0, 0.0, 60.0)))),)),
    SceneSpec("tilted_plates", (Plate((0.35, 0.5, 0.35), (0.25, 0.35), 0.02, (0.0, 30.0, 0.0)),
                                Plate((0.65, 0.5, 0.65), (0.25, 0.35), 0.02, (0.0, -30.0, 0.0)))),
    SceneSpec("nut", (MeshObstacle(functools.partial(_pyvista_example, "nut"), (0.5, 0.5, 0.4), 0.6),),
              description="pyvista's example hex nut (closed mesh with a through hole)"),
)


def training_scenes() -> list[SceneSpec]:
    """The fixed training scenes (boxes, spheres, horizontal plates, many small boxes)."""
    return list(_TRAINING)


def heldout_scenes() -> list[SceneSpec]:
    """Held-out scenes, never used in training: rotations, tori, mazes, meshes, many bodies."""
    return list(_HELDOUT)


def get_scene(name: str) -> SceneSpec:
    """The scene spec called ``name`` (training or held-out)."""
    specs = {spec.name: spec for spec in _TRAINING + _HELDOUT}
    if name not in specs:
        raise KeyError(f"unknown scene {name!r}; available: {sorted(specs)}")
    return specs[name]
