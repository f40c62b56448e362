"""Mesh-plane intersection and segment chaining against trimesh and analytic shapes."""
import numpy as np
import pytest
import trimesh

from geometry.mesh_slicing import cut_mesh, random_planes, slice_mesh
from geometry.polygon import signed_area
from geometry.slices import Plane, SliceError


def torus_inside(p, R=0.6, r=0.25):
    return (np.hypot(p[:, 0], p[:, 1]) - R) ** 2 + p[:, 2] ** 2 < r ** 2


def test_sphere_cut_is_a_circle():
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    plane = Plane.from_point_normal([0, 0, 0.3], [0.3, -0.2, 1.0])
    (c,) = cut_mesh(mesh.vertices, mesh.faces, plane)
    np.testing.assert_allclose(plane.signed_distance(c.points), 0, atol=1e-12)
    centre = -plane.offset * plane.normal
    radius = np.linalg.norm(c.points - centre, axis=1)
    expected = np.sqrt(1 - plane.offset ** 2)
    assert np.abs(radius - expected).max() < 0.01
    assert not c.hole and signed_area(plane.to_2d(c.points)) > 0  # counter-clockwise outer contour


@pytest.mark.parametrize("seed", range(3))
def test_total_length_matches_trimesh(seed):
    mesh = trimesh.creation.torus(0.6, 0.25)
    for plane in random_planes(5, radius=0.8, seed=seed):
        contours = cut_mesh(mesh.vertices, mesh.faces, plane)
        ours = sum(np.linalg.norm(c.points - np.roll(c.points, 1, axis=0), axis=1).sum() for c in contours)
        segs = trimesh.intersections.mesh_plane(mesh, plane.normal, plane.origin)
        ref = np.linalg.norm(segs[:, 1] - segs[:, 0], axis=1).sum()
        assert ours == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_torus_slices_classify_points_like_the_shape():
    mesh = trimesh.creation.torus(0.6, 0.25, major_sections=96, minor_sections=48)
    slices = slice_mesh(mesh, random_planes(6, radius=0.8, seed=3))
    rng = np.random.default_rng(0)
    for k, sec in enumerate(slices):
        p3 = sec.plane.to_3d(rng.uniform(-1, 1, (4000, 2)))
        truth = torus_inside(p3)
        # ignore a band around the true surface (the mesh is a polygonal approximation)
        dist = np.abs(np.sqrt((np.hypot(p3[:, 0], p3[:, 1]) - 0.6) ** 2 + p3[:, 2] ** 2) - 0.25)
        far = dist > 0.01
        np.testing.assert_array_equal(slices.inside(k, p3)[far], truth[far])


def test_cut_through_vertices_and_hole_orientation():
    mesh = trimesh.creation.torus(0.6, 0.25)
    contours = cut_mesh(mesh.vertices, mesh.faces, Plane.from_coefficients(0, 0, 1, 0))  # hits vertex rings exactly
    assert sorted(c.hole for c in contours) == [False, True]
    plane = Plane.from_coefficients(0, 0, 1, 0)
    for c in contours:
        assert (signed_area(plane.to_2d(c.points)) < 0) == c.hole
    slice_mesh(mesh, [plane, Plane.from_coefficients(1, 0, 0, 0)])  # validates: simple, disjoint


def test_open_mesh_raises():
    mesh = trimesh.creation.icosphere(subdivisions=2)
    faces = mesh.faces[1:]  # a hole
    with pytest.raises(ValueError, match="watertight"):
        slice_mesh((mesh.vertices, faces), [Plane.from_coefficients(0, 0, 1, 0)])
    plane = Plane.from_point_normal(mesh.triangles_center[0], [0.1, 0.2, 1.0])
    with pytest.raises(SliceError, match="open contour"):
        cut_mesh(mesh.vertices, faces, plane)


def test_plane_missing_the_mesh_gives_empty_section():
    mesh = trimesh.creation.icosphere()
    s = slice_mesh(mesh, [Plane.from_coefficients(0, 0, 1, 0), Plane.from_coefficients(0, 0, 1, -5)])
    assert len(s[0].contours) == 1 and s[1].contours == []


def test_random_planes_are_deterministic():
    a, b = random_planes(4, seed=7), random_planes(4, seed=7)
    assert all(np.allclose(p.coefficients, q.coefficients) for p, q in zip(a, b))
    assert all(abs(p.offset) <= 0.7 + 1e-12 for p in a)
