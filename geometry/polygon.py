"""Planar polygons with holes: point-in-polygon, distance to the boundary, self-intersections.

A *polygon set* is a list of closed rings in 2-D, packed as

* ``vertices : (E, 2)`` float64 — the vertices of all rings one after the other (a ring
  is closed implicitly: its last vertex joins its first), and
* ``starts : (R + 1,)`` int64 — ring ``r`` is ``vertices[starts[r]:starts[r + 1]]``.

Inside is decided by the **even-odd rule** over all rings, so an outer contour with holes
(and islands in the holes) needs no orientation or labels, as in OReX's use of matplotlib
``Path.contains_points`` per contour. The kernels are numba-compiled on first use (cached
on disk); :func:`pack_rings` builds the packed arrays from a list of ``(N_r, 2)`` rings.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["pack_rings", "points_in_polygons", "distance_to_rings", "signed_distance_2d",
           "ring_self_intersections", "signed_area"]


def pack_rings(rings: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pack rings into ``(vertices (E, 2), starts (R + 1,))``.

    Parameters
    ----------
    rings : sequence of (N_r, 2) arrays, N_r >= 3
        Closed rings without a repeated last vertex.
    """
    arrays = [np.asarray(r, dtype=np.float64).reshape(-1, 2) for r in rings]
    for i, r in enumerate(arrays):
        if r.shape[0] < 3:
            raise ValueError(f"ring {i} has {r.shape[0]} vertices; a closed contour needs at least 3")
    starts = np.zeros(len(arrays) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([r.shape[0] for r in arrays])
    vertices = np.concatenate(arrays) if arrays else np.zeros((0, 2))
    return np.ascontiguousarray(vertices), starts


def _inside_kernel(points, vertices, starts):
    """Even-odd crossing count with the edges bucketed into horizontal slabs.

    Each edge is registered in every slab its y-range overlaps, so a point only tests the
    edges of its own slab: about ``E / n_slabs`` instead of ``E`` edge tests per point.
    """
    n = points.shape[0]
    m = vertices.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    if m == 0:
        return out
    # edge k runs from vertex prev[k] to vertex k
    prev = np.empty(m, dtype=np.int64)
    for r in range(starts.shape[0] - 1):
        for k in range(starts[r], starts[r + 1]):
            prev[k] = k - 1 if k > starts[r] else starts[r + 1] - 1
    y0 = vertices[0, 1]
    y1 = vertices[0, 1]
    for k in range(m):
        y0 = min(y0, vertices[k, 1])
        y1 = max(y1, vertices[k, 1])
    nb = max(1, min(m, 4096))
    h = (y1 - y0) / nb
    if h <= 0.0:
        return out
    # the slabs each edge overlaps: first_slab[k] .. last_slab[k]
    first_slab = np.empty(m, dtype=np.int64)
    last_slab = np.empty(m, dtype=np.int64)
    count = np.zeros(nb + 1, dtype=np.int64)
    for k in range(m):
        lo = min(vertices[k, 1], vertices[prev[k], 1])
        hi = max(vertices[k, 1], vertices[prev[k], 1])
        first_slab[k] = min(int((lo - y0) / h), nb - 1)
        last_slab[k] = min(int((hi - y0) / h), nb - 1)
        for b in range(first_slab[k], last_slab[k] + 1):
            count[b + 1] += 1
    for b in range(nb):
        count[b + 1] += count[b]
    fill = count[:-1].copy()
    slab = np.empty(count[nb], dtype=np.int64)
    for k in range(m):
        for b in range(first_slab[k], last_slab[k] + 1):
            slab[fill[b]] = k
            fill[b] += 1
    for p in range(n):
        px, py = points[p, 0], points[p, 1]
        if not (y0 <= py <= y1):
            continue
        b = min(int((py - y0) / h), nb - 1)
        inside = False
        for s in range(count[b], count[b + 1]):
            i = slab[s]
            j = prev[i]
            xi, yi = vertices[i, 0], vertices[i, 1]
            xj, yj = vertices[j, 0], vertices[j, 1]
            if (yi > py) != (yj > py):
                xc = xj + (py - yj) * (xi - xj) / (yi - yj)
                if px < xc:
                    inside = not inside
        out[p] = inside
    return out


def _distance_kernel(points, vertices, starts):
    n = points.shape[0]
    out = np.empty(n)
    for p in range(n):
        px, py = points[p, 0], points[p, 1]
        best = np.inf
        for r in range(starts.shape[0] - 1):
            s, e = starts[r], starts[r + 1]
            j = e - 1
            for i in range(s, e):
                ax, ay = vertices[j, 0], vertices[j, 1]
                dx, dy = vertices[i, 0] - ax, vertices[i, 1] - ay
                ll = dx * dx + dy * dy
                t = 0.0
                if ll > 0.0:
                    t = ((px - ax) * dx + (py - ay) * dy) / ll
                    t = min(max(t, 0.0), 1.0)
                qx, qy = ax + t * dx - px, ay + t * dy - py
                d = qx * qx + qy * qy
                if d < best:
                    best = d
                j = i
        out[p] = np.sqrt(best)
    return out


def _crossing_kernel(vertices, starts, limit):
    """Pairs of non-adjacent edges that touch or cross; edge k runs from vertex k to its successor."""
    m = vertices.shape[0]
    ring = np.empty(m, dtype=np.int64)
    nxt = np.empty(m, dtype=np.int64)
    for r in range(starts.shape[0] - 1):
        for k in range(starts[r], starts[r + 1]):
            ring[k] = r
            nxt[k] = k + 1 if k + 1 < starts[r + 1] else starts[r]
    found = np.empty((limit, 2), dtype=np.int64)
    count = 0
    for a in range(m):
        ax, ay = vertices[a, 0], vertices[a, 1]
        bx, by = vertices[nxt[a], 0], vertices[nxt[a], 1]
        for b in range(a + 1, m):
            if ring[a] == ring[b] and (nxt[a] == b or nxt[b] == a):
                continue  # neighbours share a vertex
            cx, cy = vertices[b, 0], vertices[b, 1]
            dx, dy = vertices[nxt[b], 0], vertices[nxt[b], 1]
            if max(ax, bx) < min(cx, dx) or max(cx, dx) < min(ax, bx) or \
                    max(ay, by) < min(cy, dy) or max(cy, dy) < min(ay, by):
                continue
            v1 = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
            v2 = (bx - ax) * (dy - ay) - (by - ay) * (dx - ax)
            v3 = (dx - cx) * (ay - cy) - (dy - cy) * (ax - cx)
            v4 = (dx - cx) * (by - cy) - (dy - cy) * (bx - cx)
            o1 = 1 if v1 > 0.0 else (-1 if v1 < 0.0 else 0)
            o2 = 1 if v2 > 0.0 else (-1 if v2 < 0.0 else 0)
            o3 = 1 if v3 > 0.0 else (-1 if v3 < 0.0 else 0)
            o4 = 1 if v4 > 0.0 else (-1 if v4 < 0.0 else 0)
            hit = o1 != o2 and o3 != o4
            if not hit and (o1 == 0 or o2 == 0 or o3 == 0 or o4 == 0):
                # collinear touching: the bounding boxes overlap (checked above) and one
                # segment's endpoint lies on the other's line
                hit = (o1 == 0 and o2 == 0) or (o3 == 0 and o4 == 0) or \
                      (o1 == 0 and min(ax, bx) <= cx <= max(ax, bx) and min(ay, by) <= cy <= max(ay, by)) or \
                      (o2 == 0 and min(ax, bx) <= dx <= max(ax, bx) and min(ay, by) <= dy <= max(ay, by)) or \
                      (o3 == 0 and min(cx, dx) <= ax <= max(cx, dx) and min(cy, dy) <= ay <= max(cy, dy)) or \
                      (o4 == 0 and min(cx, dx) <= bx <= max(cx, dx) and min(cy, dy) <= by <= max(cy, dy))
            if hit:
                found[count, 0] = a
                found[count, 1] = b
                count += 1
                if count == limit:
                    return found
    return found[:count]


_KERNELS: dict = {}


def _kernel(name: str):
    if name not in _KERNELS:
        from numba import njit
        source = {"inside": _inside_kernel, "distance": _distance_kernel, "crossing": _crossing_kernel}[name]
        _KERNELS[name] = njit(cache=True, nogil=True)(source)
    return _KERNELS[name]


def _as_points(points) -> np.ndarray:
    points = np.ascontiguousarray(np.asarray(points, dtype=np.float64))
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (M, 2), got {points.shape}")
    return points


def _packed(rings, starts) -> tuple[np.ndarray, np.ndarray]:
    if starts is None:
        return pack_rings(rings)
    vertices = np.ascontiguousarray(np.asarray(rings, dtype=np.float64))
    starts = np.ascontiguousarray(np.asarray(starts, dtype=np.int64))
    if vertices.ndim != 2 or vertices.shape[1] != 2 or starts.ndim != 1 or starts[-1] != vertices.shape[0]:
        raise ValueError("packed rings need vertices (E, 2) and starts (R + 1,) with starts[-1] == E")
    return vertices, starts


def points_in_polygons(points, rings, starts=None) -> np.ndarray:
    """Even-odd inside test of 2-D points against rings (outer contours, holes, islands).

    Parameters
    ----------
    points : (M, 2) array_like
    rings : sequence of (N_r, 2) arrays, or packed vertices (E, 2) with ``starts``
    starts : (R + 1,) int array, optional
        Ring offsets when ``rings`` is packed (see :func:`pack_rings`).

    Returns
    -------
    (M,) bool
        True where the point crosses an odd number of ring edges to infinity. Points
        exactly on an edge are decided consistently but arbitrarily (half-open rule).
    """
    vertices, starts = _packed(rings, starts)
    return _kernel("inside")(_as_points(points), vertices, starts)


def distance_to_rings(points, rings, starts=None) -> np.ndarray:
    """Euclidean distance from 2-D points to the nearest ring edge, ``(M,)`` float64."""
    vertices, starts = _packed(rings, starts)
    if vertices.shape[0] == 0:
        return np.full(len(points), np.inf)
    return _kernel("distance")(_as_points(points), vertices, starts)


def signed_distance_2d(points, rings, starts=None) -> np.ndarray:
    """Signed distance to the rings, negative inside (even-odd rule), ``(M,)`` float64."""
    vertices, starts = _packed(rings, starts)
    dist = distance_to_rings(points, vertices, starts)
    return np.where(points_in_polygons(points, vertices, starts), -dist, dist)


def ring_self_intersections(rings, starts=None, limit: int = 16) -> np.ndarray:
    """Pairs of edges that cross or touch (within one ring or between rings of one plane).

    Parameters
    ----------
    rings : sequence of (N_r, 2) arrays, or packed vertices with ``starts``
    limit : int
        Stop after this many pairs.

    Returns
    -------
    (K, 2) int64
        Packed indices of the first vertex of each offending edge (``K = 0``: simple rings).
    """
    vertices, starts = _packed(rings, starts)
    return _kernel("crossing")(vertices, starts, int(limit))


def signed_area(ring) -> float:
    """Shoelace area of one ring ``(N, 2)``: positive when counter-clockwise."""
    ring = np.asarray(ring, dtype=np.float64)
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))
