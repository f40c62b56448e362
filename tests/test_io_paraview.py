"""Tests for sciml.io.paraview: round trips through pyvista, index order, errors, atomicity."""
from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

pv = pytest.importorskip("pyvista")

from sciml.io import paraview  # noqa: E402
from sciml.io.paraview import read_vtk, write_pvd, write_vti, write_vtp, write_vtu  # noqa: E402


def _ijk_field(shape):
    i, j, k = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return (i + 10 * j + 100 * k).astype(np.float64)


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- vti
@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 1, 3), (1, 1, 4), (6, 5, 1)])
def test_vti_value_sits_at_its_coordinates(tmp_path, shape):
    spacing, origin = np.array([0.5, 2.0, 0.25]), np.array([1.0, -3.0, 7.0])
    f = _ijk_field(shape)
    path = write_vti(tmp_path / "f.vti", {"f": f}, spacing=spacing, origin=origin)
    grid = pv.read(path)
    assert tuple(grid.dimensions) == shape
    ijk = np.rint((np.asarray(grid.points) - origin) / spacing).astype(int)
    assert np.array_equal(np.asarray(grid.points), origin + spacing * ijk)
    assert np.array_equal(np.asarray(grid.point_data["f"]), ijk @ np.array([1.0, 10.0, 100.0]))


def test_vti_known_point(tmp_path):
    f = _ijk_field((4, 5, 6))
    grid = pv.read(write_vti(tmp_path / "f.vti", {"f": f}, spacing=(1, 2, 3), origin=(10, 0, 0)))
    pid = grid.find_closest_point((12.0, 8.0, 15.0))  # (i, j, k) = (2, 4, 5)
    assert grid.point_data["f"][pid] == 2 + 40 + 500


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vti_torch_roundtrip_exact(tmp_path, dtype):
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(5, 4, 3, generator=gen, dtype=dtype, requires_grad=True)
    v = torch.randn(5, 4, 3, 3, generator=gen, dtype=dtype)
    c = torch.randn(4, 3, 2, generator=gen, dtype=dtype)
    out = read_vtk(write_vti(tmp_path / "u.vti", {"u": u, "v": v}, cell_data={"c": c}))
    for name, ref in (("u", u), ("v", v)):
        got = out["point_data"][name]
        assert got.dtype == ref.detach().numpy().dtype
        assert np.array_equal(got, ref.detach().numpy())
    assert np.array_equal(out["cell_data"]["c"], c.numpy())
    assert out["mesh"].point_data.active_vectors_name == "v"
    assert out["mesh"].point_data.active_scalars_name == "u"


def test_vti_vector_components_in_grid_order(tmp_path):
    shape = (3, 4, 2)
    v = np.stack([_ijk_field(shape), -_ijk_field(shape), np.full(shape, 7.0)], axis=-1)
    grid = pv.read(write_vti(tmp_path / "v.vti", {"v": v}))
    ijk = np.rint(np.asarray(grid.points)).astype(int)
    expected = ijk @ np.array([1.0, 10.0, 100.0])
    got = np.asarray(grid.point_data["v"])
    assert got.shape == (24, 3)
    assert np.array_equal(got[:, 0], expected) and np.array_equal(got[:, 1], -expected)
    assert np.array_equal(got[:, 2], np.full(24, 7.0))


def test_vti_cell_data_only_defines_grid(tmp_path):
    shape = (3, 2, 4)
    c = _ijk_field(shape)
    grid = pv.read(write_vti(tmp_path / "c.vti", cell_data={"c": c}, spacing=(2, 2, 2)))
    assert tuple(grid.dimensions) == (4, 3, 5)
    ijk = np.floor(np.asarray(grid.cell_centers().points) / 2.0).astype(int)
    assert np.array_equal(np.asarray(grid.cell_data["c"]), ijk @ np.array([1.0, 10.0, 100.0]))
    assert np.array_equal(read_vtk(tmp_path / "c.vti")["cell_data"]["c"], c)


def test_vti_flat_image_with_points_and_cells(tmp_path):
    p, c = _ijk_field((4, 5, 1)), _ijk_field((3, 4, 1))
    out = read_vtk(write_vti(tmp_path / "img.vti", {"p": p}, {"c": c}))
    assert np.array_equal(out["point_data"]["p"], p) and np.array_equal(out["cell_data"]["c"], c)


def test_vti_low_precision_and_bool_inputs(tmp_path):
    h = torch.arange(24, dtype=torch.float16).reshape(2, 3, 4)
    b = np.arange(24).reshape(2, 3, 4) % 2 == 0
    out = read_vtk(write_vti(tmp_path / "h.vti", {"h": h, "b": b}))
    assert out["point_data"]["h"].dtype == np.float32
    assert np.array_equal(out["point_data"]["h"], h.float().numpy())
    assert np.array_equal(out["point_data"]["b"], b.astype(np.uint8))


def test_vti_file_is_compressed_binary_xml(tmp_path):
    head = write_vti(tmp_path / "f.vti", {"f": np.zeros((2, 2, 2))}).read_bytes()[:600].decode("ascii", "replace")
    assert 'type="ImageData"' in head and 'compressor="vtkZLibDataCompressor"' in head
    assert 'format="ascii"' not in head


@pytest.mark.parametrize("kwargs, match", [
    (dict(point_data={"a": np.zeros((2, 3, 4)), "b": np.zeros((2, 3, 5))}),
     r"point_data\['b'\] has grid shape \(2, 3, 5\) but point_data\['a'\] has \(2, 3, 4\)"),
    (dict(point_data={"a": np.zeros((4, 4, 4))}, cell_data={"c": np.zeros((4, 4, 4))}),
     r"cell_data grid shape \(4, 4, 4\) does not fit point_data grid shape \(4, 4, 4\).*\(3, 3, 3\)"),
    (dict(point_data={"a": np.zeros((4, 4))}), r"point_data\['a'\] must have shape \(nx, ny, nz\).*a\[:, :, None\]"),
    (dict(point_data={"a": np.zeros((0, 4, 4))}), r"every axis needs length >= 1"),
    (dict(), r"at least one array in point_data or cell_data"),
    (dict(point_data={"a": np.zeros((2, 2, 2), dtype=complex)}), r"point_data\['a'\] is complex.*\.real and \.imag"),
    (dict(point_data={"a": torch.zeros(2, 2, 2, dtype=torch.complex64)}), r"point_data\['a'\] is complex"),
    (dict(point_data={"a": np.array([["x"]])}), r"dtype <U1; give a numeric"),
    (dict(point_data={"a": np.zeros((2, 2, 2))}, spacing=(1, 0, 1)), r"spacing must be three finite positive"),
    (dict(point_data={"a": np.zeros((2, 2, 2))}, origin=(0, 0)), r"origin must be three finite numbers"),
])
def test_vti_errors(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_vti(tmp_path / "x.vti", **kwargs)
    assert _listing(tmp_path) == []


def test_wrong_extension_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"write_vti writes '\.vti' files.*rename it to 'x\.vti' \(use write_vtp"):
        write_vti(tmp_path / "x.vtp", {"a": np.zeros((2, 2, 2))})
    with pytest.raises(ValueError, match=r"write_vtu writes '\.vtu' files"):
        write_vtu(tmp_path / "x.vtk", np.zeros((1, 3)), [[0]], "vertex")
    with pytest.raises(ValueError, match=r"write_pvd writes '\.pvd' files"):
        write_pvd(tmp_path / "x.xml", [])


def test_fields_must_be_a_mapping(tmp_path):
    with pytest.raises(TypeError, match=r"point_data must be a dict mapping names to arrays"):
        write_vti(tmp_path / "x.vti", np.zeros((2, 2, 2)))


# ----------------------------------------------------------------------------- vtp
def test_vtp_point_cloud_roundtrip(tmp_path):
    gen = torch.Generator().manual_seed(1)
    pts = torch.rand(12, 3, generator=gen)
    s, v = torch.rand(12, generator=gen), torch.rand(12, 3, generator=gen, dtype=torch.float64)
    ids = np.arange(12, dtype=np.int32)
    out = read_vtk(write_vtp(tmp_path / "c.vtp", pts, point_data={"s": s, "v": v}, cell_data={"id": ids}))
    mesh = out["mesh"]
    assert mesh.n_verts == 12 and mesh.n_cells == 12 and mesh.GetNumberOfPolys() == 0
    assert np.array_equal(out["points"], pts.numpy()) and out["points"].dtype == np.float32
    assert np.array_equal(out["point_data"]["s"], s.numpy())
    assert np.array_equal(out["point_data"]["v"], v.numpy()) and out["point_data"]["v"].dtype == np.float64
    assert np.array_equal(out["cell_data"]["id"], ids)
    assert mesh.point_data.active_vectors_name == "v"


@pytest.mark.parametrize("faces", [np.array([[0, 1, 2], [0, 2, 3]]), np.array([[0, 1, 2, 3]])])
def test_vtp_polygons_roundtrip(tmp_path, faces):
    pts = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    area = np.arange(len(faces), dtype=np.float64) + 0.5
    out = read_vtk(write_vtp(tmp_path / "s.vtp", pts, faces=torch.from_numpy(faces), cell_data={"a": area}))
    mesh = out["mesh"]
    assert mesh.n_verts == 0 and mesh.n_cells == len(faces)
    assert np.array_equal(mesh.regular_faces, faces)
    assert np.array_equal(out["points"], pts) and np.array_equal(out["cell_data"]["a"], area)


def test_vtp_lines_come_before_faces(tmp_path):
    pts = np.eye(3)
    out = read_vtk(write_vtp(tmp_path / "m.vtp", pts, faces=[[0, 1, 2]], lines=[[0, 1], [1, 2]],
                             cell_data={"k": np.array([10, 11, 20])}))
    mesh = out["mesh"]
    assert mesh.n_lines == 2 and mesh.GetNumberOfPolys() == 1 and mesh.n_verts == 0
    assert np.array_equal(np.asarray(mesh.lines), [2, 0, 1, 2, 1, 2])
    assert list(mesh.get_cell(0).point_ids) == [0, 1] and list(mesh.get_cell(2).point_ids) == [0, 1, 2]
    assert np.array_equal(out["cell_data"]["k"], [10, 11, 20])


def test_vtp_integer_points_become_float(tmp_path):
    out = read_vtk(write_vtp(tmp_path / "p.vtp", np.array([[1, 2, 3]])))
    assert out["points"].dtype == np.float64 and np.array_equal(out["points"], [[1.0, 2.0, 3.0]])


@pytest.mark.parametrize("kwargs, match", [
    (dict(points=np.zeros((12, 3)), point_data={"u": np.zeros(10)}),
     r"point_data\['u'\] has 10 values but the mesh has 12 points"),
    (dict(points=np.zeros((3, 3)), faces=[[0, 1, 2]], cell_data={"c": np.zeros(3)}),
     r"cell_data\['c'\] has 3 values but the mesh has 1 cells"),
    (dict(points=np.zeros((4, 3)), point_data={"u": np.zeros((4, 3, 3))}),
     r"point_data\['u'\].*got shape \(4, 3, 3\)"),
    (dict(points=np.zeros((5, 2))), r"points must have shape \(N, 3\), got \(5, 2\); pad 2-D points"),
    (dict(points=np.zeros(6)), r"points must have shape \(N, 3\), got \(6,\)"),
    (dict(points=np.zeros((3, 3), dtype=np.complex128)), r"points is complex"),
    (dict(points=np.zeros((3, 3)), faces=[[0, 1, 3]]), r"faces indexes points 0\.\.3 but there are only 3 points"),
    (dict(points=np.zeros((3, 3)), faces=[[0.0, 1.0, 2.0]]), r"faces must hold integer point indices"),
    (dict(points=np.zeros((3, 3)), faces=[[0, 1]]), r"faces must be an integer array of shape \(M, K\) with K >= 3"),
    (dict(points=np.zeros((4, 3)), faces=[[0, 1, 2], [0, 1, 2, 3]]), r"faces is not a rectangular array"),
    (dict(points=np.zeros((3, 3)), point_data={"": np.zeros(3)}), r"keys must be non-empty strings"),
])
def test_vtp_errors(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_vtp(tmp_path / "x.vtp", kwargs.pop("points"), **kwargs)
    assert _listing(tmp_path) == []


# ----------------------------------------------------------------------------- vtu
_CUBE = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                  [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=np.float64)


@pytest.mark.parametrize("cell_type, cells, vtk_type", [
    ("tetra", np.array([[0, 1, 3, 4], [1, 2, 3, 6]]), pv.CellType.TETRA),
    ("hexahedron", np.array([[0, 1, 2, 3, 4, 5, 6, 7]]), pv.CellType.HEXAHEDRON),
    ("triangle", np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6]]), pv.CellType.TRIANGLE),
    ("hex", np.array([[0, 1, 2, 3, 4, 5, 6, 7]]), pv.CellType.HEXAHEDRON),
])
def test_vtu_roundtrip(tmp_path, cell_type, cells, vtk_type):
    temp = torch.linspace(0, 1, 8, dtype=torch.float64)
    vel = torch.arange(24, dtype=torch.float32).reshape(8, 3)
    mat = np.arange(len(cells), dtype=np.int64)
    out = read_vtk(write_vtu(tmp_path / "m.vtu", _CUBE, cells, cell_type,
                             point_data={"T": temp, "vel": vel}, cell_data={"mat": mat}))
    mesh = out["mesh"]
    assert np.array_equal(out["points"], _CUBE)
    assert np.array_equal(np.asarray(mesh.celltypes), np.full(len(cells), vtk_type))
    assert np.array_equal(mesh.cells_dict[vtk_type], cells)
    assert np.array_equal(out["point_data"]["T"], temp.numpy())
    assert np.array_equal(out["point_data"]["vel"], vel.numpy()) and out["point_data"]["vel"].dtype == np.float32
    assert np.array_equal(out["cell_data"]["mat"], mat)
    assert mesh.point_data.active_vectors_name == "vel"


@pytest.mark.parametrize("cells, cell_type, match", [
    ([[0, 1, 2, 3]], "octahedron", r"unknown cell_type 'octahedron'; use one of \["),
    ([[0, 1, 2]], "tetra", r"cell_type 'tetra' has 4 nodes per cell but cells has shape \(1, 3\)"),
    ([[0, 1, 2, 8]], "tetra", r"cells indexes points 0\.\.8 but there are only 8 points"),
    ([[0, -1, 2, 3]], "tetra", r"cells indexes points -1\.\.3"),
])
def test_vtu_errors(tmp_path, cells, cell_type, match):
    with pytest.raises(ValueError, match=match):
        write_vtu(tmp_path / "x.vtu", _CUBE, np.array(cells), cell_type)
    assert _listing(tmp_path) == []


# ----------------------------------------------------------------------------- pvd
def test_pvd_references_files_with_times(tmp_path):
    times = [0.0, 0.1, 0.25]
    files = [write_vti(tmp_path / "frames" / f"u_{n:03d}.vti", {"u": np.full((2, 2, 2), t)})
             for n, t in enumerate(times)]
    pvd = write_pvd(tmp_path / "u.pvd", list(zip(times, files)))
    root = ET.parse(pvd).getroot()
    assert root.tag == "VTKFile" and root.get("type") == "Collection"
    datasets = root.find("Collection").findall("DataSet")
    assert [float(d.get("timestep")) for d in datasets] == times
    assert [d.get("file") for d in datasets] == [f"frames/u_{n:03d}.vti" for n in range(3)]
    for d, t in zip(datasets, times):
        target = pvd.parent / d.get("file")
        assert target.exists()
        assert np.array_equal(read_vtk(target)["point_data"]["u"], np.full((2, 2, 2), t))


def test_pvd_relative_path_from_subfolder(tmp_path):
    data = write_vtp(tmp_path / "data" / "p.vtp", np.zeros((1, 3)))
    pvd = write_pvd(tmp_path / "series" / "p.pvd", [(1.5, data)])
    ds = ET.parse(pvd).getroot().find("Collection/DataSet")
    assert ds.get("file") == "../data/p.vtp" and float(ds.get("timestep")) == 1.5


def test_pvd_errors(tmp_path):
    with pytest.raises(ValueError, match=r"entries\[0\] references .*missing\.vti, which does not exist"):
        write_pvd(tmp_path / "a.pvd", [(0.0, tmp_path / "missing.vti")])
    with pytest.raises(ValueError, match=r"entries\[0\] must be a \(time, file\) pair"):
        write_pvd(tmp_path / "a.pvd", [("soon", "a.vti")])
    with pytest.raises(ValueError, match=r"entries\[0\] has time nan; times must be finite"):
        write_pvd(tmp_path / "a.pvd", [(float("nan"), "a.vti")], check_exists=False)
    assert _listing(tmp_path) == []
    write_pvd(tmp_path / "a.pvd", [(0.0, "later.vti")], check_exists=False)
    assert ET.parse(tmp_path / "a.pvd").getroot().find("Collection/DataSet").get("file") == "later.vti"


# ----------------------------------------------------------------------------- atomicity and imports
def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = write_vti(tmp_path / "f.vti", {"f": np.zeros((2, 2, 2))})
    before = target.read_bytes()

    def broken_save(self, filename, *args, **kwargs):
        Path(filename).write_bytes(b"<?xml half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(pv.DataSet, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        write_vti(target, {"f": np.ones((3, 3, 3))})
    assert target.read_bytes() == before
    assert _listing(tmp_path) == ["f.vti"]


def test_invalid_input_does_not_touch_existing_file(tmp_path):
    target = write_vtp(tmp_path / "p.vtp", np.zeros((2, 3)))
    before = target.read_bytes()
    with pytest.raises(ValueError):
        write_vtp(target, np.zeros((2, 3)), point_data={"u": np.zeros(3)})
    assert target.read_bytes() == before and _listing(tmp_path) == ["p.vtp"]


def test_core_imports_without_pyvista():
    code = ("import sys; sys.modules['pyvista'] = None; sys.modules['vtk'] = None\n"
            "import sciml.io, sciml.io.paraview\n"
            "try:\n    sciml.io.write_vti('x.vti', {'a': [[[0.0]]]})\n"
            "except ImportError:\n    print('lazy')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "lazy"
    assert "pyvista" not in paraview.__dict__
