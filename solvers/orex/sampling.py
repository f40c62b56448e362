"""OReX training samples: hierarchical near-contour samples, uniform plane samples, hull samples.

Labels: inside 0, outside 1, on a contour 0.5 (the in/out test is the even-odd
point-in-polygon kernel of :mod:`geometry.polygon`). Level ``l`` has a radius ``r_l`` and
a count ``n_l``: for every contour edge ``n_l`` random points on the edge (label 0.5), each
offset by ``+-r_l`` along the in-plane edge normal (labelled), and ``n_l`` points on a
circle of radius ``r_l`` around every contour vertex. Every level also draws uniform
points on each plane (inside the ``[-1, 1]^3`` box) and points on the convex hull of the
contours enlarged about its centroid (labelled outside), and optionally (not in the paper)
uniform points of the box outside that hull (:func:`box_outside_samples`). Training at
level ``l`` uses the samples of the last ``reuse`` levels (:func:`level_dataset`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.polygon import pack_rings, points_in_polygons
from geometry.slices import SliceSet

__all__ = ["Samples", "sample_level", "hull_samples", "box_outside_samples", "plane_grid", "level_dataset"]


@dataclass
class Samples:
    """Points ``(N, 3)`` float64 and labels ``(N,)`` float64 in {0, 0.5, 1}; ``kind`` ``(N,)`` int8
    (0 near-contour, 1 on contour, 2 uniform on planes, 3 hull surface, 4 box outside the hull)."""

    points: np.ndarray
    labels: np.ndarray
    kind: np.ndarray

    @staticmethod
    def concat(parts: list["Samples"]) -> "Samples":
        return Samples(np.concatenate([p.points for p in parts]), np.concatenate([p.labels for p in parts]),
                       np.concatenate([p.kind for p in parts]))

    def __len__(self) -> int:
        return len(self.points)


def _edge_normals(ring: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = ring
    b = np.roll(ring, -1, axis=0)
    d = b - a
    length = np.linalg.norm(d, axis=1, keepdims=True)
    normal = np.stack([d[:, 1], -d[:, 0]], axis=1) / np.maximum(length, 1e-300)
    return a, d, normal


def plane_grid(slices: SliceSet, k: int, n: int, rng: np.random.Generator | None = None,
               box: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Points of plane ``k`` inside the cube ``[-box, box]^3``: random (``rng``) or an ``n x n`` grid.

    Returns
    -------
    points3 : (M, 3), points2 : (M, 2)
    """
    plane = slices[k].plane
    centre2 = plane.to_2d(np.zeros((1, 3)))[0]
    half = np.sqrt(3.0) * box
    if rng is None:
        t = np.linspace(-half, half, n)
        p2 = np.stack(np.meshgrid(t, t, indexing="ij"), axis=-1).reshape(-1, 2) + centre2
    else:
        p2 = rng.uniform(-half, half, size=(int(n * 2.5), 2)) + centre2  # ~ area ratio of the cut
    p3 = plane.to_3d(p2)
    keep = np.all(np.abs(p3) <= box, axis=1)
    p2, p3 = p2[keep], p3[keep]
    if rng is not None:
        p2, p3 = p2[:n], p3[:n]
    return p3, p2


def _label(inside: np.ndarray) -> np.ndarray:
    return np.where(inside, 0.0, 1.0)


def _resample_ring(ring: np.ndarray, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """``ceil(perimeter / spacing)`` points on a closed ring ``(E, 2)``, equally spaced in arc length from a
    random start (so every level sees different points)."""
    seg = np.linalg.norm(np.roll(ring, -1, axis=0) - ring, axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    count = max(3, int(np.ceil(cum[-1] / spacing)))
    s = (np.arange(count) + rng.random()) * (cum[-1] / count)
    e = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(ring) - 1)
    t = ((s - cum[e]) / np.maximum(seg[e], 1e-300))[:, None]
    return ring[e] + t * (np.roll(ring, -1, axis=0)[e] - ring[e])


def sample_level(slices: SliceSet, radius: float, n: int, uniform_per_plane: int, rng: np.random.Generator,
                 contour_points: bool = True, spacing: float | None = None) -> Samples:
    """Near-contour, on-contour and uniform plane samples of one level (normalised slices).

    With ``spacing`` (not in the paper) the per-edge rule is applied to each ring redrawn as
    points ``spacing`` apart in arc length (so finely tessellated contours, e.g.
    from marching-cubes meshes, do not swamp the uniform plane samples); labels still come from
    the original rings.
    """
    parts = []
    for k, sec in enumerate(slices):
        if sec.contours:
            rings = sec.rings_2d()
            verts, starts = pack_rings(rings)
            near, on = [], []
            for ring in rings:
                if spacing is not None:
                    ring = _resample_ring(ring, spacing, rng)
                a, d, normal = _edge_normals(ring)
                t = rng.random((len(ring), n, 1))
                base = a[:, None, :] + t * d[:, None, :]  # (E, n, 2)
                near += [(base + radius * normal[:, None, :]).reshape(-1, 2),
                         (base - radius * normal[:, None, :]).reshape(-1, 2)]
                angle = rng.random((len(ring), n)) * 2 * np.pi
                near.append((ring[:, None, :] + radius * np.stack([np.cos(angle), np.sin(angle)], -1)).reshape(-1, 2))
                on.append(base.reshape(-1, 2))
            near2 = np.concatenate(near)
            parts.append(Samples(sec.plane.to_3d(near2), _label(points_in_polygons(near2, verts, starts)),
                                 np.zeros(len(near2), np.int8)))
            if contour_points:
                on2 = np.concatenate(on)
                parts.append(Samples(sec.plane.to_3d(on2), np.full(len(on2), 0.5), np.ones(len(on2), np.int8)))
        if uniform_per_plane:
            p3, p2 = plane_grid(slices, k, uniform_per_plane, rng)
            parts.append(Samples(p3, _label(sec.inside_2d(p2)), np.full(len(p3), 2, np.int8)))
    return Samples.concat(parts)


def hull_samples(slices: SliceSet, count: int, rng: np.random.Generator, enlarge: float = 0.05) -> Samples:
    """``count`` points on the convex hull of all contour vertices, enlarged by ``enlarge``; label 1."""
    from scipy.spatial import ConvexHull
    pts = slices.points()
    centre = pts.mean(axis=0)
    hull = ConvexHull(pts)
    tri = pts[hull.simplices]  # (F, 3, 3)
    tri = centre + (1.0 + enlarge) * (tri - centre)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    face = rng.choice(len(tri), size=count, p=area / area.sum())
    u, v = rng.random((2, count, 1))
    flip = (u + v) > 1
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    t = tri[face]
    p = t[:, 0] + u * (t[:, 1] - t[:, 0]) + v * (t[:, 2] - t[:, 0])
    return Samples(p, np.ones(count), np.full(count, 3, np.int8))


def box_outside_samples(slices: SliceSet, count: int, rng: np.random.Generator, enlarge: float = 0.05,
                        box: float = 1.0) -> Samples:
    """Up to ``count`` uniform points of the cube ``[-box, box]^3`` outside the enlarged hull; label 1.

    Not in the paper's code (which only samples the hull surface): without them the field
    is unconstrained between the hull and the meshing box and can grow blobs there.
    """
    from scipy.spatial import Delaunay
    pts = slices.points()
    centre = pts.mean(axis=0)
    hull = Delaunay(centre + (1.0 + enlarge) * (pts - centre))
    cand = rng.uniform(-box, box, size=(2 * count, 3))
    cand = cand[hull.find_simplex(cand) < 0][:count]
    return Samples(cand, np.ones(len(cand)), np.full(len(cand), 4, np.int8))


def level_dataset(levels: list[Samples], level: int, reuse: int = 3) -> Samples:
    """Samples of levels ``max(0, level - reuse + 1) .. level``."""
    return Samples.concat(levels[max(0, level - reuse + 1):level + 1])
