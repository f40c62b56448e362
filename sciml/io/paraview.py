"""ParaView export: ``.vti`` volumes, ``.vtp`` point clouds and surfaces, ``.vtu`` meshes, ``.pvd`` series.

Every writer takes torch tensors (any device; they are detached and copied to the CPU)
or numpy arrays, validates shapes before touching the disk, and writes atomically
through :func:`sciml.io.atomic.atomic_path`. Files are VTK XML with zlib-compressed
base64 binary arrays, which the standard readers of ParaView 5.11 open.

pyvista is imported inside the functions, so ``import sciml`` works without it.

Index order of volumes: an array ``a`` of shape ``(nx, ny, nz)`` is stored so that
``a[i, j, k]`` sits at the point ``origin + spacing * (i, j, k)``; VTK numbers points
with x varying fastest, which is numpy's Fortran order.
"""
from __future__ import annotations

import logging
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from sciml.io.atomic import atomic_path

logger = logging.getLogger(__name__)

__all__ = ["write_vti", "write_vtp", "write_vtu", "write_pvd", "read_vtk", "CELL_TYPES"]

PathLike = str | os.PathLike
Fields = Mapping[str, Any] | None

#: Cell types accepted by :func:`write_vtu`: name -> (VTK cell type id, nodes per cell).
CELL_TYPES: dict[str, tuple[int, int]] = {
    "vertex": (1, 1), "line": (3, 2), "triangle": (5, 3), "quad": (9, 4),
    "tetra": (10, 4), "hexahedron": (12, 8), "wedge": (13, 6), "pyramid": (14, 5),
}
_CELL_ALIASES = {"tet": "tetra", "tetrahedron": "tetra", "hex": "hexahedron", "tri": "triangle"}
_WRITER_FOR = {".vti": "write_vti", ".vtp": "write_vtp", ".vtu": "write_vtu", ".pvd": "write_pvd"}


# ----------------------------------------------------------------------------- helpers
def _as_numpy(value: Any, name: str) -> np.ndarray:
    """Convert a tensor or array-like to a numpy array VTK can store (real, no float16)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor, without importing torch
        value = value.detach().cpu()
        if value.dtype.is_complex:
            raise ValueError(f"{name} is complex ({value.dtype}); VTK stores real arrays only, "
                             f"write its .real and .imag (or abs and angle) as two fields")
        if value.dtype.is_floating_point and value.element_size() < 4:  # float16 / bfloat16
            value = value.float()
        value = value.numpy()
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{name} is not a rectangular array ({exc}); pad it or split it "
                         f"by row length") from None
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} is complex ({arr.dtype}); VTK stores real arrays only, "
                         f"write its .real and .imag (or abs and angle) as two fields")
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} has dtype {arr.dtype}; give a numeric (float or integer) array")
    return arr


def _fields(fields: Fields, kind: str) -> dict[str, np.ndarray]:
    """Validate a ``{name: array}`` mapping and convert its values to numpy."""
    if fields is None:
        return {}
    if not isinstance(fields, Mapping):
        raise TypeError(f"{kind} must be a dict mapping names to arrays, e.g. {{'u': u}}; "
                        f"got {type(fields).__name__}")
    out = {}
    for name, value in fields.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{kind} keys must be non-empty strings, got {name!r}")
        out[name] = _as_numpy(value, f"{kind}[{name!r}]")
    return out


def _check_suffix(path: PathLike, suffix: str, writer: str) -> Path:
    path = Path(path)
    if path.suffix.lower() != suffix:
        hint = f" (use {_WRITER_FOR[path.suffix.lower()]} for '{path.suffix}')" \
            if path.suffix.lower() in _WRITER_FOR else ""
        raise ValueError(f"{writer} writes '{suffix}' files, got '{path}'; "
                         f"rename it to '{path.with_suffix(suffix).name}'{hint}")
    return path


def _points(points: Any) -> np.ndarray:
    """Validate points ``(N, 3)``; integer coordinates become float64."""
    pts = _as_numpy(points, "points")
    if pts.ndim != 2 or pts.shape[1] != 3:
        hint = "; pad 2-D points with a zero column: np.c_[points, np.zeros(len(points))]" \
            if pts.ndim == 2 and pts.shape[1] == 2 else ""
        raise ValueError(f"points must have shape (N, 3), got {pts.shape}{hint}")
    return pts if pts.dtype.kind == "f" else pts.astype(np.float64)


def _connectivity(cells: Any, name: str, n_points: int, min_nodes: int) -> np.ndarray:
    """Validate an integer ``(M, K)`` index array into ``n_points`` points."""
    idx = _as_numpy(cells, name)
    if idx.ndim != 2 or idx.shape[1] < min_nodes:
        raise ValueError(f"{name} must be an integer array of shape (M, K) with K >= {min_nodes}, "
                         f"got shape {idx.shape}")
    if idx.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer point indices, got dtype {idx.dtype}; "
                         f"cast it with .astype(np.int64)")
    if idx.size and (idx.min() < 0 or idx.max() >= n_points):
        raise ValueError(f"{name} indexes points {idx.min()}..{idx.max()} but there are only "
                         f"{n_points} points (valid indices are 0..{n_points - 1})")
    return idx.astype(np.int64)


def _vtk_cells(idx: np.ndarray) -> np.ndarray:
    """``(M, K)`` indices -> VTK's flat ``[K, i0, .., iK-1, K, ...]`` cell array."""
    return np.hstack([np.full((len(idx), 1), idx.shape[1], dtype=np.int64), idx]).ravel()


def _attach(attributes: Any, fields: dict[str, np.ndarray], count: int, kind: str, unit: str) -> None:
    """Check each field has ``count`` rows and store it; the first 3-vector becomes active vectors."""
    vectors = scalars = None
    for name, arr in fields.items():
        if arr.ndim not in (1, 2) or len(arr) != count:
            raise ValueError(f"{kind}[{name!r}] has {len(arr) if arr.ndim else 0} values but the mesh "
                             f"has {count} {unit} (got shape {arr.shape}; give ({count},) for "
                             f"scalars or ({count}, C) for C-component fields)")
        attributes[name] = arr
        if arr.ndim == 2 and arr.shape[1] == 3:
            vectors = vectors or name
        elif arr.ndim == 1:
            scalars = scalars or name
    if scalars is not None:
        attributes.active_scalars_name = scalars
    if vectors is not None:
        attributes.active_vectors_name = vectors  # ParaView's Glyph filter picks it up


def _attach_all(mesh: Any, point_data: dict, cell_data: dict) -> None:
    _attach(mesh.point_data, point_data, mesh.n_points, "point_data", "points")
    _attach(mesh.cell_data, cell_data, mesh.n_cells, "cell_data", "cells")


def _save(mesh: Any, path: Path) -> Path:
    """Write ``mesh`` atomically as binary VTK XML (format from the suffix)."""
    with atomic_path(path) as tmp:
        mesh.save(tmp, binary=True)
        if tmp.stat().st_size == 0:
            raise OSError(f"VTK wrote nothing to {tmp}; check free disk space and permissions of {path.parent}")
    logger.debug("wrote %s (%d points, %d cells)", path, mesh.n_points, mesh.n_cells)
    return path


# ----------------------------------------------------------------------------- volumes
def _grid_shape(fields: dict[str, np.ndarray], kind: str) -> tuple[int, int, int] | None:
    """The common ``(nx, ny, nz)`` of grid-shaped fields, or None if there are none."""
    shape = first = None
    for name, arr in fields.items():
        if arr.ndim not in (3, 4):
            raise ValueError(f"{kind}[{name!r}] must have shape (nx, ny, nz) or (nx, ny, nz, C), got "
                             f"{arr.shape}; for a 2-D image add an axis: a[:, :, None]")
        if min(arr.shape[:3]) < 1:
            raise ValueError(f"{kind}[{name!r}] has shape {arr.shape}; every axis needs length >= 1")
        if shape is None:
            shape, first = arr.shape[:3], name
        elif arr.shape[:3] != shape:
            raise ValueError(f"{kind}[{name!r}] has grid shape {arr.shape[:3]} but {kind}[{first!r}] "
                             f"has {shape}; all {kind} arrays must share one (nx, ny, nz)")
    return shape


def _volume_dimensions(point_data: dict, cell_data: dict) -> tuple[int, int, int]:
    """Number of grid points per axis implied by the point and cell fields."""
    pshape, cshape = _grid_shape(point_data, "point_data"), _grid_shape(cell_data, "cell_data")
    if pshape is None and cshape is None:
        raise ValueError("write_vti needs at least one array in point_data or cell_data "
                         "(their shapes define the grid)")
    if pshape is None:
        return tuple(n + 1 for n in cshape)
    if cshape is not None and cshape != tuple(max(n - 1, 1) for n in pshape):
        raise ValueError(f"cell_data grid shape {cshape} does not fit point_data grid shape {pshape}: "
                         f"a grid of (nx, ny, nz) points has (nx-1, ny-1, nz-1) cells, i.e. "
                         f"{tuple(max(n - 1, 1) for n in pshape)}")
    return pshape


def _fortran_flat(arr: np.ndarray) -> np.ndarray:
    """Grid-ordered ``(nx, ny, nz[, C])`` -> VTK-ordered ``(n[, C])`` (x fastest)."""
    return arr.ravel(order="F") if arr.ndim == 3 else arr.reshape(-1, arr.shape[3], order="F")


def _triple(value: Sequence[float], name: str, positive: bool = False) -> tuple[float, float, float]:
    vals = tuple(float(v) for v in np.asarray(_as_numpy(value, name), dtype=np.float64).ravel())
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals) or (positive and min(vals) <= 0):
        need = "three finite positive numbers" if positive else "three finite numbers"
        raise ValueError(f"{name} must be {need} (x, y, z), got {value!r}")
    return vals


def write_vti(path: PathLike, point_data: Fields = None, cell_data: Fields = None,
              spacing: Sequence[float] = (1.0, 1.0, 1.0),
              origin: Sequence[float] = (0.0, 0.0, 0.0)) -> Path:
    """Write a uniform volume as VTK ImageData (``.vti``).

    Parameters
    ----------
    path : str or PathLike
        Destination, must end in ``.vti``.
    point_data : dict of str -> (nx, ny, nz) or (nx, ny, nz, C), optional
        Fields on the grid points; their shape defines the grid. ``a[i, j, k]`` is the
        value at ``origin + spacing * (i, j, k)``. ``C = 3`` fields become vectors.
    cell_data : dict of str -> (cx, cy, cz) or (cx, cy, cz, C), optional
        Fields on the voxels. Alone, they define a grid of ``(cx+1, cy+1, cz+1)`` points;
        with ``point_data`` they must have shape ``(nx-1, ny-1, nz-1)`` (an axis with a
        single point has a single cell layer).
    spacing : (3,) floats
        Distance between neighbouring points along x, y, z (positive).
    origin : (3,) floats
        Coordinates of point ``[0, 0, 0]``.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        Wrong suffix, no fields, inconsistent grid shapes, complex or non-numeric data.
    """
    import pyvista as pv

    path = _check_suffix(path, ".vti", "write_vti")
    pfields, cfields = _fields(point_data, "point_data"), _fields(cell_data, "cell_data")
    dims = _volume_dimensions(pfields, cfields)
    grid = pv.ImageData(dimensions=dims, spacing=_triple(spacing, "spacing", positive=True),
                        origin=_triple(origin, "origin"))
    _attach_all(grid, {k: _fortran_flat(v) for k, v in pfields.items()},
                {k: _fortran_flat(v) for k, v in cfields.items()})
    return _save(grid, path)


# ----------------------------------------------------------------------------- meshes
def write_vtp(path: PathLike, points: Any, *, faces: Any = None, lines: Any = None,
              point_data: Fields = None, cell_data: Fields = None) -> Path:
    """Write a point cloud, polyline set or polygon surface as VTK PolyData (``.vtp``).

    Parameters
    ----------
    path : str or PathLike
        Destination, must end in ``.vtp``.
    points : (N, 3)
        Point coordinates (integer coordinates are stored as float64).
    faces : (F, K) int, optional
        Polygons as point indices: ``K = 3`` triangles, ``K = 4`` quads, ...
    lines : (L, K) int, optional
        Polylines as point indices (``K = 2``: segments).
    point_data : dict of str -> (N,) or (N, C), optional
        Per-point fields; the first ``(N, 3)`` one is made the active vectors.
    cell_data : dict of str -> (M,) or (M, C), optional
        Per-cell fields. Cells are ordered as VTK stores them: the lines first, then the
        faces (``M = L + F``). Without faces and lines every point is a vertex cell
        (``M = N``), so ParaView renders the cloud.

    Returns
    -------
    Path
        The written file.
    """
    import pyvista as pv

    path = _check_suffix(path, ".vtp", "write_vtp")
    pts = _points(points)
    mesh = pv.PolyData()
    mesh.points = pts
    if faces is None and lines is None:
        mesh.verts = _vtk_cells(np.arange(len(pts), dtype=np.int64)[:, None])
    if lines is not None:
        mesh.lines = _vtk_cells(_connectivity(lines, "lines", len(pts), 2))
    if faces is not None:
        mesh.faces = _vtk_cells(_connectivity(faces, "faces", len(pts), 3))
    _attach_all(mesh, _fields(point_data, "point_data"), _fields(cell_data, "cell_data"))
    return _save(mesh, path)


def write_vtu(path: PathLike, points: Any, cells: Any, cell_type: str,
              point_data: Fields = None, cell_data: Fields = None) -> Path:
    """Write an unstructured grid of one cell type (``.vtu``).

    Parameters
    ----------
    path : str or PathLike
        Destination, must end in ``.vtu``.
    points : (N, 3)
        Node coordinates.
    cells : (M, K) int
        Node indices of each cell, in VTK's node order for ``cell_type``.
    cell_type : str
        One of :data:`CELL_TYPES` (``"tetra"``, ``"hexahedron"``, ``"triangle"``, ``"quad"``,
        ``"wedge"``, ``"pyramid"``, ``"line"``, ``"vertex"``); ``K`` must match it.
    point_data : dict of str -> (N,) or (N, C), optional
        Per-node fields.
    cell_data : dict of str -> (M,) or (M, C), optional
        Per-cell fields.

    Returns
    -------
    Path
        The written file.
    """
    import pyvista as pv

    path = _check_suffix(path, ".vtu", "write_vtu")
    key = _CELL_ALIASES.get(str(cell_type).lower(), str(cell_type).lower())
    if key not in CELL_TYPES:
        raise ValueError(f"unknown cell_type {cell_type!r}; use one of {sorted(CELL_TYPES)}")
    vtk_id, nodes = CELL_TYPES[key]
    pts = _points(points)
    idx = _connectivity(cells, "cells", len(pts), 1)
    if idx.shape[1] != nodes:
        raise ValueError(f"cell_type {key!r} has {nodes} nodes per cell but cells has shape {idx.shape}")
    grid = pv.UnstructuredGrid(_vtk_cells(idx), np.full(len(idx), vtk_id, dtype=np.uint8), pts)
    _attach_all(grid, _fields(point_data, "point_data"), _fields(cell_data, "cell_data"))
    return _save(grid, path)


# ----------------------------------------------------------------------------- time series
def write_pvd(path: PathLike, entries: Sequence[tuple[float, PathLike]], *,
              check_exists: bool = True) -> Path:
    """Write a ParaView collection (``.pvd``) that plays datasets as a time series.

    Parameters
    ----------
    path : str or PathLike
        Destination, must end in ``.pvd``.
    entries : sequence of (time, file)
        One dataset per time step; files are written relative to the ``.pvd``'s folder,
        so the folder can be moved as a whole.
    check_exists : bool
        Raise if a referenced file is missing (write the datasets first).

    Returns
    -------
    Path
        The written file.
    """
    path = _check_suffix(path, ".pvd", "write_pvd")
    root = ET.Element("VTKFile", type="Collection", version="0.1", byte_order="LittleEndian")
    collection = ET.SubElement(root, "Collection")
    for n, entry in enumerate(entries):
        try:
            time, file = entry
            time = float(time)
        except (TypeError, ValueError):
            raise ValueError(f"entries[{n}] must be a (time, file) pair with a numeric time, "
                             f"got {entry!r}") from None
        if not math.isfinite(time):
            raise ValueError(f"entries[{n}] has time {time}; times must be finite")
        file = Path(file)
        target = file if file.is_absolute() else path.parent / file
        if check_exists and not target.exists():
            raise ValueError(f"entries[{n}] references {target}, which does not exist; write the "
                             f"datasets before the .pvd or pass check_exists=False")
        rel = Path(os.path.relpath(target.resolve(), path.parent.resolve())).as_posix()
        ET.SubElement(collection, "DataSet", timestep=repr(time), group="", part="0", file=rel)
    ET.indent(root)
    with atomic_path(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    logger.debug("wrote %s (%d time steps)", path, len(collection))
    return path


# ----------------------------------------------------------------------------- reading back
def read_vtk(path: PathLike) -> dict[str, Any]:
    """Read a ``.vti``/``.vtp``/``.vtu`` file back into numpy arrays.

    Returns
    -------
    dict
        ``"mesh"`` (the pyvista dataset), ``"points"`` (N, 3), ``"point_data"`` and
        ``"cell_data"`` (dicts of arrays). For ``.vti`` the fields come back in grid order,
        ``(nx, ny, nz[, C])`` and ``(cx, cy, cz[, C])``, exactly as given to
        :func:`write_vti`, plus ``"spacing"`` and ``"origin"``.
    """
    import pyvista as pv

    mesh = pv.read(Path(path))
    out: dict[str, Any] = {"mesh": mesh, "points": np.asarray(mesh.points)}
    shapes = {"point_data": None, "cell_data": None}
    if isinstance(mesh, pv.ImageData):
        dims = tuple(int(d) for d in mesh.dimensions)
        shapes = {"point_data": dims, "cell_data": tuple(max(d - 1, 1) for d in dims)}
        out.update(spacing=tuple(mesh.spacing), origin=tuple(mesh.origin))
    for kind, attributes in (("point_data", mesh.point_data), ("cell_data", mesh.cell_data)):
        out[kind] = {name: _grid_order(np.array(attributes[name]), shapes[kind]) for name in attributes.keys()}
    return out


def _grid_order(flat: np.ndarray, grid: tuple[int, int, int] | None) -> np.ndarray:
    """VTK-ordered ``(n[, C])`` -> grid-ordered ``(nx, ny, nz[, C])``; inverse of :func:`_fortran_flat`."""
    return flat if grid is None else flat.reshape(grid + flat.shape[1:], order="F")
