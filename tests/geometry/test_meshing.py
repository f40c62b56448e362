"""Marching cubes with level handling, clean-up and export."""
import numpy as np
import pytest
import trimesh

from geometry.meshing import (clean_mesh, evaluate_grid, export_mesh, extract_mesh, grid_points, mesh_from_field,
                              write_occupancy_vti)


def sphere(p):
    return np.linalg.norm(p, axis=1) - 0.5


def torus(p):
    return np.sqrt((np.hypot(p[:, 0], p[:, 1]) - 0.5) ** 2 + p[:, 2] ** 2) - 0.2


def test_sphere_is_watertight_with_right_volume():
    mesh, values = mesh_from_field(sphere, 48)
    assert values.shape == (48, 48, 48)
    assert mesh.is_watertight and mesh.euler_number == 2
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.125, rel=0.01)  # outward normals: positive volume


def test_torus_keeps_genus_one():
    mesh, _ = mesh_from_field(torus, 48)
    assert mesh.is_watertight and mesh.euler_number == 0


def test_level_on_grid_values_leaves_no_holes():
    # a quantised field equals the level at many grid points (skimage #8116)
    mesh, values = mesh_from_field(lambda p: np.round(sphere(p), 1), 33)
    assert np.any(values == 0.0)
    assert mesh.is_watertight


def test_surface_cut_by_the_box_is_closed():
    mesh, _ = mesh_from_field(lambda p: np.linalg.norm(p, axis=1) - 1.2, 24)
    assert mesh.is_watertight and mesh.volume > 0


def test_batched_evaluation_matches_full():
    full = evaluate_grid(sphere, 17, batch_size=10 ** 6)
    np.testing.assert_array_equal(evaluate_grid(sphere, 17, batch_size=100), full)
    pts, spacing = grid_points(17)
    np.testing.assert_allclose(spacing, 2 / 16)
    np.testing.assert_array_equal(full.reshape(-1), sphere(pts))


def test_empty_field_gives_empty_mesh():
    assert len(extract_mesh(np.ones((8, 8, 8))).faces) == 0


def test_errors():
    with pytest.raises(ValueError, match="NaN"):
        extract_mesh(np.full((4, 4, 4), np.nan))
    with pytest.raises(ValueError, match="3-D grid"):
        extract_mesh(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="unknown mesh format"):
        export_mesh(trimesh.creation.box(), "x.abc")


def test_clean_mesh_drops_duplicates_and_degenerates():
    box = trimesh.creation.box()
    faces = np.vstack([box.faces, box.faces[:2], [[0, 0, 1]]])
    mesh = clean_mesh(box.vertices, faces)
    assert len(mesh.faces) == 12 and mesh.is_watertight


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".stl"])
def test_export_round_trip(tmp_path, suffix):
    mesh, _ = mesh_from_field(sphere, 20)
    back = trimesh.load(export_mesh(mesh, tmp_path / f"m{suffix}"), force="mesh")
    assert back.is_watertight
    assert back.volume == pytest.approx(mesh.volume, rel=1e-5)


def test_vtp_and_vti(tmp_path):
    from sciml.io import read_vtk
    mesh, values = mesh_from_field(sphere, 20)
    data = read_vtk(export_mesh(mesh, tmp_path / "m.vtp", point_data={"z": mesh.vertices[:, 2]}))
    assert data["points"].shape == mesh.vertices.shape and "z" in data["point_data"]
    vol = read_vtk(write_occupancy_vti(tmp_path / "o.vti", values))
    np.testing.assert_array_equal(vol["point_data"]["occupancy"], (values < 0).astype(np.uint8))
    np.testing.assert_allclose(vol["origin"], (-1, -1, -1))
