"""Exactness of the LPN: an exact gradient of a convex potential on whole images of any size."""
import pytest
import torch

from torch.autograd.functional import jvp

from sciml.nn.icnn import LPN, ConvICNN

from ._nets import random_lpn


def _net(seed=0, **kw):
    return random_lpn(seed, hidden=6, layers=3, **kw)


@pytest.mark.parametrize("shape", [(9, 9), (16, 23), (31, 12)])
@pytest.mark.parametrize("padding_mode, dihedral", [("zeros", False), ("reflect", False), ("zeros", True)])
def test_jacobian_symmetric_psd_full_image(shape, padding_mode, dihedral):
    net = _net(padding_mode=padding_mode, dihedral=dihedral)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, *shape, generator=g, dtype=torch.float64)
    v, w = (torch.randn(1, 1, *shape, generator=g, dtype=torch.float64) for _ in range(2))
    _, jv = jvp(net, x, v)
    _, jw = jvp(net, x, w)
    asym = abs(float((w * jv).sum() - (v * jw).sum()))
    assert asym <= 1e-8 * float(v.norm() * w.norm())
    # PSD with the strong-convexity floor 2 alpha
    alpha = net.config["alpha"]
    for d in (v, w):
        _, jd = jvp(net, x, d)
        assert float((d * jd).sum()) >= 2 * alpha * float(d.norm() ** 2) - 1e-10


def test_prox_is_gradient_of_potential_by_finite_differences():
    net = _net()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 1, 11, 13, generator=g, dtype=torch.float64)
    d = torch.randn(x.shape, generator=g, dtype=torch.float64)
    eps = 1e-6
    fd = (net.psi(x + eps * d) - net.psi(x - eps * d)) / (2 * eps)
    exact = (net(x) * d).flatten(1).sum(1)
    torch.testing.assert_close(fd, exact, rtol=1e-6, atol=1e-8)


def test_dihedral_average_is_an_equivariant_prox_of_the_averaged_potential():
    net = _net()
    x = torch.rand(1, 1, 9, 14, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    flips = [lambda z: z.flip(-1), lambda z: z.flip(-2), lambda z: z.transpose(-1, -2),
             lambda z: torch.rot90(z, 1, (-2, -1))]
    plain = [net(g(x)) - g(net(x)) for g in flips]
    assert max(float(d.detach().abs().max()) for d in plain) > 1e-6  # the network alone is not equivariant
    net.dihedral = True
    for g in flips:
        torch.testing.assert_close(net(g(x)), g(net(x)), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(net.psi(g(x)), net.psi(x), rtol=1e-12, atol=1e-12)
    eps, d = 1e-6, torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    fd = (net.psi(x + eps * d) - net.psi(x - eps * d)) / (2 * eps)
    torch.testing.assert_close(fd, (net(x) * d).flatten(1).sum(1), rtol=1e-6, atol=1e-8)


def test_potential_convex_along_random_segments():
    net = _net()
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        a, b = (torch.randn(3, 1, 14, 10, generator=g, dtype=torch.float64) for _ in range(2))
        fa, fb = net.psi(a), net.psi(b)
        for t in torch.linspace(0.05, 0.95, 10, dtype=torch.float64):
            ft = net.psi(t * a + (1 - t) * b)
            assert bool((ft <= t * fa + (1 - t) * fb + 1e-10).all())


def test_fully_convolutional_no_patch_averaging():
    """The prox of a big image equals the prox of its interior patch away from the border."""
    net = _net()
    x = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    full = net(x)
    r = net.receptive_field // 2
    crop = net(x[:, :, 5:35, 5:35])
    torch.testing.assert_close(full[:, :, 5 + r:35 - r, 5 + r:35 - r], crop[:, :, r:-r, r:-r])


def test_weights_nonnegative_after_projected_steps():
    from solvers.lpn.training import ProjectedAdam
    net = LPN(hidden=4, layers=3)
    opt = ProjectedAdam(net.parameters(), net.clamp_weights, lr=0.5)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    for _ in range(5):
        opt.zero_grad()
        (net(x + 0.1) - x).pow(2).sum().mul(-1).backward()  # pushes weights to go negative
        opt.step()
        assert net.potential.min_constrained_weight() >= 0.0


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="odd"):
        ConvICNN(kernel_size=4)
    with pytest.raises(ValueError, match="B, C, H, W"):
        LPN(hidden=2, layers=1)(torch.zeros(5, 5))


def test_shipped_gray_model_exact_and_nonnegative():
    from solvers.lpn.model import load_lpn
    net = load_lpn("lpn-gray", dtype=torch.float64)
    assert net.potential.min_constrained_weight() >= 0.0
    x = torch.rand(1, 1, 24, 19, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    v, w = torch.randn(2, 1, 1, 24, 19, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    _, jv = jvp(net, x, v)
    _, jw = jvp(net, x, w)
    assert abs(float((w * jv).sum() - (v * jw).sum())) <= 1e-8 * float(v.norm() * w.norm())
    assert float((v * jv).sum()) >= 0 and float((w * jw).sum()) >= 0


def _global_net(seed=0, size=12):
    return random_lpn(seed, architecture="global", size=size, hidden=4, head=6)


def test_global_network_is_an_exact_prox_of_a_convex_potential():
    from solvers.lpn.experiments import exactness
    net = _global_net()
    e = exactness(net, shapes=((12, 12),), probes=4)
    assert e["symmetric_to_1e-8"] and e["psd"] and e["convex"] and e["min_constrained_weight"] >= 0
    assert e["min_rayleigh_quotient"] >= 2 * net.config["alpha"] - 1e-10
    assert net.receptive_field == 12 and "architecture=global" in repr(net)


def test_global_network_errors_and_round_trip(tmp_path):
    from solvers.lpn.model import load_lpn, save_lpn
    with pytest.raises(ValueError, match="multiple of 4"):
        LPN(architecture="global", size=10)
    with pytest.raises(ValueError, match="'conv'"):
        LPN(architecture="dense")
    net = _global_net()
    with pytest.raises(ValueError, match="12 x 12"):
        net(torch.zeros(1, 1, 16, 16, dtype=torch.float64))
    path = save_lpn(net.float(), tmp_path / "g.safetensors", note="test")
    loaded = load_lpn(path, dtype=torch.float64)
    x = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    assert loaded.architecture == "global" and loaded.recipe["note"] == "test"
    torch.testing.assert_close(loaded(x), net.double()(x))
