"""Numba polygon kernels against matplotlib Path and brute-force numpy."""
import numpy as np
import pytest

from geometry.polygon import (distance_to_rings, pack_rings, points_in_polygons, ring_self_intersections,
                              signed_area, signed_distance_2d)


def star(n, r0, amp, centre, rng, clockwise=False):
    """A random star-shaped (hence simple) ring."""
    theta = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = r0 * (1 + amp * rng.uniform(-1, 1, n))
    ring = np.stack([centre[0] + r * np.cos(theta), centre[1] + r * np.sin(theta)], axis=1)
    return ring[::-1] if clockwise else ring


def matplotlib_even_odd(points, rings):
    from matplotlib.path import Path
    inside = np.zeros(len(points), dtype=bool)
    for ring in rings:
        inside ^= Path(ring).contains_points(points)
    return inside


@pytest.mark.parametrize("seed", range(5))
def test_inside_matches_matplotlib_with_holes(seed):
    rng = np.random.default_rng(seed)
    outer = star(60, 1.0, 0.25, (0, 0), rng)
    hole = star(30, 0.3, 0.2, (0.1, -0.05), rng, clockwise=True)
    other = star(20, 0.3, 0.3, (2.0, 0.5), rng)
    rings = [outer, hole, other]
    pts = rng.uniform(-1.5, 2.5, size=(20000, 2))
    ours = points_in_polygons(pts, rings)
    assert ours.sum() > 1000
    np.testing.assert_array_equal(ours, matplotlib_even_odd(pts, rings))


def test_packed_and_list_inputs_agree():
    rng = np.random.default_rng(1)
    rings = [star(12, 1, 0.2, (0, 0), rng), star(8, 0.3, 0.1, (0, 0), rng)]
    pts = rng.uniform(-1.2, 1.2, (500, 2))
    v, s = pack_rings(rings)
    np.testing.assert_array_equal(points_in_polygons(pts, rings), points_in_polygons(pts, v, s))


def test_distance_matches_bruteforce():
    rng = np.random.default_rng(2)
    rings = [star(40, 1.0, 0.2, (0, 0), rng), star(15, 0.3, 0.1, (0.1, 0), rng)]
    pts = rng.uniform(-1.5, 1.5, (300, 2))
    a = np.concatenate(rings)
    b = np.concatenate([np.roll(r, -1, axis=0) for r in rings])
    d = b - a
    t = np.clip(np.einsum("mkj,kj->mk", pts[:, None] - a[None], d) / (d ** 2).sum(1), 0, 1)
    brute = np.linalg.norm(a[None] + t[..., None] * d[None] - pts[:, None], axis=2).min(axis=1)
    np.testing.assert_allclose(distance_to_rings(pts, rings), brute, rtol=1e-12, atol=1e-14)
    sd = signed_distance_2d(pts, rings)
    np.testing.assert_allclose(np.abs(sd), brute, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(sd < 0, points_in_polygons(pts, rings))


def test_self_intersections():
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    bowtie = np.array([[0, 0], [1, 1], [1, 0], [0, 1]], float)
    assert len(ring_self_intersections([square])) == 0
    assert len(ring_self_intersections([bowtie])) == 1
    # two rings crossing each other, and two disjoint ones
    assert len(ring_self_intersections([square, square + 0.5])) > 0
    assert len(ring_self_intersections([square, square + 2.0])) == 0
    # touching at a vertex of another ring's edge
    assert len(ring_self_intersections([square, np.array([[1, 0.5], [2, 0], [2, 1]], float)])) > 0


def test_signed_area_orientation():
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    assert signed_area(square) == pytest.approx(1.0)
    assert signed_area(square[::-1]) == pytest.approx(-1.0)


def test_errors():
    with pytest.raises(ValueError, match="at least 3"):
        pack_rings([np.zeros((2, 2))])
    with pytest.raises(ValueError, match=r"\(M, 2\)"):
        points_in_polygons(np.zeros((3, 3)), [np.eye(3)[:, :2]])
