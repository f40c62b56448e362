"""Exactly orthogonal layers: singular values, norm preservation, export, transposed and FFT layers."""
import pytest
import torch

from sciml.nn.conv_spectrum import (
    circular_conv,
    conv_singular_values,
)
from sciml.nn.orthogonal import (
    OrthoConv1d,
    OrthoConv2d,
    OrthoConv3d,
    OrthoConvTranspose2d,
    OrthoConvTranspose3d,
)
from sciml.nn.orthogonal_fft import CayleyConv2d
from sciml.nn.orthogonal_kernels import OrthogonalKernel, orthonormal
from solvers.orthoconv.bench import exactness_summary
from solvers.orthoconv.checks import exactness_rows

TOL = {torch.float64: 1e-6, torch.float32: 1e-4}
CONFIGS = [(8, 8, 3, 1), (8, 16, 3, 2), (8, 32, 3, 2), (8, 40, 3, 2), (12, 8, 3, 1), (8, 8, 4, 1), (8, 8, 2, 2),
           (8, 8, 5, 2), (8, 4, 1, 2)]  # (in, out, k, S)


def _sigma_err(weight, n, stride):
    return float((conv_singular_values(weight.detach().double(), n, stride) - 1).abs().max())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("C,M,k,S", CONFIGS)
def test_exact_layer_singular_values(C, M, k, S, dtype, device):
    layer = OrthoConv2d(C, M, k, S, generator=torch.Generator().manual_seed(0), dtype=dtype).to(device)
    for n in (8, 16):
        assert _sigma_err(layer.weight, n, S) < TOL[dtype]
    assert abs(float(layer.regularizer().detach())) < (1e-12 if dtype == torch.float64 else 1e-5)


def test_bench_exactness_small(device):
    rows = exactness_rows(sizes=(8,), device=device)
    summary = exactness_summary(rows)
    assert all(v["pass"] for v in summary.values()), summary
    assert max(v["max_abs_sigma_minus_1"] for k, v in summary.items() if k.endswith("float64")) < 1e-12


@pytest.mark.parametrize("C,M,S", [(8, 8, 1), (4, 16, 2), (4, 24, 2), (2, 32, 2)])
def test_norm_preserving_forward_and_gradient(C, M, S, device):
    """CO/square layers: ||W x|| = ||x||; square: the gradient norm is preserved too."""
    layer = OrthoConv2d(C, M, 3, S, bias=False, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(1)).to(device)
    x = torch.randn(4, C, 16, 16, dtype=torch.float64, device=device, requires_grad=True)
    y = layer(x)
    assert torch.allclose(y.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1), rtol=1e-12)
    if M == C * S * S:
        g = torch.randn_like(y)
        (gx,) = torch.autograd.grad(y, x, g)
        assert torch.allclose(gx.flatten(1).norm(dim=1), g.flatten(1).norm(dim=1), rtol=1e-12)


def test_export_matches_layer(device):
    g = torch.Generator().manual_seed(2)
    for C, M, k, S in CONFIGS:
        for mode in ("circular", "zeros"):
            layer = OrthoConv2d(C, M, k, S, padding_mode=mode, generator=g, dtype=torch.float64).to(device)
            with torch.no_grad():
                layer.bias.normal_()
            x = torch.randn(2, C, 8, 8, dtype=torch.float64, device=device)
            exported = layer.export()
            assert not any(p.requires_grad for p in exported.parameters())
            assert torch.allclose(exported(x), layer(x), atol=1e-12), (C, M, k, S, mode)


def test_zero_padding_is_one_lipschitz_not_orthogonal():
    layer = OrthoConv2d(4, 4, 3, padding_mode="zeros", bias=False, dtype=torch.float64)
    x = torch.randn(64, 4, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        ratio = layer(x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    assert float(ratio.max()) <= 1 + 1e-12
    assert float(ratio.min()) < 1 - 1e-6


@pytest.mark.parametrize("C,M,S", [(8, 16, 2), (8, 32, 2), (8, 8, 1), (4, 40, 2)])
def test_transposed_layer_is_adjoint(C, M, S, device):
    """OrthoConvTranspose2d(M -> C) equals the adjoint of the conv C -> M with the same kernel."""
    layer = OrthoConvTranspose2d(M, C, 3, S, bias=False, dtype=torch.float64,
                                 generator=torch.Generator().manual_seed(3)).to(device)
    w = layer.weight.detach()
    y = torch.randn(2, M, 8 // S, 8 // S, dtype=torch.float64, device=device)
    x = torch.randn(2, C, 8, 8, dtype=torch.float64, device=device)
    out = layer(y)
    assert out.shape == (2, C, 8, 8)
    assert torch.allclose((out * x).sum(), (y * circular_conv(x, w, S)).sum(), atol=1e-10)
    if M <= C * S * S:  # conv is row-orthogonal -> transposed layer is norm preserving
        assert torch.allclose(out.flatten(1).norm(dim=1), y.flatten(1).norm(dim=1), rtol=1e-12)
    assert torch.allclose(layer.export()(y), out, atol=1e-12)


def test_3d_and_1d_layers():
    g = torch.Generator().manual_seed(4)
    for C, M, S in [(2, 2, 1), (2, 16, 2), (2, 8, 2)]:
        layer = OrthoConv3d(C, M, 3, S, generator=g, dtype=torch.float64)
        assert _sigma_err(layer.weight, 4, S) < 1e-12
        x = torch.randn(1, C, 4, 4, 4, dtype=torch.float64)
        assert torch.allclose(layer.export()(x), layer(x), atol=1e-12)
    t = OrthoConvTranspose3d(16, 2, 3, 2, generator=g, dtype=torch.float64, bias=False)
    y = torch.randn(1, 16, 2, 2, 2, dtype=torch.float64)
    assert torch.allclose(t(y).norm(), y.norm(), rtol=1e-12)
    one = OrthoConv1d(4, 8, 3, 2, generator=g, dtype=torch.float64)
    assert _sigma_err(one.weight, 8, 2) < 1e-12


def test_invalid_configurations_raise_with_the_fix():
    with pytest.raises(ValueError, match="stride <= kernel size"):
        OrthoConv2d(4, 64, 1, 2)
    with pytest.raises(ValueError, match="M <= C\\*k\\^d"):
        OrthoConv2d(2, 3, 1, 2)
    with pytest.raises(ValueError, match="one int"):
        OrthoConv2d(4, 4, (3, 5))
    with pytest.raises(ValueError, match="multiple of the stride"):
        OrthoConv2d(4, 8, 3, 2)(torch.randn(1, 4, 7, 7))
    with pytest.raises(ValueError, match="mode must be"):
        OrthoConv2d(4, 4, 3, mode="bjorck")


def test_gradcheck_kernel_parametrisation():
    kern = OrthogonalKernel(2, 2, 3, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    params = [kern.H, kern.Q, kern.R]
    assert torch.autograd.gradcheck(lambda H, Q, R: torch.func.functional_call(
        kern, {"H": H, "Q": Q, "R": R}, ()), tuple(p.detach().clone().requires_grad_() for p in params))
    q = orthonormal(torch.randn(5, 3, dtype=torch.float64))
    assert torch.allclose(q.T @ q, torch.eye(3, dtype=torch.float64), atol=1e-14)


@pytest.mark.parametrize("C,M,k,S", [(8, 8, 3, 1), (8, 32, 3, 2), (12, 8, 3, 1), (8, 4, 1, 2)])
def test_cholesky_orthogonalizer_builds_the_same_kernel(C, M, k, S, device):
    """CholeskyQR2 computes the same positive-diagonal Q factor as Householder QR, gradients included."""
    layers = [OrthoConv2d(C, M, k, S, generator=torch.Generator().manual_seed(3), dtype=torch.float64,
                          orthogonalizer=o).to(device) for o in ("qr", "cholesky")]
    kernels = [layer.weight for layer in layers]
    torch.testing.assert_close(kernels[1], kernels[0], atol=1e-12, rtol=0)
    grads = [torch.autograd.grad((w * torch.linspace(-1, 1, w.numel(), dtype=w.dtype, device=w.device)
                                  .reshape(w.shape)).sum(), layer.kernel.R)[0] for w, layer in zip(kernels, layers)]
    torch.testing.assert_close(grads[1], grads[0], atol=1e-10, rtol=0)
    assert _sigma_err(kernels[1], 8, S) < 1e-12
    with pytest.raises(ValueError, match="orthogonalizer must be"):
        OrthoConv2d(C, M, k, S, orthogonalizer="svd")


def test_lorth_mode_training_reduces_error_within_bound():
    """Minimising Lorth alone (the demo's recipe) drives the layer towards orthogonality, inside the bound."""
    layer = OrthoConv2d(8, 8, 3, mode="lorth", dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    before, lorth_before = _sigma_err(layer.weight, 8, 1), float(layer.regularizer().detach())
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 200)
    for _ in range(200):
        opt.zero_grad()
        layer.regularizer().backward()
        opt.step()
        schedule.step()
    after, lorth_after = _sigma_err(layer.weight, 8, 1), float(layer.regularizer().detach())
    assert lorth_after < 1e-2 * lorth_before
    assert after < 0.1 * before
    sv = conv_singular_values(layer.weight.detach(), 8, 1)
    assert float((sv ** 2 - 1).abs().max()) <= layer.lorth_bound()


@pytest.mark.parametrize("C,M,n,S", [(4, 4, 8, 1), (4, 8, 8, 2), (4, 16, 8, 2), (4, 20, 8, 2), (6, 4, 8, 1)])
def test_cayley_layer_exact_real_and_exported(C, M, n, S, device):
    layer = CayleyConv2d(C, M, n, S, bias=False, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(7)).to(device)
    with torch.no_grad():
        layer.v.mul_(100)  # far from identity
    x = torch.randn(2, C, n, n, dtype=torch.float64, device=device)
    y = layer(x)
    w = layer.weight
    assert not w.is_complex()
    assert torch.allclose(y, circular_conv(x, w, S, padding=(0, 0)), atol=1e-12)  # real operator, Hermitian-consistent
    assert _sigma_err(w, n, S) < 1e-12
    assert torch.allclose(layer.export("fft")(x), y, atol=1e-12)
    assert torch.allclose(layer.export("conv")(x), y, atol=1e-12)
    with pytest.raises(ValueError, match="built for"):
        layer(torch.randn(1, C, 2 * n, 2 * n, dtype=torch.float64, device=device))


def test_cayley_float32_within_tolerance():
    layer = CayleyConv2d(8, 8, 16, 1, dtype=torch.float32, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        layer.v.normal_()
    assert _sigma_err(layer.weight, 16, 1) < 1e-4
    x = torch.randn(3, 8, 16, 16)
    y = layer(x) - layer.bias.reshape(1, -1, 1, 1)
    assert torch.allclose(y.flatten(1).norm(dim=1), x.flatten(1).norm(dim=1), rtol=1e-5)
