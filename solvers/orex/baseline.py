"""Classical baseline: inverse-distance interpolation of the slices' 2-D signed distances.

For a point ``x`` and plane ``i`` let ``h_i`` be the distance of ``x`` to the plane and
``s_i`` the 2-D signed distance (negative inside, even-odd rule) of its projection to the
contours of plane ``i`` (an empty plane gives ``+1``, outside). The field is
``f(x) = sum_i w_i s_i / sum_i w_i`` with ``w_i = 1 / (h_i^p + eps)``, so ``f`` reproduces
every slice exactly on its plane; points outside the convex hull of the contours (enlarged
by 5 %) are outside. It is the arbitrary-plane form of the signed-distance interpolation
used for parallel slices (e.g. Herman et al. 1992), with no learning.
"""
from __future__ import annotations

import time

import numpy as np

from geometry.polygon import pack_rings, signed_distance_2d
from geometry.slices import SliceSet

__all__ = ["SliceDistanceInterpolation"]


class SliceDistanceInterpolation:
    """Inverse-distance-weighted slice signed distances.

    Parameters
    ----------
    power : float
        ``p`` in the weights ``1 / h^p``.
    hull_enlarge : float
        Outside beyond the contours' convex hull scaled by ``1 + hull_enlarge``.
    """

    def __init__(self, power: float = 2.0, hull_enlarge: float = 0.05, eps: float = 1e-12):
        self.power, self.hull_enlarge, self.eps = power, hull_enlarge, eps
        self.fit_seconds = 0.0

    def fit(self, slices: SliceSet) -> "SliceDistanceInterpolation":
        from scipy.spatial import Delaunay
        start = time.perf_counter()
        slices.validate()
        self.slices = slices
        self.packed = [pack_rings(sec.rings_2d()) if sec.contours else None for sec in slices]
        pts = slices.points()
        centre = pts.mean(axis=0)
        self.hull = Delaunay(centre + (1 + self.hull_enlarge) * (pts - centre))
        self.fit_seconds = time.perf_counter() - start
        return self

    def field(self, points) -> np.ndarray:
        """Interpolated signed distance at ``points (N, 3)`` (input coordinates); ``(N,)``."""
        points = np.asarray(points, dtype=np.float64)
        num = np.zeros(len(points))
        den = np.zeros(len(points))
        for sec, packed in zip(self.slices, self.packed):
            h = np.abs(sec.plane.signed_distance(points))
            w = 1.0 / (h ** self.power + self.eps)
            s = np.ones(len(points)) if packed is None else signed_distance_2d(sec.plane.to_2d(points), *packed)
            num += w * s
            den += w
        f = num / den
        outside = self.hull.find_simplex(points) < 0
        return np.where(outside, np.maximum(f, 1e-3), f)
