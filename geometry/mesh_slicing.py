"""Cut a closed triangle mesh by planes into contours (mesh-plane intersection + segment chaining).

Method
------
Every vertex gets the side ``d >= 0`` or ``d < 0`` of its signed distance ``d`` to the
plane (a vertex exactly on the plane counts as above: simulation of simplicity, so no
case analysis is needed). A triangle whose vertices are on both sides is cut by one
segment joining the crossing points on its two straddling edges. Each crossing point is
named by its mesh edge ``(min(i, j), max(i, j))``, so the two triangles sharing an edge
produce bit-identical endpoints; the segment is oriented along ``plane normal x face
normal`` (material on its left when seen from the normal), decided from the face's vertex
order rather than from coordinates, so even zero-length segments are oriented exactly. Chaining then follows
"end edge = start edge" links, exactly, with one sort — both steps are numba kernels. On a
watertight, consistently oriented mesh every chain closes; outer contours come out
counter-clockwise and holes clockwise in the plane's frame.
"""
from __future__ import annotations

import numpy as np

from geometry.slices import Contour, CrossSection, Plane, SliceError, SliceSet

__all__ = ["slice_mesh", "cut_mesh", "random_planes"]


def _cut_kernel(vertices, faces, normal, offset):
    nf = faces.shape[0]
    dist = vertices @ normal + offset
    keys = np.empty((nf, 2), dtype=np.int64)
    points = np.empty((nf, 2, 3))
    count = 0
    nv = vertices.shape[0]
    crossing_keys = np.empty(2, dtype=np.int64)
    crossing_pts = np.empty((2, 3))
    down = np.zeros(2, dtype=np.bool_)
    for f in range(nf):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        sa, sb, sc = dist[a] >= 0.0, dist[b] >= 0.0, dist[c] >= 0.0
        if sa == sb and sb == sc:
            continue
        m = 0
        for e in range(3):
            i = faces[f, e]
            j = faces[f, (e + 1) % 3]
            if (dist[i] >= 0.0) != (dist[j] >= 0.0):
                lo, hi = (i, j) if i < j else (j, i)
                t = dist[lo] / (dist[lo] - dist[hi])
                for k in range(3):
                    if dist[lo] == 0.0:
                        crossing_pts[m, k] = vertices[lo, k]
                    elif dist[hi] == 0.0:
                        crossing_pts[m, k] = vertices[hi, k]
                    else:
                        crossing_pts[m, k] = vertices[lo, k] + t * (vertices[hi, k] - vertices[lo, k])
                crossing_keys[m] = lo * nv + hi
                down[m] = dist[i] >= 0.0
                m += 1
        # orientation (topological, so exact): the face's boundary, walked in its vertex
        # order, leaves the upper side on one edge and enters it on the other; the segment
        # runs from the first crossing to the second, i.e. along normal x face normal
        first = 0 if down[0] else 1
        keys[count, 0] = crossing_keys[first]
        keys[count, 1] = crossing_keys[1 - first]
        for k in range(3):
            points[count, 0, k] = crossing_pts[first, k]
            points[count, 1, k] = crossing_pts[1 - first, k]
        count += 1
    return keys[:count], points[:count]


def _chain_kernel(keys):
    """Follow segment links; returns (order (S,), chain id (S,), status) with status -1 when open."""
    s = keys.shape[0]
    order = np.argsort(keys[:, 0])
    sorted_starts = keys[order, 0]
    nxt = np.empty(s, dtype=np.int64)
    for i in range(s):
        pos = np.searchsorted(sorted_starts, keys[i, 1])
        if pos >= s or sorted_starts[pos] != keys[i, 1]:
            return order, nxt, i  # open: nothing starts where segment i ends
        nxt[i] = order[pos]
    visited = np.zeros(s, dtype=np.bool_)
    out = np.empty(s, dtype=np.int64)
    chain = np.empty(s, dtype=np.int64)
    n = 0
    c = 0
    for i in range(s):
        if visited[i]:
            continue
        j = i
        while not visited[j]:
            visited[j] = True
            out[n] = j
            chain[n] = c
            n += 1
            j = nxt[j]
        if j != i:
            return out, chain, -2 - j  # a branch: two segments start at the same point
        c += 1
    return out, chain, -1


_KERNELS: dict = {}


def _kernel(name: str):
    if name not in _KERNELS:
        from numba import njit
        _KERNELS[name] = njit(cache=True, nogil=True)({"cut": _cut_kernel, "chain": _chain_kernel}[name])
    return _KERNELS[name]


def cut_mesh(vertices, faces, plane: Plane, min_edge: float | None = None) -> list[Contour]:
    """Contours of one plane through a closed mesh.

    Parameters
    ----------
    vertices : (V, 3) float64
    faces : (F, 3) int64
        Watertight, consistently oriented (outward normals) triangles.
    plane : Plane
    min_edge : float, optional
        Drop contour vertices closer than this to the previous kept one (default
        ``1e-9`` times the mesh's bounding-box diagonal: removes the (near) zero-length
        edges of cuts through mesh vertices).

    Returns
    -------
    list of Contour
        Outer contours counter-clockwise in ``plane.frame`` (``hole=False``), holes
        clockwise (``hole=True``).

    Raises
    ------
    SliceError
        When a chain does not close (the mesh has a hole there) or branches (non-manifold).
    """
    from geometry.polygon import signed_area
    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    keys, points = _kernel("cut")(vertices, faces, plane.normal, plane.offset)
    if len(keys) == 0:
        return []
    order, chain, status = _kernel("chain")(keys)
    if status >= 0:
        raise SliceError(f"open contour while cutting the mesh by plane {np.round(plane.coefficients, 6).tolist()}: "
                         f"the cut stops near {np.round(points[status, 1], 6).tolist()}; the mesh is not watertight "
                         "there (close it, e.g. trimesh.repair.fill_holes)")
    if status < -1:
        raise SliceError(f"branching contour while cutting by plane {np.round(plane.coefficients, 6).tolist()}: "
                         "the mesh is non-manifold or inconsistently oriented (trimesh.repair.fix_winding)")
    if min_edge is None:
        min_edge = 1e-9 * float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0)))
    contours = []
    bounds = np.flatnonzero(np.diff(chain[:len(order)])) + 1
    for idx in np.split(order, bounds):
        ring = _thin(points[idx, 0], min_edge)
        if len(ring) < 3:
            continue
        area = signed_area(plane.to_2d(ring))
        if area == 0.0:
            continue
        contours.append(Contour(ring, hole=area < 0))
    return contours


def _thin(ring: np.ndarray, min_edge: float) -> np.ndarray:
    """Drop vertices within ``min_edge`` of the previously kept one (and of the first, at the end)."""
    step = np.linalg.norm(np.diff(ring, axis=0), axis=1)
    if step.size and step.min() > min_edge and np.linalg.norm(ring[-1] - ring[0]) > min_edge:
        return ring
    kept = [ring[0]]
    for p in ring[1:]:
        if np.linalg.norm(p - kept[-1]) > min_edge:
            kept.append(p)
    while len(kept) > 1 and np.linalg.norm(kept[-1] - kept[0]) <= min_edge:
        kept.pop()
    return np.asarray(kept)


def _mesh_arrays(mesh):
    from geometry.voxelize import _mesh_arrays as arrays
    return arrays(mesh)


def slice_mesh(mesh, planes, min_edge: float | None = None, validate: bool = True) -> SliceSet:
    """Cut a closed mesh by several planes.

    Parameters
    ----------
    mesh : trimesh.Trimesh, pyvista.PolyData or (vertices (V, 3), faces (F, 3))
    planes : sequence of Plane
    min_edge : float
        See :func:`cut_mesh`.
    validate : bool
        Check the mesh (watertight, oriented) and the resulting slices.

    Returns
    -------
    SliceSet
    """
    from geometry.voxelize import check_closed_mesh
    vertices, faces = _mesh_arrays(mesh)
    if validate:
        vertices, faces = check_closed_mesh(vertices, faces, oriented=True)
    if len(planes) == 0:
        raise SliceError("no planes given: pass at least one Plane (see geometry.mesh_slicing.random_planes)")
    sections = [CrossSection(p, cut_mesh(vertices, faces, p, min_edge)) for p in planes]
    return SliceSet(sections, validate=validate)


def random_planes(n: int, centre=(0.0, 0.0, 0.0), radius: float = 1.0, spread: float = 0.7,
                  seed: int = 0) -> list[Plane]:
    """``n`` planes of uniformly random orientation passing within ``spread * radius`` of ``centre``.

    Parameters
    ----------
    n : int
    centre : (3,)
    radius : float
    spread : float
        Offsets are uniform in ``[-spread, spread] * radius``.
    seed : int
    """
    rng = np.random.default_rng(seed)
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    offsets = rng.uniform(-spread, spread, size=n) * radius
    centre = np.asarray(centre, dtype=np.float64)
    return [Plane.from_point_normal(centre + o * nrm, nrm) for nrm, o in zip(normals, offsets)]
