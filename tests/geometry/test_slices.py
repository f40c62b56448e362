"""Cross-section data model: planes, holes, .csl / JSON round trips and validation errors."""
import json

import numpy as np
import pytest

from geometry.slices import (Contour, CrossSection, Plane, SliceError, SliceSet, read_csl, read_json, read_slices,
                             write_csl, write_json, write_slices)


def circle(plane: Plane, r: float, n: int = 24, centre2=(0.0, 0.0), clockwise=False):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    if clockwise:
        t = t[::-1]
    p2 = np.stack([centre2[0] + r * np.cos(t), centre2[1] + r * np.sin(t)], axis=1)
    return plane.to_3d(p2)


def annulus_set():
    tilted = Plane.from_point_normal([0.1, 0.0, 0.2], [1.0, 2.0, 0.5])
    flat = Plane.from_coefficients(0, 0, 2, -1)  # z = 0.5
    return SliceSet([CrossSection(tilted, [Contour(circle(tilted, 1.0)), Contour(circle(tilted, 0.4, clockwise=True),
                                                                                   hole=True)]),
                     CrossSection(flat, [Contour(circle(flat, 0.7))]),
                     CrossSection(Plane.from_coefficients(1, 0, 0, -5), [])])


def test_plane_frame_and_coordinates():
    plane = Plane.from_coefficients(1, 2, 2, 3)
    np.testing.assert_allclose(np.linalg.norm(plane.normal), 1.0)
    assert plane.offset == pytest.approx(1.0)
    u, v = plane.frame
    np.testing.assert_allclose([u @ v, u @ plane.normal, v @ plane.normal], 0, atol=1e-15)
    np.testing.assert_allclose(np.cross(u, v), plane.normal, atol=1e-15)
    p2 = np.random.default_rng(0).normal(size=(10, 2))
    p3 = plane.to_3d(p2)
    np.testing.assert_allclose(plane.signed_distance(p3), 0, atol=1e-14)
    np.testing.assert_allclose(plane.to_2d(p3), p2, atol=1e-14)


def test_inside_with_hole_on_tilted_plane():
    s = annulus_set()
    plane = s[0].plane
    pts = plane.to_3d(np.array([[0.0, 0.0], [0.7, 0.0], [1.2, 0.0]]))
    np.testing.assert_array_equal(s.inside(0, pts), [False, True, False])
    assert not s.inside(2, np.zeros((1, 3)))[0]


@pytest.mark.parametrize("suffix", [".csl", ".json"])
def test_round_trip(tmp_path, suffix):
    s = annulus_set()
    path = write_slices(s, tmp_path / f"s{suffix}")
    back = read_slices(path)
    assert len(back) == 3 and [len(x.contours) for x in back] == [2, 1, 0]
    for a, b in zip(s, back):
        np.testing.assert_allclose(a.plane.coefficients, b.plane.coefficients, atol=1e-8)
        for ca, cb in zip(a.contours, b.contours):
            np.testing.assert_allclose(ca.points, cb.points, atol=1e-8)
            assert ca.hole == cb.hole


def test_csl_without_hole_markers_infers_holes(tmp_path):
    s = annulus_set()
    text = write_csl(s, tmp_path / "a.csl").read_text().replace(" 1 h ", " 1 ")
    (tmp_path / "b.csl").write_text(text)
    back = read_csl(tmp_path / "b.csl")
    assert [c.hole for c in back[0].contours] == [False, True]


def test_csl_layout_matches_orex_files(tmp_path):
    # the header and per-plane line of OReX's Data/*.csl files: "id n_vertices n_contours A B C D"
    text = "CSLC\n1 1\n\n1 3 1 0.0 1.0 0.0 1.5\n\n0 -1.5 0\n1 -1.5 0\n0 -1.5 1\n\n3 1 0 1 2\n"
    (tmp_path / "o.csl").write_text(text)
    s = read_csl(tmp_path / "o.csl")
    np.testing.assert_allclose(s[0].plane.coefficients, [0, 1, 0, 1.5])
    assert len(s[0].contours[0].points) == 3


def test_validation_errors():
    flat = Plane.from_coefficients(0, 0, 1, 0)
    ring = circle(flat, 1.0)
    with pytest.raises(SliceError, match="empty input"):
        SliceSet([])
    with pytest.raises(SliceError, match="empty input"):
        SliceSet([CrossSection(flat, [])])
    with pytest.raises(SliceError, match="open contour"):
        SliceSet([CrossSection(flat, [Contour(ring, closed=False)])])
    with pytest.raises(SliceError, match="off its plane"):
        SliceSet([CrossSection(flat, [Contour(ring + [0, 0, 0.1])])])
    bowtie = flat.to_3d(np.array([[0, 0], [1, 1], [1, 0], [0, 1]], float))
    with pytest.raises(SliceError, match="self-intersecting"):
        SliceSet([CrossSection(flat, [Contour(bowtie)])])
    with pytest.raises(SliceError, match="crossing each other"):
        SliceSet([CrossSection(flat, [Contour(ring), Contour(circle(flat, 1.0, centre2=(0.5, 0)))])])
    with pytest.raises(SliceError, match="hole flag"):
        SliceSet([CrossSection(flat, [Contour(ring), Contour(circle(flat, 0.3), hole=False)])])
    with pytest.raises(SliceError, match="at least 3"):
        SliceSet([CrossSection(flat, [Contour(ring[:2])])])
    with pytest.raises(SliceError, match="non-zero normal"):
        Plane.from_coefficients(0, 0, 0, 1)


def test_bad_files(tmp_path):
    (tmp_path / "x.csl").write_text("HELLO 1 2")
    with pytest.raises(SliceError, match="not a .csl"):
        read_csl(tmp_path / "x.csl")
    (tmp_path / "t.csl").write_text("CSLC\n1 1\n\n1 3 1 0 0 1 0\n\n0 0 0\n1 0 0\n")
    with pytest.raises(SliceError, match="truncated"):
        read_csl(tmp_path / "t.csl")
    (tmp_path / "j.json").write_text(json.dumps({"nope": 1}))
    with pytest.raises(SliceError, match="sections"):
        read_json(tmp_path / "j.json")
    with pytest.raises(SliceError, match="unknown slice file"):
        read_slices(tmp_path / "x.txt")


def test_normalization_puts_contours_in_cube():
    s = annulus_set()
    scale, shift = s.normalization()
    t = s.transformed(scale, shift)
    assert np.abs(t.points()).max() == pytest.approx(1 / 1.1)
    t.validate()


def test_json_written_atomically(tmp_path):
    path = write_json(annulus_set(), tmp_path / "s.json")
    assert json.loads(path.read_text())["format"] == "sciml-slices"
    assert not list(tmp_path.glob("*.tmp*"))
