"""Voxelisation of closed triangle meshes: analytic shapes, robustness on edges/vertices, errors."""
from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

trimesh = pytest.importorskip("trimesh")

from geometry import cell_centres, check_closed_mesh, voxelize, voxelize_mesh  # noqa: E402


def _grid(n, bounds=((0, 0, 0), (1, 1, 1))):
    x, y, z = cell_centres(n, bounds)
    return np.meshgrid(x, y, z, indexing="ij")


def _contains(mesh, points):
    """Reference inside test: trimesh's ``contains`` (needs rtree), else VTK's enclosed points."""
    try:
        import rtree  # noqa: F401
    except ImportError:
        pv = pytest.importorskip("pyvista")
        surface = pv.PolyData.from_regular_faces(np.asarray(mesh.vertices), np.asarray(mesh.faces))
        with warnings.catch_warnings():  # deprecated in pyvista 0.47 for select_interior_points
            warnings.simplefilter("ignore")
            found = pv.PolyData(points).select_enclosed_points(surface, tolerance=1e-12, check_surface=False)
        return np.asarray(found.point_data["SelectedPoints"]).astype(bool)
    return mesh.contains(points)


def _sphere(radius=0.3, centre=(0.5, 0.5, 0.5), subdivisions=4):
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    mesh.apply_translation(centre)
    return mesh


@pytest.mark.parametrize("n", [16, 33, 64])
def test_icosphere_matches_analytic_sphere(n):
    mask = voxelize(_sphere(), n)
    X, Y, Z = _grid(n)
    r = np.sqrt((X - 0.5) ** 2 + (Y - 0.5) ** 2 + (Z - 0.5) ** 2)
    exact = r < 0.3
    wrong = mask != exact
    assert mask.shape == (n, n, n) and mask.dtype == bool
    assert np.all(np.abs(r[wrong] - 0.3) < 1.0 / n), "mismatches farther than one cell from the surface"
    assert wrong.mean() < 0.01
    if n == 64:
        assert mask.mean() == pytest.approx(4 / 3 * np.pi * 0.3 ** 3, rel=0.03)


def test_randomly_moved_spheres_stay_clean():
    rng = np.random.default_rng(0)
    X, Y, Z = _grid(24)
    for _ in range(5):
        centre = rng.uniform(0.35, 0.65, size=3)
        mesh = trimesh.creation.icosphere(subdivisions=3, radius=0.25)
        mesh.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
        mesh.apply_translation(centre)
        r = np.sqrt((X - centre[0]) ** 2 + (Y - centre[1]) ** 2 + (Z - centre[2]) ** 2)
        wrong = voxelize(mesh, 24) != (r < 0.25)
        assert np.all(np.abs(r[wrong] - 0.25) < 1 / 24)


def test_box_is_exact_and_respects_bounds():
    lo, hi = np.array([0.21, 0.33, 0.12]), np.array([0.74, 0.58, 0.91])
    box = trimesh.creation.box(bounds=np.stack([lo, hi]))
    bounds = ((-0.1, 0.0, 0.05), (1.2, 0.9, 1.0))
    shape = (26, 18, 19)
    X, Y, Z = np.meshgrid(*cell_centres(shape, bounds), indexing="ij")
    exact = (X > lo[0]) & (X < hi[0]) & (Y > lo[1]) & (Y < hi[1]) & (Z > lo[2]) & (Z < hi[2])
    np.testing.assert_array_equal(voxelize(box, shape, bounds), exact)


def test_rays_through_vertices_and_edges_are_watertight():
    # every vertex and every edge of the subdivided faces lies exactly on column centres
    n, lo, hi = 8, np.array([3, 3, 0.3 * 16]) / 16, np.array([13, 11, 0.7 * 16]) / 16
    box = trimesh.creation.box(bounds=np.stack([lo, hi])).subdivide().subdivide()
    mask = voxelize(box, n)
    X, Y, Z = _grid(n)
    z_in = (Z[0, 0] > lo[2]) & (Z[0, 0] < hi[2])
    interior = (X[:, :, 0] > lo[0]) & (X[:, :, 0] < hi[0]) & (Y[:, :, 0] > lo[1]) & (Y[:, :, 0] < hi[1])
    on_rim = (X[:, :, 0] >= lo[0]) & (X[:, :, 0] <= hi[0]) & (Y[:, :, 0] >= lo[1]) & (Y[:, :, 0] <= hi[1])
    for i in range(n):
        for j in range(n):
            column = mask[i, j]
            if interior[i, j]:
                np.testing.assert_array_equal(column, z_in, err_msg=f"column {(i, j)}")
            elif on_rim[i, j]:  # on the box's side: either inside or outside, but never a leak
                assert not column.any() or np.array_equal(column, z_in), f"leaky column {(i, j)}"
            else:
                assert not column.any()


def test_torus_has_its_hole():
    torus = trimesh.creation.torus(major_radius=0.3, minor_radius=0.1, major_sections=64, minor_sections=32)
    torus.apply_translation([0.5, 0.5, 0.5])
    n = 40
    mask = voxelize(torus, n)
    X, Y, Z = _grid(n)
    rho = np.sqrt((X - 0.5) ** 2 + (Y - 0.5) ** 2)
    d = np.sqrt((rho - 0.3) ** 2 + (Z - 0.5) ** 2)
    wrong = mask != (d < 0.1)
    assert np.all(np.abs(d[wrong] - 0.1) < 1 / n)
    assert not mask[n // 2 - 1:n // 2 + 1, n // 2 - 1:n // 2 + 1, :].any(), "the hole is filled"
    assert mask[int(0.8 * n), n // 2, n // 2]


def test_overlapping_parts_union_with_nonzero_rule():
    a, b = _sphere(0.25, (0.4, 0.5, 0.5), 3), _sphere(0.25, (0.6, 0.5, 0.5), 3)
    both = trimesh.util.concatenate([a, b])
    n = 32
    union = voxelize(a, n) | voxelize(b, n)
    np.testing.assert_array_equal(voxelize(both, n), union)
    parity = voxelize(both, n, rule="parity")
    np.testing.assert_array_equal(parity, voxelize(a, n) ^ voxelize(b, n))


def test_inverted_mesh_and_parity_rule():
    mesh = _sphere(subdivisions=3)
    inverted = mesh.copy()
    inverted.invert()
    np.testing.assert_array_equal(voxelize(inverted, 20), voxelize(mesh, 20))
    np.testing.assert_array_equal(voxelize(mesh, 20, rule="parity"), voxelize(mesh, 20))


def test_agrees_with_trimesh_contains():
    rng = np.random.default_rng(1)
    torus = trimesh.creation.torus(major_radius=0.25, minor_radius=0.12)
    capsule = trimesh.creation.capsule(height=0.4, radius=0.15)
    for m in (torus, capsule):
        m.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
        lo = rng.uniform(-0.45, -0.35, size=3)
        bounds = (lo, lo + rng.uniform(0.8, 0.9, size=3))
        shape = (23, 29, 31)
        mask = voxelize(m, shape, bounds)
        pts = np.stack(np.meshgrid(*cell_centres(shape, bounds), indexing="ij"), axis=-1).reshape(-1, 3)
        ref = _contains(m, pts).reshape(shape)
        # random bounds: a cell centre on the surface (a tie) is practically impossible
        assert (mask != ref).sum() == 0
        # random single points, each as the centre of a 1-cell grid
        points = rng.uniform(-0.4, 0.4, size=(40, 3))
        ours = [voxelize(m, 1, (p - 1e-3, p + 1e-3))[0, 0, 0] for p in points]
        np.testing.assert_array_equal(ours, _contains(m, points))


def test_open_mesh_raises_with_advice():
    mesh = _sphere(subdivisions=2)
    holed = trimesh.Trimesh(mesh.vertices, mesh.faces[1:], process=False)
    with pytest.raises(ValueError, match=r"not watertight.*fill_holes"):
        voxelize(holed, 8)


def test_bad_inputs_raise():
    mesh = _sphere(subdivisions=1)
    with pytest.raises(ValueError, match="empty mesh"):
        voxelize_mesh(np.zeros((0, 3)), np.zeros((0, 3), int), 8)
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        voxelize_mesh(mesh.vertices[:, :2], mesh.faces, 8)
    with pytest.raises(ValueError, match=r"\(F, 3\)"):
        voxelize_mesh(mesh.vertices, np.zeros((4, 4), int), 8)
    with pytest.raises(ValueError, match="indices"):
        voxelize_mesh(mesh.vertices, mesh.faces + 1000, 8)
    with pytest.raises(ValueError, match="grid shape"):
        voxelize(mesh, (8, 8))
    with pytest.raises(ValueError, match="bounds"):
        voxelize(mesh, 8, ((0, 0, 0), (1, 0, 1)))
    with pytest.raises(ValueError, match="rule"):
        voxelize(mesh, 8, rule="even-odd")
    with pytest.raises(TypeError, match="trimesh"):
        voxelize("sphere.stl", 8)
    flipped = mesh.faces.copy()
    flipped[0] = flipped[0, ::-1]
    with pytest.raises(ValueError, match="fix_winding"):
        voxelize_mesh(mesh.vertices, flipped, 8)
    assert voxelize_mesh(mesh.vertices, flipped, 8, ((0.2,) * 3, (0.8,) * 3), rule="parity").any()


def test_duplicate_vertices_are_merged():
    mesh = _sphere(subdivisions=2)
    soup = mesh.vertices[mesh.faces].reshape(-1, 3)  # STL-style: every face has its own vertices
    faces = np.arange(soup.shape[0]).reshape(-1, 3)
    np.testing.assert_array_equal(voxelize((soup, faces), 16), voxelize(mesh, 16))
    v, f = check_closed_mesh(soup, faces)
    assert v.shape[0] == mesh.vertices.shape[0] and f.shape == mesh.faces.shape


def test_bounds_none_uses_the_mesh_box():
    mask = voxelize(_sphere(), 10, bounds=None)
    assert mask[5, 5, 5] and not mask[0, 0, 0] and mask.sum() > 0.4 * mask.size


def test_pyvista_closed_example_meshes():
    pv_examples = pytest.importorskip("pyvista.examples")
    for name in ("load_ant", "load_nut", "load_sphere"):
        mesh = getattr(pv_examples, name)()
        assert voxelize(mesh, 16, bounds=None, padding=0.05).any(), name
    with pytest.raises(ValueError, match="not watertight"):
        voxelize(pv_examples.load_airplane(), 16, bounds=None)


def test_speed_against_trimesh_contains(capsys):
    """Printed, not asserted: trimesh's contains (pure-python rays) is slow and memory hungry."""
    lines = []
    for subdivisions, n, reference in ((3, 24, True), (5, 64, False), (5, 128, False)):
        mesh = _sphere(subdivisions=subdivisions)
        voxelize(mesh, 8)  # compile / load the cache
        t0 = time.perf_counter()
        mask = voxelize(mesh, n)
        t_ours = time.perf_counter() - t0
        line = f"voxelize {n}^3, {len(mesh.faces)} faces: {t_ours * 1e3:.1f} ms"
        if reference:
            pts = np.stack(np.meshgrid(*cell_centres(n), indexing="ij"), axis=-1).reshape(-1, 3)
            t0 = time.perf_counter()
            ref = _contains(mesh, pts).reshape(mask.shape)
            t_ref = time.perf_counter() - t0
            try:
                import rtree  # noqa: F401
                name = "trimesh contains"
            except ImportError:
                name = "VTK select_enclosed_points (trimesh contains needs rtree)"
            line += f"; {name}: {t_ref * 1e3:.0f} ms ({t_ref / t_ours:.0f}x slower)"
            assert (mask != ref).sum() == 0
        lines.append(line)
    with capsys.disabled():
        print("\n" + "\n".join(lines))
