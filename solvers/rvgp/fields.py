"""Point clouds and analytic tangent vector fields for tests and benchmarks (no downloads).

Every field here is written in closed form, never built from a Laplacian we fit (RVGP's own
protocol, random vectors diffused with the same connection Laplacian, puts the truth inside
the span of the eigenvectors and scores a meaningless zero error).

* Sphere: :func:`sphere_vortex` ``e_z x x`` and :func:`sphere_source` ``e_z - z x``, each with
  index +1 at both poles (sum 2 = Euler characteristic).
* Torus: :func:`torus_field` (toroidal and poloidal parts; never vanishes).
* Flat manifolds: :func:`flat_torus` in R^4 (Clifford torus) and :func:`swiss_roll`.
* Thin gap: :func:`folded_sheet`, a hairpin whose two arms are close in R^3 but far apart
  along the surface, with the unit field along the fold (opposite directions on the arms).
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "cap_mask",
    "flat_torus",
    "folded_sheet",
    "sample_sphere",
    "sample_torus",
    "sphere_source",
    "sphere_vortex",
    "swiss_roll",
    "tight_roll",
    "torus_field",
]


def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(seed)


def sample_sphere(n: int, seed: int = 0) -> np.ndarray:
    """``n`` points uniform on the unit sphere, ``(n, 3)``."""
    x = _rng(seed).normal(size=(n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def sphere_vortex(points: np.ndarray) -> np.ndarray:
    """Rotation about the z axis, ``e_z x x``, ``(n, 3)``: zeros of index +1 at both poles."""
    return np.cross(np.array([0.0, 0.0, 1.0]), points)


def sphere_source(points: np.ndarray) -> np.ndarray:
    """Tangential part of ``e_z``, ``e_z - z x``, ``(n, 3)``: source at the south pole, sink at the north."""
    return np.array([0.0, 0.0, 1.0]) - points[:, 2:3] * points


def sample_torus(n: int, major: float = 1.0, minor: float = 0.4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform (by area) on a torus; returns points ``(n, 3)`` and angles ``(n, 2)`` (phi, theta)."""
    rng = _rng(seed)
    phi, theta = np.empty(0), np.empty(0)
    while phi.size < n:   # area element (R + r cos theta): rejection on theta
        t = rng.uniform(0, 2 * np.pi, 2 * n)
        keep = rng.uniform(0, major + minor, 2 * n) < major + minor * np.cos(t)
        theta = np.concatenate([theta, t[keep]])
        phi = np.concatenate([phi, rng.uniform(0, 2 * np.pi, keep.sum())])
    phi, theta = phi[:n], theta[:n]
    rho = major + minor * np.cos(theta)
    pts = np.stack([rho * np.cos(phi), rho * np.sin(phi), minor * np.sin(theta)], axis=1)
    return pts, np.stack([phi, theta], axis=1)


def torus_field(angles: np.ndarray, toroidal: float = 1.0, poloidal: float = 0.5, wave: int = 0) -> np.ndarray:
    """``a(phi) e_phi + b e_theta`` on the torus of :func:`sample_torus`, ``(n, 3)``.

    ``e_phi`` (around the z axis) and ``e_theta`` (around the tube) are unit vectors;
    ``a = toroidal * (1 + 0.5 cos(wave * theta))`` so ``wave > 0`` adds variation across the tube.
    """
    phi, theta = angles[:, 0], angles[:, 1]
    e_phi = np.stack([-np.sin(phi), np.cos(phi), np.zeros_like(phi)], axis=1)
    e_theta = np.stack([-np.sin(theta) * np.cos(phi), -np.sin(theta) * np.sin(phi), np.cos(theta)], axis=1)
    a = toroidal * (1.0 + 0.5 * np.cos(wave * theta)) if wave else toroidal * np.ones_like(phi)
    return a[:, None] * e_phi + poloidal * e_theta


def flat_torus(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clifford torus ``(cos u, sin u, cos v, sin v) / sqrt 2`` in R^4 (flat) and a smooth field on it.

    Returns points ``(n, 4)`` and the field ``cos(v) d/du + (0.5 + sin u) d/dv`` as ambient vectors ``(n, 4)``.
    """
    rng = _rng(seed)
    u, v = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n)
    s = 1.0 / np.sqrt(2.0)
    pts = s * np.stack([np.cos(u), np.sin(u), np.cos(v), np.sin(v)], axis=1)
    du = s * np.stack([-np.sin(u), np.cos(u), 0 * u, 0 * u], axis=1)
    dv = s * np.stack([0 * u, 0 * u, -np.sin(v), np.cos(v)], axis=1)
    return pts, np.cos(v)[:, None] * du + (0.5 + np.sin(u))[:, None] * dv


def swiss_roll(n: int, height: float = 10.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Swiss roll ``(t cos t, h, t sin t)``, ``t`` in ``[1.5 pi, 4.5 pi]``, sampled uniformly by area.

    Returns points ``(n, 3)`` and the unit field along the roll ``d/dt / |d/dt|`` ``(n, 3)``.
    """
    rng = _rng(seed)
    t0, t1 = 1.5 * np.pi, 4.5 * np.pi
    # arc length ~ t^2 / 2: invert a uniform arc-length draw
    t = np.sqrt(t0**2 + rng.uniform(0, 1, n) * (t1**2 - t0**2))
    h = rng.uniform(0, height, n)
    pts = np.stack([t * np.cos(t), h, t * np.sin(t)], axis=1)
    tangent = np.stack([np.cos(t) - t * np.sin(t), 0 * t, np.sin(t) + t * np.cos(t)], axis=1)
    return pts, tangent / np.linalg.norm(tangent, axis=1, keepdims=True)


def folded_sheet(n: int, arm: float = 2.0, gap: float = 0.25, width: float = 1.0,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A hairpin: two parallel strips ``gap`` apart joined by a half cylinder.

    Arc length ``s`` runs along the lower arm (``y = 0``, ``x`` from 0 to ``arm``), round the
    fold and back along the upper arm (``y = gap``). The field is ``(1 + 0.3 sin(pi s / L)) d/ds``:
    it points ``+x`` on the lower arm and ``-x`` on the upper one, so the Euclidean neighbours
    across the gap carry the opposite vector.

    Returns
    -------
    points : (n, 3)
    field : (n, 3)
    s : (n,) arc length
    """
    rng = _rng(seed)
    bend = np.pi * gap / 2
    total = 2 * arm + bend
    s = rng.uniform(0, total, n)
    z = rng.uniform(0, width, n)
    pts = np.empty((n, 3))
    tangent = np.empty((n, 3))
    lower, upper = s < arm, s > arm + bend
    fold = ~(lower | upper)
    pts[lower] = np.stack([s[lower], 0 * s[lower], z[lower]], axis=1)
    tangent[lower] = [1.0, 0.0, 0.0]
    angle = (s[fold] - arm) / (gap / 2)           # 0 .. pi around the centre (arm, gap/2)
    pts[fold] = np.stack([arm + gap / 2 * np.sin(angle), gap / 2 - gap / 2 * np.cos(angle), z[fold]], axis=1)
    tangent[fold] = np.stack([np.cos(angle), np.sin(angle), 0 * angle], axis=1)
    pts[upper] = np.stack([arm - (s[upper] - arm - bend), gap + 0 * s[upper], z[upper]], axis=1)
    tangent[upper] = [-1.0, 0.0, 0.0]
    field = (1.0 + 0.3 * np.sin(np.pi * s / total))[:, None] * tangent
    return pts, field, s


def cap_mask(points: np.ndarray, centre, angle: float) -> np.ndarray:
    """Boolean mask of sphere points within geodesic ``angle`` (radians) of the unit vector ``centre``."""
    c = np.asarray(centre, dtype=np.float64)
    c = c / np.linalg.norm(c)
    return points @ c > np.cos(angle)


def tight_roll(n: int, turns: float = 2.0, gap: float = 0.3, height: float = 1.0, waves: int = 5,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tightly wound spiral sheet: layers ``gap`` apart in R^3 but far apart along the surface.

    The spiral ``r = c t`` (``c = gap / 2 pi``, ``t`` from ``3 pi`` over ``turns`` turns) is swept
    along ``y`` over ``height``, sampled uniformly by area. The field is
    ``cos(waves pi s / L) d/ds + 0.5 cos(pi y / height) d/dy`` with ``s`` the arc length
    (total ``L``), so neighbouring layers (an arc length ``~2 pi r`` apart) carry unrelated
    vectors. (Both parts have zero normal derivative at the free edges; a field that does
    not is still fitted, but the truncated eigenbasis converges slowly near the edges.)

    Returns
    -------
    points : (n, 3)
    field : (n, 3)
    s : (n,) arc length from the inner edge
    """
    rng = _rng(seed)
    c = gap / (2 * np.pi)
    t0 = 3 * np.pi
    t1 = t0 + 2 * np.pi * turns

    def arc(t):
        return 0.5 * c * (t * np.sqrt(1 + t**2) + np.arcsinh(t))

    grid = np.linspace(t0, t1, 20001)
    s_grid = arc(grid) - arc(t0)
    s = rng.uniform(0, s_grid[-1], n)
    t = np.interp(s, s_grid, grid)
    y = rng.uniform(0, height, n)
    pts = np.stack([c * t * np.cos(t), y, c * t * np.sin(t)], axis=1)
    ds = np.stack([np.cos(t) - t * np.sin(t), 0 * t, np.sin(t) + t * np.cos(t)], axis=1)
    ds /= np.linalg.norm(ds, axis=1, keepdims=True)
    dy = np.array([0.0, 1.0, 0.0])
    field = np.cos(waves * np.pi * s / s_grid[-1])[:, None] * ds + 0.5 * np.cos(np.pi * y / height)[:, None] * dy
    return pts, field, s
