"""Procedural materials: ranges, determinism, tiling, normal-map convention, equivariance."""
from __future__ import annotations

import math

import pytest
import torch

from solvers.umat.materials import (
    KINDS,
    MaterialMaps,
    flip_normal_convention,
    generate_materials,
    normals_from_height,
)
from solvers.umat.weaves import (
    WEAVE_REPEATS,
    cell_grid,
    fbm_noise,
    knit_height,
    periodic_blur,
    weave_height,
)

FIELDS = ("albedo", "normal", "roughness", "specular", "height")


@pytest.fixture(scope="module")
def batch() -> MaterialMaps:
    return generate_materials(20, (37, 45), seed=3, dtype=torch.float64)


def _corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def test_shapes_dtypes_and_ranges(batch):
    B, H, W = 20, 37, 45
    chans = {"albedo": 3, "normal": 3, "roughness": 1, "specular": 1, "height": 1}
    for name in FIELDS:
        t = getattr(batch, name)
        assert t.shape == (B, chans[name], H, W) and t.dtype == torch.float64, name
        assert torch.isfinite(t).all(), name
    assert batch.albedo.min() >= 0 and batch.albedo.max() <= 1
    assert batch.roughness.min() >= 0.05 and batch.roughness.max() <= 1
    assert batch.specular.min() >= 0 and batch.specular.max() <= 1
    assert torch.allclose(batch.normal.norm(dim=1), torch.ones(B, H, W, dtype=torch.float64), atol=1e-12)
    assert batch.normal[:, 2].min() > 0
    assert batch.height.mean(dim=(1, 2, 3)).abs().max() < 1e-9  # zero mean
    # normals are the geometric normals of the stored height (pixel units)
    assert torch.allclose(normals_from_height(batch.height), batch.normal, atol=1e-12)


def test_float32_and_all_kinds_listed():
    m = generate_materials(5, 16)
    assert m.albedo.dtype == torch.float32 and len(m) == 5
    assert set(KINDS) == {"plain", "twill", "satin", "knit", "noise"}


def test_variety_spans_the_training_ranges():
    m = generate_materials(60, 48, seed=0, dtype=torch.float64)
    rough, spec = m.roughness.mean(dim=(1, 2, 3)), m.specular.mean(dim=(1, 2, 3))
    assert rough.min() < 0.3 and rough.max() > 0.8
    assert spec.min() < 0.04 and spec.max() > 0.2
    tilt = torch.rad2deg(torch.acos(m.normal[:, 2])).mean(dim=(1, 2))
    assert tilt.min() < 12 and tilt.max() > 30  # weak and strong normals
    assert m.albedo.mean(dim=(2, 3)).std(dim=0).min() > 0.1  # colours vary


def test_determinism_per_seed_and_index():
    a = generate_materials(4, 24, seed=11)
    b = generate_materials(4, 24, seed=11)
    longer = generate_materials(7, 24, seed=11)
    other = generate_materials(4, 24, seed=12)
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name))
        assert torch.equal(getattr(a, name), getattr(longer[:4], name))
    assert not torch.allclose(a.albedo, other.albedo)


def test_kinds_are_cycled_and_validated():
    m = generate_materials(4, 32, kinds=["satin"], seed=5)
    assert len(m) == 4
    with pytest.raises(ValueError, match="unknown material kinds"):
        generate_materials(2, 32, kinds=["velvet"])
    with pytest.raises(ValueError, match="at least 4x4"):
        generate_materials(2, 2)


def _seam_ratio(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean jump across the wrap-around seam / the largest mean jump between interior neighbour lines.

    A tileable map has a seam like any interior line (the seam falls on a thread boundary, so
    it is compared with the worst interior line, i.e. the other thread boundaries).
    """
    seam = (x.select(dim, 0) - x.select(dim, -1)).abs().flatten(1).mean(1)
    other = 3 if dim == 2 else 2
    inner = x.diff(dim=dim).abs().mean(dim=(1, other)).amax(dim=1)
    return seam / inner.clamp_min(1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_maps_tile(kind):
    m = generate_materials(4, (40, 52), kinds=[kind], seed=1, dtype=torch.float64)
    for name in FIELDS:
        x = getattr(m, name)
        for dim in (2, 3):
            assert _seam_ratio(x, dim).max() < 1.5, (kind, name, dim)
    # the check can fail: the same heights plus a ramp do not tile
    ramp = 0.2 * torch.arange(52, dtype=torch.float64)
    assert _seam_ratio(m.height + ramp, 3).min() > 3.0


@pytest.mark.parametrize("repeat", [r for rs in WEAVE_REPEATS.values() for r in rs])
def test_weave_structure_is_exactly_periodic(repeat):
    """The height is a function on the torus: shifting u (or v) by the thread count changes nothing."""
    R, step, k = repeat
    nu, nv = torch.tensor([2.0 * R], dtype=torch.float64), torch.tensor([float(R)], dtype=torch.float64)
    u, v = cell_grid(nu, nv, (23, 31))
    args = (torch.tensor([R]), torch.tensor([step]), torch.tensor([k]),
            torch.tensor([0.8], dtype=torch.float64), torch.tensor([0.3], dtype=torch.float64))
    h, m, _, _ = weave_height(u, v, *args)
    for du, dv in ((nu, 0.0), (0.0, nv), (-nu, 3 * nv)):
        h2, m2, _, _ = weave_height(u + du, v + dv, *args)
        assert torch.allclose(h, h2, atol=1e-9) and torch.equal(m, m2)
    # ... but not by a part of the repeat (unless the pattern has that symmetry)
    h3, _, _, _ = weave_height(u + 1.0, v, *args)
    assert not torch.allclose(h, h3, atol=1e-6)


def test_knit_and_noise_are_exactly_periodic_and_shift_equivariant():
    n = torch.tensor([3.0], dtype=torch.float64)
    u, v = cell_grid(n, n, (20, 20))
    h, m, _, _ = knit_height(u, v, torch.tensor([0.7], dtype=torch.float64))
    h2, m2, _, _ = knit_height(u + n, v - 2 * n, torch.tensor([0.7], dtype=torch.float64))
    assert torch.allclose(h, h2, atol=1e-9) and torch.allclose(m, m2, atol=1e-9)
    # FFT noise and blur are circular: shifting the white noise shifts the field
    white = torch.randn(2, 18, 25, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    beta = torch.tensor([2.0, 3.0], dtype=torch.float64)
    f = fbm_noise(white, beta)
    shifted = fbm_noise(torch.roll(white, (4, -7), (1, 2)), beta)
    assert torch.allclose(shifted, torch.roll(f, (4, -7), (1, 2)), atol=1e-10)
    sig = torch.tensor([0.7, 1.5], dtype=torch.float64)
    g = periodic_blur(f.unsqueeze(1), sig)
    assert torch.allclose(periodic_blur(torch.roll(f, 5, 2).unsqueeze(1), sig), torch.roll(g, 5, 3), atol=1e-10)
    assert torch.allclose(g.mean(dim=(2, 3)), f.unsqueeze(1).mean(dim=(2, 3)), atol=1e-12)  # blur keeps the mean


def test_weave_repeats_follow_the_pattern():
    """Plain weave alternates over/under at every crossing; a 2/2 twill shifts by one thread per row."""
    n = torch.tensor([8.0], dtype=torch.float64)
    u, v = cell_grid(n, n, (64, 64))
    centres = (slice(None), slice(4, None, 8), slice(4, None, 8))  # cell centres
    for (R, step, k) in [WEAVE_REPEATS["plain"][0], (4, 1, 2)]:
        _, warp, a, b = weave_height(u, v, torch.tensor([R]), torch.tensor([step]), torch.tensor([k]),
                                     torch.tensor([0.9], dtype=torch.float64), torch.tensor([0.3], dtype=torch.float64))
        over = warp[centres][0]
        expect = ((a[centres][0] * step - b[centres][0]) % R < k).to(over.dtype)
        assert torch.equal(over, expect)
    assert over.mean() == 0.5


def test_normals_from_height_convention():
    """+X to the right, +Y up the image (towards row 0): a bump's normals point away from its top."""
    H = W = 33
    i, j = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    bump = 4.0 * torch.exp(-((i - 16) ** 2 + (j - 16) ** 2) / 30.0)
    n = normals_from_height(bump.view(1, 1, H, W))[0]
    assert n[0, 16, 22] > 0.1 and n[0, 16, 10] < -0.1       # right of the top faces +X
    assert n[1, 10, 16] > 0.1 and n[1, 22, 16] < -0.1       # above the top (smaller row) faces +Y
    assert abs(n[0, 16, 16]) < 1e-12 and abs(n[1, 16, 16]) < 1e-12
    # a ramp rising to the right with slope s: n = (-s, 0, 1) / sqrt(1 + s^2) away from the wrap seam
    ramp = 0.5 * j.view(1, 1, H, W)
    nr = normals_from_height(ramp)[0, :, :, 1:-1]
    assert torch.allclose(nr[0], torch.full_like(nr[0], -0.5 / math.sqrt(1.25)))
    assert torch.allclose(nr[1], torch.zeros_like(nr[1]))
    flat = normals_from_height(torch.zeros(2, 1, 5, 7))
    assert torch.equal(flat, torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(2, 3, 5, 7))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        normals_from_height(torch.zeros(5, 7))


def test_opengl_directx_round_trip(batch):
    dx = flip_normal_convention(batch.normal)
    assert torch.equal(flip_normal_convention(dx), batch.normal)
    assert torch.equal(dx[:, 1], -batch.normal[:, 1]) and torch.equal(dx[:, ::2], batch.normal[:, ::2])
    # DirectX's +Y points down the image: it equals OpenGL normals of the vertically mirrored height
    mirrored = normals_from_height(batch.height.flip(-2)).flip(-2)
    assert torch.allclose(dx, mirrored, atol=1e-12)


def test_equivariance_under_flips_and_shifts(batch):
    h = batch.height
    sx = torch.tensor([-1.0, 1.0, 1.0], dtype=h.dtype).view(1, 3, 1, 1)
    sy = torch.tensor([1.0, -1.0, 1.0], dtype=h.dtype).view(1, 3, 1, 1)
    n = normals_from_height(h)
    assert torch.allclose(normals_from_height(h.flip(-1)), n.flip(-1) * sx, atol=1e-12)
    assert torch.allclose(normals_from_height(h.flip(-2)), n.flip(-2) * sy, atol=1e-12)
    shifted = normals_from_height(torch.roll(h, (5, -3), (2, 3)))
    assert torch.allclose(shifted, torch.roll(n, (5, -3), (2, 3)), atol=1e-12)
    # the check can fail: flipping without negating x is wrong
    assert not torch.allclose(normals_from_height(h.flip(-1)), n.flip(-1), atol=1e-3)
    flipped = batch.flip_u()
    assert torch.allclose(flipped.normal, normals_from_height(flipped.height), atol=1e-12)


def test_roughness_and_specular_follow_the_structure():
    m = generate_materials(30, 48, seed=2, dtype=torch.float64)
    lum = m.albedo.mean(1, keepdim=True)
    for x in (m.roughness, m.specular):
        r = torch.maximum(_corr(x, m.height).abs(), _corr(x, lum).abs())
        assert (r > 0.2).float().mean() >= 0.9


def test_material_maps_methods(batch):
    m = batch[:3]
    assert len(m) == 3 and m.shape == (3, 37, 45)
    assert batch[2].albedo.shape[0] == 1 and torch.equal(batch[-1].albedo, batch.albedo[-1:])
    c = m.crop(5, 7, 10, 12)
    assert torch.equal(c.normal, m.normal[:, :, 5:15, 7:19])
    wrapped = m.crop(30, 40, 10, 12)  # runs past the bottom-right corner: indices wrap
    rolled = torch.roll(m.albedo, (-30, -40), (2, 3))[:, :, :10, :12]
    assert torch.equal(wrapped.albedo, rolled)
    with pytest.raises(ValueError, match="crop size"):
        m.crop(0, 0, 50, 10)
    t = m.targets()
    assert t.shape == (3, 5, 37, 45)
    back = MaterialMaps.from_targets(t, m.albedo)
    assert torch.equal(back.roughness, m.roughness) and back.height is None
    f = m.to(dtype=torch.float32)
    assert f.normal.dtype == torch.float32 and f.height.dtype == torch.float32
    both = MaterialMaps.cat([m, batch[3:5]])
    assert len(both) == 5 and torch.equal(both.specular, batch.specular[:5])
    assert MaterialMaps.cat([m, back]).height is None


def test_float32_matches_float64():
    a = generate_materials(6, (30, 26), seed=4)
    b = generate_materials(6, (30, 26), seed=4, dtype=torch.float64)
    for name in FIELDS:
        assert torch.allclose(getattr(a, name).double(), getattr(b, name), atol=1e-4), name
