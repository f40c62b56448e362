"""Surface extraction from implicit fields: batched grid evaluation, marching cubes, clean-up, export.

Conventions: a field ``f`` is *negative inside* and the surface is ``f = level``. Grids
are point grids: value ``[i, j, k]`` sits at ``lo + (i, j, k) * (hi - lo) / (n - 1)``.

* :func:`grid_points`, :func:`evaluate_grid` — evaluate a callable on a grid in batches.
* :func:`extract_mesh` — scikit-image marching cubes with the level nudged off exact grid
  values (skimage issue #8116: holes when the level equals a voxel value) and a padding
  layer of "outside" so surfaces touching the box still close; then :func:`clean_mesh`
  (merge vertices, drop degenerate and duplicate faces — skimage #8109 —, unreferenced
  vertices, tiny components; outward normals).
* :func:`export_mesh` — ``.ply`` / ``.obj`` / ``.stl`` through trimesh, ``.vtp`` through
  :func:`sciml.io.write_vtp`; :func:`write_occupancy_vti` — the field / occupancy as ``.vti``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from sciml.io.atomic import atomic_path

__all__ = ["grid_points", "evaluate_grid", "extract_mesh", "clean_mesh", "export_mesh", "write_occupancy_vti",
           "mesh_from_field"]


def _bounds(bounds) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = (np.asarray(b, dtype=np.float64).reshape(3) for b in bounds)
    if np.any(hi <= lo):
        raise ValueError(f"bounds must satisfy hi > lo on every axis, got lo={lo}, hi={hi}")
    return lo, hi


def grid_points(resolution: int, bounds=((-1.0,) * 3, (1.0,) * 3)) -> tuple[np.ndarray, np.ndarray]:
    """The points of an ``n^3`` grid.

    Returns
    -------
    points : (n^3, 3) float64, in C order of ``(i, j, k)``
    spacing : (3,) float64
    """
    lo, hi = _bounds(bounds)
    n = int(resolution)
    if n < 2:
        raise ValueError(f"resolution must be >= 2 grid points per axis, got {resolution}")
    axes = [np.linspace(lo[a], hi[a], n) for a in range(3)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return pts, (hi - lo) / (n - 1)


def evaluate_grid(fn: Callable[[np.ndarray], np.ndarray], resolution: int, bounds=((-1.0,) * 3, (1.0,) * 3),
                  batch_size: int = 65536) -> np.ndarray:
    """Evaluate ``fn`` on an ``n^3`` point grid, ``batch_size`` points at a time.

    Parameters
    ----------
    fn : callable ``(B, 3) float64 array -> (B,) array``
    resolution : int
    bounds : ((x0, y0, z0), (x1, y1, z1))
    batch_size : int

    Returns
    -------
    (n, n, n) float64
    """
    pts, _ = grid_points(resolution, bounds)
    out = np.empty(len(pts))
    for s in range(0, len(pts), batch_size):
        out[s:s + batch_size] = np.asarray(fn(pts[s:s + batch_size]), dtype=np.float64).reshape(-1)
    n = int(resolution)
    return out.reshape(n, n, n)


def _safe_level(values: np.ndarray, level: float) -> float:
    """``level`` nudged until no grid value equals it exactly."""
    scale = max(float(np.nanmax(np.abs(values))), 1.0)
    step = 1e-9 * scale
    while np.any(values == level):
        level = level + step
        step *= 2
    return level


def clean_mesh(vertices, faces, min_component_faces: int = 0):
    """Merge duplicate vertices, drop degenerate / duplicate faces and unreferenced vertices.

    Parameters
    ----------
    vertices : (V, 3), faces : (F, 3)
    min_component_faces : int
        Drop connected components with fewer faces (0: keep all).

    Returns
    -------
    trimesh.Trimesh
        With consistent winding and outward normals where the mesh is watertight.
    """
    import trimesh
    mesh = trimesh.Trimesh(np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64), process=True)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.update_faces(mesh.unique_faces())
    mesh.remove_unreferenced_vertices()
    if min_component_faces > 0 and len(mesh.faces):
        parts = mesh.split(only_watertight=False)
        keep = [p for p in parts if len(p.faces) >= min_component_faces]
        if keep and len(keep) < len(parts):
            mesh = trimesh.util.concatenate(keep)
    if mesh.is_watertight:
        trimesh.repair.fix_normals(mesh, multibody=True)
    return mesh


def extract_mesh(values: np.ndarray, bounds=((-1.0,) * 3, (1.0,) * 3), level: float = 0.0, pad: bool = True,
                 min_component_faces: int = 0):
    """Marching cubes on a point grid of a field that is negative inside.

    Parameters
    ----------
    values : (nx, ny, nz) float
        Field at the grid points (see the module conventions).
    bounds : ((x0, y0, z0), (x1, y1, z1))
    level : float
        Iso-value; nudged off values present on the grid.
    pad : bool
        Surround the grid by one layer of "outside" so a surface cut by the box closes
        (a watertight mesh whatever the field does at the border).
    min_component_faces : int
        See :func:`clean_mesh`.

    Returns
    -------
    trimesh.Trimesh
        Empty (no faces) when the field does not cross the level.
    """
    import trimesh
    from skimage.measure import marching_cubes
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 3 or min(values.shape) < 2:
        raise ValueError(f"values must be a 3-D grid with >= 2 points per axis, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("the field has NaN or inf values on the grid; check the model / function")
    lo, hi = _bounds(bounds)
    spacing = (hi - lo) / (np.asarray(values.shape) - 1)
    level = _safe_level(values, level)
    if pad:
        outside = max(float(values.max()), level) + abs(level) + 1.0
        values = np.pad(values, 1, constant_values=outside)
        lo = lo - spacing
    if not (values.min() < level < values.max()):
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    verts, faces, _, _ = marching_cubes(values, level=level, spacing=tuple(spacing), allow_degenerate=False)
    # skimage orients faces towards decreasing values for gradient_direction="descent";
    # with "negative inside" the default gives outward-facing normals after fix_normals
    return clean_mesh(verts + lo, faces, min_component_faces)


def mesh_from_field(fn: Callable[[np.ndarray], np.ndarray], resolution: int = 128,
                    bounds=((-1.0,) * 3, (1.0,) * 3), level: float = 0.0, batch_size: int = 65536, **kwargs):
    """:func:`evaluate_grid` then :func:`extract_mesh`; returns ``(mesh, values (n, n, n))``."""
    values = evaluate_grid(fn, resolution, bounds, batch_size)
    return extract_mesh(values, bounds, level, **kwargs), values


def export_mesh(mesh, path, point_data: dict | None = None) -> Path:
    """Write a mesh; the suffix picks the format (``.ply``, ``.obj``, ``.stl``, ``.vtp``). Atomic.

    Parameters
    ----------
    mesh : trimesh.Trimesh or (vertices (V, 3), faces (F, 3))
    path : str or Path
    point_data : dict of str -> (V,) or (V, C), optional
        Per-vertex fields (``.vtp`` only).
    """
    import trimesh
    if not hasattr(mesh, "vertices"):
        mesh = trimesh.Trimesh(*mesh, process=False)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".vtp":
        from sciml.io import write_vtp
        return write_vtp(path, np.asarray(mesh.vertices), faces=np.asarray(mesh.faces), point_data=point_data)
    if suffix not in (".ply", ".obj", ".stl"):
        raise ValueError(f"unknown mesh format {suffix!r} for {path}; use .ply, .obj, .stl or .vtp")
    with atomic_path(path) as tmp:
        data = mesh.export(file_type=suffix[1:])
        Path(tmp).write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def write_occupancy_vti(path, values: np.ndarray, bounds=((-1.0,) * 3, (1.0,) * 3), name: str = "field",
                        occupancy: np.ndarray | None = None) -> Path:
    """Write a point-grid field (and its occupancy ``field < 0`` unless given) as ``.vti``.

    Parameters
    ----------
    values : (nx, ny, nz)
    bounds : ((x0, y0, z0), (x1, y1, z1))
    occupancy : (nx, ny, nz), optional
        Defaults to ``values < 0`` as uint8.
    """
    from sciml.io import write_vti
    values = np.asarray(values, dtype=np.float32)
    lo, hi = _bounds(bounds)
    occ = (values < 0).astype(np.uint8) if occupancy is None else np.asarray(occupancy)
    return write_vti(path, point_data={name: values, "occupancy": occ},
                     spacing=tuple((hi - lo) / (np.asarray(values.shape) - 1)), origin=tuple(lo))
