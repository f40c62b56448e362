"""Forward operators of sciml.linalg.imaging: adjointness and basic properties."""

import pytest
import torch

from sciml.linalg.imaging import (GaussianBlur, InpaintingMask, compressed_sensing, filtered_back_projection,
                                  radon_matrix, random_mask)


def _operators(device):
    g = torch.Generator().manual_seed(0)
    shape = (12, 17)
    return {
        "blur-zero": GaussianBlur(shape, 1.0, device=device),
        "blur-circular": GaussianBlur(shape, 1.5, boundary="circular", device=device),
        "inpainting": InpaintingMask(random_mask(shape, 0.4, g, device=device)),
        "cs": compressed_sensing(shape, 50, g, device=device),
        "radon": radon_matrix(14, 7, device=device),
    }


@pytest.mark.parametrize("name", ["blur-zero", "blur-circular", "inpainting", "cs", "radon"])
def test_adjointness(name, device):
    A = _operators(device)[name]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(A.shape[1], 3, generator=g, dtype=torch.float64).to(device)
    y = torch.randn(A.shape[0], 3, generator=g, dtype=torch.float64).to(device)
    lhs = (A.matvec(x) * y).sum(0)
    rhs = (x * A.rmatvec(y)).sum(0)
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12 * float(x.norm() * y.norm()))
    # vectors and blocks agree
    torch.testing.assert_close(A.matvec(x[:, 1]), A.matvec(x)[:, 1])


def test_blur_is_a_normalised_gaussian_and_symmetric():
    A = GaussianBlur((9, 9), 1.0, boundary="circular")
    ones = torch.ones(81, dtype=torch.float64)
    torch.testing.assert_close(A.matvec(ones), ones)  # circular blur preserves constants
    dense = A.to_dense()
    torch.testing.assert_close(dense, dense.T)
    assert A.kernel.shape == (5, 5)  # the paper's rule max(5, int(3 sigma)) made odd


def test_inpainting_mask_is_a_selection():
    mask = random_mask((6, 7), 0.5, torch.Generator().manual_seed(2))
    A = InpaintingMask(mask)
    torch.testing.assert_close(A.matvec(A.rmatvec(torch.arange(A.shape[0], dtype=torch.float64))),
                               torch.arange(A.shape[0], dtype=torch.float64))
    with pytest.raises(ValueError, match="bool"):
        InpaintingMask(mask.float())


def test_radon_of_a_constant_disc_and_fbp():
    n = 48
    A = radon_matrix(n, 90)
    c = (n - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64),
                            indexing="ij")
    disc = (((xx - c) ** 2 + (yy - c) ** 2) <= (n / 4) ** 2).double().reshape(-1)
    sino = A.matvec(disc).reshape(90, A.detectors)
    # every projection of a centred disc carries its mass; the central ray its diameter
    torch.testing.assert_close(sino.sum(1), disc.sum().expand(90))
    assert abs(float(sino[:, A.detectors // 2].mean()) - n / 2) < 1.5
    rec = filtered_back_projection(A, A.matvec(disc))
    err = float((rec - disc).pow(2).mean().sqrt())
    assert err < 0.12, err


def test_radon_sparse_on_device(device):
    A = radon_matrix(16, 5, device=device)
    assert A.matvec(torch.ones(256, dtype=torch.float64, device=device)).device.type == torch.device(device).type
