"""Renderer: Lambert limit, gradcheck, GGX energy and reciprocity, scanner light, light sampling."""
from __future__ import annotations

import math

import pytest
import torch

from solvers.umat.materials import MaterialMaps, generate_materials
from solvers.umat.render import (
    ScannerLight,
    _directional,
    brdf_cos,
    cavity,
    ggx_distribution,
    heldout_lights,
    random_lights,
    render,
    scanner_image,
)

F64 = torch.float64


def _flat(B=2, H=5, W=6, albedo=None, rough=0.5, spec=0.0, dtype=F64) -> MaterialMaps:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(B, 3, H, W, generator=g, dtype=dtype) if albedo is None else albedo
    n = torch.zeros(B, 3, H, W, dtype=dtype)
    n[:, 2] = 1
    return MaterialMaps(a, n, torch.full((B, 1, H, W), rough, dtype=dtype),
                        torch.full((B, 1, H, W), spec, dtype=dtype))


def _sph(az_deg: float, el_deg: float) -> list[float]:
    a, e = math.radians(az_deg), math.radians(el_deg)
    return [math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)]


@pytest.mark.parametrize("el", [90.0, 60.0, 25.0, 5.0])
def test_flat_lambert_limit(el):
    m = _flat()
    light = torch.tensor([_sph(37.0, el)], dtype=F64)
    expect = m.albedo * math.sin(math.radians(el))
    assert torch.allclose(render(m, light, specular=False), expect, atol=1e-12)
    m0 = _flat(spec=0.0, rough=0.7)
    if el == 90.0:  # F0 = 0 and light along the view: no Fresnel reflection at all
        assert torch.allclose(render(m0, light), expect, atol=1e-12)
    # light below the horizon contributes nothing
    assert torch.equal(render(m, -light), torch.zeros_like(m.albedo))


def test_point_light_inverse_square_and_orientation():
    m = _flat(B=1, H=9, W=11, spec=0.0)
    p = torch.tensor([[0.5, 0.5, 0.8]], dtype=F64)  # upper right quadrant (y up)
    out = render(m, point_lights=p, specular=False)
    x = -1 + (2 * torch.arange(11, dtype=F64) + 1) / 11
    y = 1 - (2 * torch.arange(9, dtype=F64) + 1) / 9
    d2 = (0.5 - x.view(1, 11)) ** 2 + (0.5 - y.view(9, 1)) ** 2 + 0.64
    expect = m.albedo * (0.8 / d2.sqrt()) / d2
    assert torch.allclose(out, expect, atol=1e-12)
    irr = (out / m.albedo)[0, 0]
    r, c = divmod(int(irr.argmax()), 11)
    assert r < 4 and c > 6  # brightest pixel is top right


def test_directional_matches_per_light_reference_and_is_linear():
    m = generate_materials(2, 12, seed=4, dtype=F64)
    L = random_lights(5, generator=torch.Generator().manual_seed(1), dtype=F64)
    cols = torch.rand(2, 5, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    v = torch.tensor([0.0, 0.0, 1.0], dtype=F64).view(1, 3, 1, 1)
    ref = 0
    for i in range(5):
        d, s = brdf_cos(m.normal, L[i].view(1, 3, 1, 1), v, m.albedo, m.roughness, m.specular)
        ref = ref + cols[:, i].view(2, 3, 1, 1) * (d + s)
    out = render(m, L, cols)
    assert torch.allclose(out, ref, atol=1e-12)
    blocked = _directional(m, L.expand(2, 5, 3), cols, v.expand(2, 3, 1, 1), True, block=50)  # 13 pixel blocks
    assert torch.allclose(blocked, out, atol=1e-12)
    assert torch.allclose(render(m, L.expand(2, 5, 3), cols), out, atol=1e-12)  # (B, L, 3) lights
    single = sum(render(m, L[i:i + 1], cols[:, i:i + 1]) for i in range(5))
    assert torch.allclose(single, out, atol=1e-12)
    assert torch.allclose(render(m, L, 2.5 * cols), 2.5 * out, atol=1e-12)
    with pytest.raises(ValueError, match="light_dirs and/or point_lights"):
        render(m)
    with pytest.raises(ValueError, match="light_dirs must have shape"):
        render(m, torch.zeros(3, 5, 3, dtype=F64))


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    B, H, W = 1, 3, 3
    n = torch.randn(B, 3, H, W, generator=g, dtype=F64) * 0.3
    n[:, 2] = 1.0
    n = (n / n.norm(dim=1, keepdim=True)).requires_grad_()
    albedo = torch.rand(B, 3, H, W, generator=g, dtype=F64).requires_grad_()
    rough = (0.3 + 0.5 * torch.rand(B, 1, H, W, generator=g, dtype=F64)).requires_grad_()
    spec = (0.02 + 0.3 * torch.rand(B, 1, H, W, generator=g, dtype=F64)).requires_grad_()
    dirs = torch.tensor([_sph(10, 70), _sph(200, 55)], dtype=F64)  # n.l > 0 everywhere: no kinks
    pts = torch.tensor([[0.3, -0.2, 1.5]], dtype=F64)

    def fn(nn_, a, r, s):
        return render(MaterialMaps(a, nn_, r, s), dirs, point_lights=pts)

    assert torch.autograd.gradcheck(fn, (n, albedo, rough, spec), eps=1e-6, atol=1e-6)
    # the scanner image is differentiable too (w.r.t. normals, roughness, specular)
    h = torch.randn(B, 1, H, W, generator=g, dtype=F64)
    assert torch.autograd.gradcheck(lambda nn_, r, s: scanner_image(MaterialMaps(albedo.detach(), nn_, r, s, h)),
                                    (n, rough, spec), eps=1e-6, atol=1e-6)


def _hemisphere(n_t=1500, n_p=96, power=3):
    """Quadrature over the upper hemisphere: directions (N, 3) and solid-angle weights (N,), dense near the pole."""
    t = (torch.arange(n_t, dtype=F64) + 0.5) / n_t
    theta = 0.5 * math.pi * t ** power
    dtheta = 0.5 * math.pi * power * t ** (power - 1) / n_t
    phi = (torch.arange(n_p, dtype=F64) + 0.5) * 2 * math.pi / n_p
    th, ph = torch.meshgrid(theta, phi, indexing="ij")
    w = (torch.sin(theta) * dtheta).view(-1, 1).expand(n_t, n_p) * (2 * math.pi / n_p)
    dirs = torch.stack([torch.sin(th) * torch.cos(ph), torch.sin(th) * torch.sin(ph), torch.cos(th)], dim=-1)
    return dirs.reshape(-1, 3), w.reshape(-1)


@pytest.mark.parametrize("rough", [0.2, 0.5, 1.0])
def test_ggx_distribution_is_normalised(rough):
    dirs, w = _hemisphere()
    nh = dirs[:, 2]
    integral = (ggx_distribution(nh, torch.tensor(rough, dtype=F64)) * nh * w).sum()
    assert abs(float(integral) - 1.0) < 5e-3


@pytest.mark.parametrize("rough", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("view_deg", [0.0, 45.0, 75.0])
def test_white_furnace_specular_lobe_at_most_one(rough, view_deg):
    """F0 = 1, albedo 0: the reflected fraction of a uniform white sky is <= 1 (and not trivially 0)."""
    dirs, w = _hemisphere(n_t=600, n_p=256, power=2)
    N = dirs.shape[0]
    n = torch.tensor([0.0, 0.0, 1.0], dtype=F64).view(1, 3, 1, 1).expand(N, 3, 1, 1)
    v = torch.tensor(_sph(30.0, 90.0 - view_deg), dtype=F64).view(1, 3, 1, 1).expand(N, 3, 1, 1)
    one = torch.ones(N, 1, 1, 1, dtype=F64)
    diff, spec = brdf_cos(n, dirs.view(N, 3, 1, 1), v, one, rough * one, one)
    assert abs(float((diff.view(-1) * w).sum() / math.pi) - 1.0) < 1e-4  # white Lambert reflects all
    reflected = float((spec.view(-1) * w).sum() / math.pi)  # spec = pi f cos; sky radiance 1
    assert reflected <= 1.0 + 2e-3
    assert reflected > 0.3  # Smith-Schlick single scattering loses energy at high roughness


def test_reciprocity():
    g = torch.Generator().manual_seed(3)
    N = 64
    n = torch.randn(N, 3, 1, 1, generator=g, dtype=F64) * 0.3
    n[:, 2] = 1
    n = n / n.norm(dim=1, keepdim=True)
    a = random_lights(N, generator=g, min_elevation_deg=40, dtype=F64)
    b = random_lights(N, generator=g, min_elevation_deg=40, dtype=F64)
    a, b = a.view(N, 3, 1, 1), b.view(N, 3, 1, 1)
    r = 0.2 + 0.7 * torch.rand(N, 1, 1, 1, generator=g, dtype=F64)
    f0 = 0.3 * torch.rand(N, 1, 1, 1, generator=g, dtype=F64)
    alb = torch.zeros(N, 1, 1, 1, dtype=F64)
    _, s_ab = brdf_cos(n, a, b, alb, r, f0)
    _, s_ba = brdf_cos(n, b, a, alb, r, f0)
    f_ab, f_ba = s_ab / (n * a).sum(1, keepdim=True), s_ba / (n * b).sum(1, keepdim=True)
    assert torch.allclose(f_ab, f_ba, rtol=1e-10)


def test_scanner_flat_white_is_one_and_grooves_are_dark():
    m = _flat(B=1, H=8, W=8, albedo=torch.ones(1, 3, 8, 8, dtype=F64), spec=0.0)
    light = ScannerLight(specular=False)
    assert torch.allclose(scanner_image(m, light), torch.ones_like(m.albedo), atol=1e-12)
    dirs, _ = light.directions(dtype=F64)
    assert dirs.shape == (25, 3) and torch.allclose(dirs.norm(dim=1), torch.ones(25, dtype=F64))
    assert torch.allclose(dirs[-1], torch.tensor([0.0, 0.5, math.sqrt(3) / 2], dtype=F64))  # +Y, 60 deg
    # occlusion: a groove (a pit in the height) darkens, flat parts do not
    h = torch.zeros(1, 1, 8, 8, dtype=F64)
    h[..., 4, 4] = -2.0
    occ = scanner_image(MaterialMaps(m.albedo, m.normal, m.roughness, m.specular, h), light)
    assert occ[..., 4, 4].max() < 0.5 and torch.allclose(occ[..., 0, 0], torch.ones(1, 3, dtype=F64))
    assert torch.equal(cavity(h, 0), torch.zeros_like(h))
    with pytest.raises(ValueError, match="even multiple"):
        ScannerLight(dome_lights=21).directions()


def test_scanner_symmetry_only_horizontal_flip():
    m = generate_materials(3, (20, 27), seed=6, dtype=F64)
    img = scanner_image(m)
    assert torch.allclose(scanner_image(m.flip_u()), img.flip(-1), atol=1e-12)
    sy = torch.tensor([1.0, -1.0, 1.0], dtype=F64).view(1, 3, 1, 1)
    flip_v = MaterialMaps(m.albedo.flip(-2), m.normal.flip(-2) * sy, m.roughness.flip(-2),
                          m.specular.flip(-2), m.height.flip(-2))
    gap = (scanner_image(flip_v) - img.flip(-2)).abs().mean()
    assert gap > 0.01  # the directional component (on +Y) breaks the vertical flip ...
    dome = ScannerLight(directional_weight=0.0)
    # ... the dome does not
    assert torch.allclose(scanner_image(flip_v, dome), scanner_image(m, dome).flip(-2), atol=1e-12)


def test_scanner_directional_cue():
    """Facets tilted towards +Y (up the image, towards the scanner lamp) are brighter than those tilted away."""
    up, down = _flat(B=1, H=2, W=2, spec=0.0), _flat(B=1, H=2, W=2, spec=0.0)
    t = math.radians(20)
    up.normal = torch.tensor([0.0, math.sin(t), math.cos(t)], dtype=F64).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    down.normal = up.normal * torch.tensor([1.0, -1.0, 1.0], dtype=F64).view(1, 3, 1, 1)
    assert (scanner_image(up) / scanner_image(down)).min() > 1.05


def test_random_and_heldout_lights():
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a, b = random_lights(4000, generator=g1, dtype=F64), random_lights(4000, generator=g2, dtype=F64)
    assert torch.equal(a, b) and a.shape == (4000, 3)
    assert torch.allclose(a.norm(dim=1), torch.ones(4000, dtype=F64))
    z0 = math.sin(math.radians(20))
    assert a[:, 2].min() >= z0 - 1e-12
    assert abs(float(a[:, 2].mean()) - (1 + z0) / 2) < 0.02  # uniform in solid angle
    assert abs(float(a[:, 0].mean())) < 0.03 and abs(float(a[:, 1].mean())) < 0.03
    assert random_lights(3).dtype == torch.float32
    with pytest.raises(ValueError, match="min_elevation_deg"):
        random_lights(3, min_elevation_deg=95)
    h = heldout_lights(dtype=F64)
    assert h.shape == (3, 3) and torch.equal(h, heldout_lights(dtype=F64))
    assert torch.allclose(h.norm(dim=1), torch.ones(3, dtype=F64)) and h[:, 2].min() > 0.5
    scanner_dir = ScannerLight().directions(dtype=F64)[0][-1]
    assert (h @ scanner_dir).max() < 0.99  # none coincides with the scanner lamp


def test_generated_scanner_images_carry_the_tilt_cue():
    """Shading (image / albedo) correlates with n_y under the scanner light, not under the dome alone."""
    m = generate_materials(15, 40, seed=9, dtype=F64)

    def corr(a, b):
        a, b = a.flatten(1) - a.flatten(1).mean(1, keepdim=True), b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)

    def shading(light):
        return (scanner_image(m, light) / m.albedo).mean(1, keepdim=True)

    assert corr(shading(ScannerLight()), m.normal[:, 1:2]).mean() > 0.25
    dome_only = shading(ScannerLight(dome_weight=1.0, directional_weight=0.0))
    assert corr(dome_only, m.normal[:, 1:2]).abs().mean() < 0.1
    assert corr(dome_only, m.normal[:, 2:3]).mean() > 0.3  # the dome still shows the tilt magnitude


def test_device_follows_inputs(device):
    m = generate_materials(2, 17, seed=1)
    ref = scanner_image(m), render(m, heldout_lights(), point_lights=[[0.2, 0.1, 1.0]])
    md = generate_materials(2, 17, seed=1, device=device)
    out = scanner_image(md), render(md, heldout_lights(device=device), point_lights=[[0.2, 0.1, 1.0]])
    for a, b in zip(ref, out):
        assert b.device.type == torch.device(device).type
        assert torch.allclose(a, b.cpu(), atol=1e-5)


@pytest.mark.slow
def test_scanner_image_at_full_scanner_resolution_is_fast():
    import time

    m = generate_materials(1, 1024, seed=0)
    start = time.process_time()
    img = scanner_image(m)
    assert time.process_time() - start < 2.0
    assert img.shape == (1, 3, 1024, 1024) and torch.isfinite(img).all()
