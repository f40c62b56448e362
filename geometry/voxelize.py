"""Inside/outside of a closed triangle mesh at the cell centres of a box grid.

The grid has ``nx * ny * nz`` cells spanning ``bounds = ((x0, y0, z0), (x1, y1, z1))``;
cell ``(i, j, k)`` has its centre at ``x0 + (i + 0.5) (x1 - x0) / nx`` (and likewise in y
and z), the layout of :class:`sciml.linalg.PoissonStencil`.

Method
------
A ray along ``+z`` is cast through every column centre ``(x_i, y_j)``. Each triangle is
tested against the columns under its ``xy`` bounding box with 2-D edge functions, and a
crossing adds its winding (``+1`` entering, ``-1`` leaving) at the first cell centre above
the crossing height; a cumulative sum along ``z`` then gives the winding number of every
cell centre. No jitter and no sorting are needed, and the result is exact up to the
rounding of the crossing height:

* every edge function is evaluated with the edge's endpoints in a canonical order (lower
  vertex index first), so the two triangles sharing an edge see bit-identical values of
  opposite sign;
* an edge function that is exactly zero (a ray through an edge or a vertex) is resolved by
  simulation of simplicity, as if the ray passed at ``(x + eps, y + eps^2)``: one and only
  one of the two triangles sharing the edge claims the ray, and triangles seen edge-on
  (zero projected area) never do.

The default ``rule="nonzero"`` (inside where the winding number is not zero) also gives the
right union for meshes made of several overlapping closed parts, such as
``trimesh.util.concatenate`` of spheres and capsules; ``rule="parity"`` counts crossings
and ignores the orientation of the faces.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["voxelize", "voxelize_mesh", "check_closed_mesh", "cell_centres"]

UNIT_BOUNDS = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def _winding_columns(vertices, faces, origin, spacing, nx, ny, nz, parity):
    """Winding number (or crossing count) at every cell centre; body of the numba kernel.

    Parameters
    ----------
    vertices : (V, 3) float64
    faces : (F, 3) int64, indices into ``vertices``
    origin, spacing : (3,) float64
        Lower corner of the grid and cell size.
    nx, ny, nz : int
    parity : bool
        Count crossings (``+1`` each) instead of signed windings.

    Returns
    -------
    (nx, ny, nz) int32
    """
    delta = np.zeros((nx, ny, nz + 1), dtype=np.int32)
    x0, y0, z0 = origin[0], origin[1], origin[2]
    dx, dy, dz = spacing[0], spacing[1], spacing[2]
    ax = np.empty(3)
    ay = np.empty(3)
    bx = np.empty(3)
    by = np.empty(3)
    flip = np.empty(3)
    w = np.empty(3)
    for f in range(faces.shape[0]):
        # canonical endpoints of edge e = (v[e+1], v[e+2]), opposite vertex e
        for e in range(3):
            u, v = faces[f, (e + 1) % 3], faces[f, (e + 2) % 3]
            flip[e] = 1.0
            if u > v:
                u, v = v, u
                flip[e] = -1.0
            ax[e], ay[e] = vertices[u, 0], vertices[u, 1]
            bx[e], by[e] = vertices[v, 0], vertices[v, 1]
        xmin = min(vertices[faces[f, 0], 0], vertices[faces[f, 1], 0], vertices[faces[f, 2], 0])
        xmax = max(vertices[faces[f, 0], 0], vertices[faces[f, 1], 0], vertices[faces[f, 2], 0])
        ymin = min(vertices[faces[f, 0], 1], vertices[faces[f, 1], 1], vertices[faces[f, 2], 1])
        ymax = max(vertices[faces[f, 0], 1], vertices[faces[f, 1], 1], vertices[faces[f, 2], 1])
        i0 = max(int(np.ceil((xmin - x0) / dx - 0.5)) - 1, 0)
        i1 = min(int(np.floor((xmax - x0) / dx - 0.5)) + 1, nx - 1)
        j0 = max(int(np.ceil((ymin - y0) / dy - 0.5)) - 1, 0)
        j1 = min(int(np.floor((ymax - y0) / dy - 0.5)) + 1, ny - 1)
        for i in range(i0, i1 + 1):
            px = x0 + (i + 0.5) * dx
            if px < xmin or px > xmax:
                continue
            for j in range(j0, j1 + 1):
                py = y0 + (j + 0.5) * dy
                if py < ymin or py > ymax:
                    continue
                sign = 0
                inside = True
                for e in range(3):
                    val = (bx[e] - ax[e]) * (py - ay[e]) - (by[e] - ay[e]) * (px - ax[e])
                    if val > 0.0:
                        s = 1
                    elif val < 0.0:
                        s = -1
                    elif by[e] != ay[e]:  # simulation of simplicity: p -> p + (eps, eps^2)
                        s = -1 if by[e] > ay[e] else 1
                    elif bx[e] != ax[e]:
                        s = 1 if bx[e] > ax[e] else -1
                    else:
                        s = 0
                    if flip[e] < 0.0:
                        s = -s
                    w[e] = val * flip[e]
                    if s == 0 or (sign != 0 and s != sign):
                        inside = False
                        break
                    sign = s
                if not inside:
                    continue
                total = w[0] + w[1] + w[2]
                va, vb, vc = faces[f, 0], faces[f, 1], faces[f, 2]
                if total != 0.0:
                    zc = (w[0] * vertices[va, 2] + w[1] * vertices[vb, 2] + w[2] * vertices[vc, 2]) / total
                else:
                    zc = (vertices[va, 2] + vertices[vb, 2] + vertices[vc, 2]) / 3.0
                # first cell whose centre lies strictly above the crossing
                t = (zc - z0) / dz - 0.5
                if t < 0.0:
                    k = 0
                elif t >= nz:
                    continue
                else:
                    k = int(np.floor(t)) + 1
                # counter-clockwise from above (sign > 0): normal points up, the ray leaves
                delta[i, j, k] += 1 if parity else -sign
    out = np.empty((nx, ny, nz), dtype=np.int32)
    for i in range(nx):
        for j in range(ny):
            acc = 0
            for k in range(nz):
                acc += delta[i, j, k]
                out[i, j, k] = acc
    return out


_KERNEL = None


def _kernel():
    """The numba-compiled :func:`_winding_columns` (compiled on first use, cached on disk)."""
    global _KERNEL
    if _KERNEL is None:
        from numba import njit

        _KERNEL = njit(cache=True, nogil=True)(_winding_columns)
    return _KERNEL


def _check_grid(shape, bounds) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray]:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),) * 3
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"grid shape must be N or (nx, ny, nz) with positive sizes, got {shape}")
    lo, hi = (np.asarray(b, dtype=np.float64) for b in (bounds if bounds is not None else UNIT_BOUNDS))
    if lo.shape != (3,) or hi.shape != (3,) or not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ValueError(f"bounds must be ((x0, y0, z0), (x1, y1, z1)) with finite values, got {bounds}")
    if np.any(hi <= lo):
        raise ValueError(f"bounds must have x1 > x0, y1 > y0 and z1 > z0, got lower {lo} and upper {hi}")
    return shape, lo, (hi - lo) / np.asarray(shape)


def cell_centres(shape, bounds=UNIT_BOUNDS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 1-D cell-centre coordinates of a grid.

    Parameters
    ----------
    shape : int or (nx, ny, nz)
    bounds : ((x0, y0, z0), (x1, y1, z1))

    Returns
    -------
    x : (nx,), y : (ny,), z : (nz,) float64 arrays
    """
    shape, lo, h = _check_grid(shape, bounds)
    return tuple(lo[a] + (np.arange(shape[a]) + 0.5) * h[a] for a in range(3))


def check_closed_mesh(vertices, faces, *, oriented: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Validate a triangle mesh and merge its duplicate vertices.

    Parameters
    ----------
    vertices : (V, 3) array_like of float
    faces : (F, 3) array_like of int
    oriented : bool
        Also require consistently oriented faces (each shared edge used once in each
        direction), which the ``"nonzero"`` rule needs.

    Returns
    -------
    vertices : (V', 3) float64 array
        Unique vertices.
    faces : (F', 3) int64 array
        Faces re-indexed into them, degenerate faces (a repeated vertex) dropped.

    Raises
    ------
    ValueError
        For wrong shapes, an empty mesh, out-of-range indices, non-finite coordinates, an
        open (not watertight) or non-manifold mesh, or inconsistent face orientation.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must be triangles of shape (F, 3), got {faces.shape}; "
                         "triangulate first (mesh.triangulate() in pyvista)")
    if faces.shape[0] == 0 or vertices.shape[0] == 0:
        raise ValueError(f"empty mesh ({vertices.shape[0]} vertices, {faces.shape[0]} faces): nothing to voxelise")
    if not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must hold integer vertex indices, got dtype {faces.dtype}")
    if faces.min() < 0 or faces.max() >= vertices.shape[0]:
        raise ValueError(f"face indices must lie in [0, {vertices.shape[0]}), got [{faces.min()}, {faces.max()}]")
    if not np.isfinite(vertices).all():
        raise ValueError("mesh vertices contain NaN or inf")
    vertices = np.ascontiguousarray(vertices + 0.0)  # + 0.0 turns -0.0 into 0.0
    _, first, inverse = np.unique(vertices.view(np.dtype((np.void, 24))).ravel(), return_index=True,
                                  return_inverse=True)
    unique = vertices[first]
    faces = inverse.reshape(-1)[faces].astype(np.int64)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])]
    if faces.shape[0] == 0:
        raise ValueError("every face of the mesh is degenerate (repeated vertices): nothing to voxelise")
    nv = np.int64(unique.shape[0])
    tails, heads = faces.ravel(), faces[:, [1, 2, 0]].ravel()
    directed = tails * nv + heads  # one integer per directed edge
    _, counts = np.unique(np.minimum(tails, heads) * nv + np.maximum(tails, heads), return_counts=True)
    open_edges, crowded = int((counts == 1).sum()), int((counts > 2).sum())
    if open_edges or crowded:
        raise ValueError(
            f"mesh is not watertight: {open_edges} edges belong to a single face (holes) and {crowded} edges "
            "to more than two faces (non-manifold); inside/outside is undefined. Close it first, e.g. "
            "trimesh.repair.fill_holes(mesh) or mesh.fill_holes() in trimesh (mesh.fill_holes() in pyvista), "
            "and check mesh.is_watertight")
    if oriented:
        _, dcounts = np.unique(directed, return_counts=True)
        if (dcounts > 1).any():
            raise ValueError(
                f"mesh faces are not consistently oriented ({int((dcounts > 1).sum())} edges are used twice in "
                "the same direction); fix with trimesh.repair.fix_winding(mesh) or mesh.fix_normals(), "
                "or voxelise with rule='parity'")
    return unique, faces


def voxelize_mesh(vertices, faces, shape, bounds=UNIT_BOUNDS, *, rule: str = "nonzero",
                  validate: bool = True) -> np.ndarray:
    """Inside/outside of a closed triangle mesh at cell centres.

    Parameters
    ----------
    vertices : (V, 3) array_like of float
    faces : (F, 3) array_like of int
        Triangles of a closed (watertight) mesh, or of several closed meshes.
    shape : int or (nx, ny, nz)
        Grid size in cells.
    bounds : ((x0, y0, z0), (x1, y1, z1))
        Box covered by the grid (default the unit cube). Parts of the mesh outside it
        are clipped.
    rule : {"nonzero", "parity"}
        Inside where the winding number is non-zero (default: unions of overlapping
        closed parts come out right) or where the number of crossings is odd.
    validate : bool
        Check the mesh (shapes, watertightness, orientation) and merge duplicate
        vertices first; switch off only for meshes already checked by
        :func:`check_closed_mesh`.

    Returns
    -------
    (nx, ny, nz) bool array
        True at the cells whose centre is inside the mesh. A centre exactly on the
        surface is decided consistently but arbitrarily.

    Raises
    ------
    ValueError
        For an open, non-manifold, inconsistently oriented (with ``rule="nonzero"``) or
        empty mesh, wrong array shapes, bad bounds or an unknown rule.
    """
    if rule not in ("nonzero", "parity"):
        raise ValueError(f"rule must be 'nonzero' or 'parity', got {rule!r}")
    shape, origin, spacing = _check_grid(shape, bounds)
    if validate:
        vertices, faces = check_closed_mesh(vertices, faces, oriented=rule == "nonzero")
    else:
        vertices = np.asarray(vertices, dtype=np.float64)
        faces = np.asarray(faces, dtype=np.int64)
    winding = _kernel()(np.ascontiguousarray(vertices, dtype=np.float64), np.ascontiguousarray(faces, dtype=np.int64),
                        origin, spacing, shape[0], shape[1], shape[2], rule == "parity")
    return (winding % 2 == 1) if rule == "parity" else (winding != 0)


def _mesh_arrays(mesh) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(mesh, (tuple, list)) and len(mesh) == 2:
        return mesh[0], mesh[1]
    if hasattr(mesh, "vertices") and hasattr(mesh, "faces"):  # trimesh.Trimesh
        return np.asarray(mesh.vertices), np.asarray(mesh.faces)
    if hasattr(mesh, "points") and hasattr(mesh, "triangulate"):  # pyvista.DataSet
        surface = mesh if hasattr(mesh, "regular_faces") else mesh.extract_surface()
        surface = surface.triangulate()
        return np.asarray(surface.points), np.asarray(surface.regular_faces)
    raise TypeError(f"expected a trimesh.Trimesh, a pyvista.PolyData or a (vertices, faces) pair, "
                    f"got {type(mesh).__name__}")


def voxelize(mesh, shape, bounds: Sequence[Sequence[float]] | None = UNIT_BOUNDS, *, rule: str = "nonzero",
             padding: float = 0.0) -> np.ndarray:
    """Voxelise a ``trimesh.Trimesh``, a ``pyvista.PolyData`` or a ``(vertices, faces)`` pair.

    Parameters
    ----------
    mesh : trimesh.Trimesh, pyvista.PolyData or (vertices (V, 3), faces (F, 3))
    shape : int or (nx, ny, nz)
    bounds : ((x0, y0, z0), (x1, y1, z1)) or None
        Box covered by the grid; ``None`` takes the mesh's bounding box widened by
        ``padding`` times its largest side on every side.
    rule : {"nonzero", "parity"}
        See :func:`voxelize_mesh`.
    padding : float
        Relative margin for ``bounds=None``.

    Returns
    -------
    (nx, ny, nz) bool array
    """
    vertices, faces = _mesh_arrays(mesh)
    if bounds is None:
        vertices = np.asarray(vertices, dtype=np.float64)
        if vertices.ndim != 2 or vertices.shape[0] == 0:
            raise ValueError(f"empty mesh or bad vertices of shape {vertices.shape}: cannot infer bounds")
        lo, hi = vertices.min(axis=0), vertices.max(axis=0)
        margin = padding * float((hi - lo).max())
        bounds = (lo - margin, hi + margin)
    return voxelize_mesh(vertices, faces, shape, bounds, rule=rule)
