"""Tests for map export: 16-bit PNG round trip, EXR (when installed), maps.json metadata."""
import json
import sys

import numpy as np
import pytest
import torch

from solvers.umat.export import (
    decode_png,
    encode_png16,
    export_maps,
    exr_available,
    load_exr,
    load_png16,
    save_exr,
    save_png16,
)

needs_exr = pytest.mark.skipif(not exr_available(), reason="optional package 'openexr' not installed")


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (13, 9, 3), (4, 6, 4), (3, 8, 2), (5, 4, 1)])
def test_png16_round_trip_within_half_a_step(tmp_path, shape):
    a = np.random.default_rng(0).random(shape)
    save_png16(tmp_path / "a.png", a)
    b = load_png16(tmp_path / "a.png")
    expected_shape = shape[:2] if len(shape) == 3 and shape[2] == 1 else shape
    assert b.shape == expected_shape
    assert np.abs(b - a.reshape(b.shape)).max() <= 0.5 / 65535 + 1e-12
    assert np.abs(b - a.reshape(b.shape)).max() > 0             # it really is quantised


def test_png16_exact_levels_and_clipping(tmp_path):
    levels = np.array([[0, 1, 2, 32767], [32768, 65533, 65534, 65535]]) / 65535.0
    save_png16(tmp_path / "l.png", levels)
    np.testing.assert_array_equal(load_png16(tmp_path / "l.png"), levels)
    save_png16(tmp_path / "c.png", np.array([[-0.5, 1.5]]))
    np.testing.assert_array_equal(load_png16(tmp_path / "c.png"), [[0.0, 1.0]])
    with pytest.raises(ValueError, match="NaN"):
        encode_png16(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="C in 1..4"):
        encode_png16(np.zeros((2, 2, 5)))


def test_png16_readable_by_pillow(tmp_path):
    """An independent decoder (Pillow) reads the same 16-bit grey values and 8-bit RGB approximations."""
    from PIL import Image
    rng = np.random.default_rng(1)
    grey = rng.random((9, 11))
    save_png16(tmp_path / "g.png", grey)
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (11, 9)
        np.testing.assert_array_equal(np.array(im).astype(np.int64), np.rint(grey * 65535).astype(np.int64))
    rgb = rng.random((6, 5, 3))
    save_png16(tmp_path / "c.png", rgb)
    with Image.open(tmp_path / "c.png") as im:
        assert im.size == (5, 6)
        assert np.abs(np.array(im.convert("RGB")) / 255.0 - rgb).max() <= 1.0 / 255 + 1e-9


@pytest.mark.parametrize("mode, dtype", [("RGB", np.uint8), ("L", np.uint8), ("RGBA", np.uint8), ("I;16", np.uint16)])
def test_decoder_reads_pillow_pngs_with_all_filters(tmp_path, mode, dtype):
    from PIL import Image
    rng = np.random.default_rng(2)
    shape = {"RGB": (17, 23, 3), "RGBA": (17, 23, 4)}.get(mode, (17, 23))
    top = 65535 if dtype == np.uint16 else 255
    # a smooth ramp plus noise makes Pillow's adaptive filtering pick several filter types
    ramp = np.linspace(0, top // 2, shape[1])[None, :]
    data = (ramp.reshape((1, shape[1]) + (1,) * (len(shape) - 2)) + rng.integers(0, top // 2, shape)).astype(dtype)
    Image.fromarray(data).save(tmp_path / "p.png", optimize=True)
    np.testing.assert_array_equal(load_png16(tmp_path / "p.png") * top, data.astype(np.float64))


def test_decode_rejects_non_png():
    with pytest.raises(ValueError, match="not a PNG"):
        decode_png(b"GIF89a....")


def _unit_normals(h=8, w=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(1, 3, h, w, generator=g) * 0.4 + torch.tensor([0.0, 0.0, 1.0])[:, None, None]
    return torch.nn.functional.normalize(n, dim=1)


def test_export_maps_writes_pngs_and_metadata(tmp_path):
    n = _unit_normals()
    r = torch.rand(1, 1, 8, 9) * 0.95 + 0.05
    s = torch.rand(1, 1, 8, 9)
    u = torch.rand(1, 1, 8, 9) * 3
    paths = export_maps(tmp_path / "out", n, r, s, uncertainty=u, albedo=torch.rand(1, 3, 8, 9))
    assert {"normal", "roughness", "specular", "uncertainty", "albedo", "maps_json"} <= set(paths)
    decoded = load_png16(paths["normal"]) * 2 - 1                     # (n + 1) / 2 encoding
    assert np.abs(decoded - n[0].permute(1, 2, 0).numpy()).max() <= 1.0 / 65535 + 1e-6
    assert np.abs(load_png16(paths["roughness"]) - r[0, 0].numpy()).max() <= 0.5 / 65535 + 1e-7
    meta = json.loads(paths["maps_json"].read_text())
    assert meta["normal_convention"] == "opengl" and "+Y up" in meta["normal_axes"]
    assert meta["maps"]["normal"]["encoding"] == "(n + 1) / 2"
    assert meta["maps"]["roughness"]["range"] == [0.05, 1.0]
    scale = meta["maps"]["uncertainty"]["scale"]
    assert np.abs(load_png16(paths["uncertainty"]) * scale - u[0, 0].numpy()).max() <= scale / 65535
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths.values())


def test_export_directx_flips_green_and_validates(tmp_path):
    n = _unit_normals()
    r = s = torch.full((1, 1, 8, 9), 0.5)
    gl = export_maps(tmp_path / "gl", n, r, s)
    dx = export_maps(tmp_path / "dx", n, r, s, convention="directx")
    a, b = load_png16(gl["normal"]), load_png16(dx["normal"])
    np.testing.assert_allclose(b[..., 1], 1 - a[..., 1], atol=1.5 / 65535)
    np.testing.assert_array_equal(b[..., [0, 2]], a[..., [0, 2]])
    assert json.loads(dx["maps_json"].read_text())["normal_convention"] == "directx"
    with pytest.raises(ValueError, match="convention"):
        export_maps(tmp_path / "x", n, r, s, convention="vulkan")
    with pytest.raises(ValueError, match="one material at a time"):
        export_maps(tmp_path / "x", n.repeat(2, 1, 1, 1), r, s)


@needs_exr
def test_exr_round_trip_bit_exact(tmp_path):
    rng = np.random.default_rng(3)
    for shape in [(5, 7), (5, 7, 3), (4, 3, 4)]:
        a = (rng.standard_normal(shape) * 1e3).astype(np.float32)
        save_exr(tmp_path / "a.exr", a)
        b = load_exr(tmp_path / "a.exr")
        assert b.dtype == np.float32 and b.shape == a.shape
        np.testing.assert_array_equal(b.view(np.uint32), a.view(np.uint32))


@needs_exr
def test_export_maps_exr_stores_raw_values(tmp_path):
    n = _unit_normals()
    r = s = torch.rand(1, 1, 8, 9)
    paths = export_maps(tmp_path, n, r, s, exr=True)
    np.testing.assert_array_equal(load_exr(paths["normal_exr"]), n[0].permute(1, 2, 0).numpy())
    np.testing.assert_array_equal(load_exr(paths["roughness_exr"]), r[0, 0].numpy())


def test_exr_missing_package_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "OpenEXR", None)                  # import now raises ImportError
    assert not exr_available()
    with pytest.raises(ImportError, match="openexr"):
        save_exr(tmp_path / "a.exr", np.zeros((2, 2), np.float32))
    with pytest.raises(ImportError, match="openexr"):
        export_maps(tmp_path, _unit_normals(), torch.rand(1, 1, 8, 9), torch.rand(1, 1, 8, 9), exr=True)
    assert not list(tmp_path.iterdir())                                 # nothing half-written


@needs_exr
def test_failed_exr_write_leaves_previous_file(tmp_path, monkeypatch):
    import OpenEXR
    good = np.arange(6, dtype=np.float32).reshape(2, 3)
    save_exr(tmp_path / "a.exr", good)

    class Broken:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("disk full")

    monkeypatch.setattr(OpenEXR, "File", Broken)
    with pytest.raises(RuntimeError, match="disk full"):
        save_exr(tmp_path / "a.exr", good + 1)
    monkeypatch.undo()
    np.testing.assert_array_equal(load_exr(tmp_path / "a.exr"), good)
    assert [p.name for p in tmp_path.iterdir()] == ["a.exr"]               # no temporary file left
