"""Exact singular values, adjoint, existence theorem and Lorth (sciml.nn.conv_spectrum)."""
import math

import pytest
import torch

from sciml.nn.conv_spectrum import (
    circular_conv,
    circular_conv_transpose,
    conv_operator_matrix,
    conv_singular_values,
    lorth,
    lorth_alpha,
    lorth_bound,
    orthogonal_conv_exists,
    orthogonality_error,
)
from sciml.nn.orthogonal_kernels import OrthogonalKernel, compose_kernels
from solvers.orthoconv.checks import dense_check, existence_check, lorth_check

CASES = [(3, 2, 3, 1, 6), (2, 3, 3, 2, 6), (4, 2, 2, 2, 4), (2, 2, 5, 1, 4), (5, 2, 3, 2, 4), (3, 1, 1, 2, 4),
         (2, 2, 7, 2, 4)]  # (M, C, k, S, n); k > n wraps around


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("M,C,k,S,n", CASES)
def test_fft_singular_values_equal_dense_svd(d, M, C, k, S, n):
    g = torch.Generator().manual_seed(M * 100 + k * 10 + S)
    w = torch.randn(M, C, *([k] * d), generator=g, dtype=torch.float64)
    dense = torch.linalg.svdvals(conv_operator_matrix(w, n, S))
    fft = conv_singular_values(w, n, S)
    assert fft.shape == dense.shape
    assert torch.allclose(fft, dense, atol=1e-8 * max(1.0, float(dense[0])), rtol=0)


def test_dense_check_summary():
    assert dense_check()["max_abs_diff"] < 1e-8


def test_dense_matrix_is_the_operator_with_torch_conv():
    """Cross-check against nn.Conv2d(padding_mode='circular') for an odd kernel, stride 1."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
    x = torch.randn(1, 2, 6, 6, generator=g, dtype=torch.float64)
    conv = torch.nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular", bias=False, dtype=torch.float64)
    conv.weight.data.copy_(w)
    assert torch.allclose(conv(x), circular_conv(x, w), atol=1e-12)
    A = conv_operator_matrix(w, 6)
    assert torch.allclose(A @ x.reshape(-1), conv(x).reshape(-1), atol=1e-12)


@pytest.mark.parametrize("M,C,k,S,n", CASES)
def test_transpose_is_adjoint(M, C, k, S, n):
    g = torch.Generator().manual_seed(7)
    w = torch.randn(M, C, k, k, generator=g, dtype=torch.float64)
    x = torch.randn(2, C, n, n, generator=g, dtype=torch.float64)
    y = torch.randn(2, M, n // S, n // S, generator=g, dtype=torch.float64)
    lhs = (circular_conv(x, w, S) * y).sum()
    rhs = (x * circular_conv_transpose(y, w, S)).sum()
    assert abs(float(lhs - rhs)) < 1e-10 * (1 + abs(float(lhs)))


def test_size_not_multiple_of_stride_is_refused():
    w = torch.randn(2, 2, 3, 3)
    with pytest.raises(ValueError, match="multiple of the stride"):
        conv_singular_values(w, 7, 2)
    with pytest.raises(ValueError, match="multiple of the stride"):
        circular_conv(torch.randn(1, 2, 7, 7), w, 2)


def test_existence_theorem_cases_and_messages():
    assert orthogonal_conv_exists(64, 64, 3, 1).case == "square"
    assert orthogonal_conv_exists(32, 16, 3, 2).case == "RO"
    assert orthogonal_conv_exists(80, 16, 3, 2).case == "CO"
    co = orthogonal_conv_exists(80, 16, 1, 2)  # CO needs S <= k
    assert not co and "stride <= kernel size" in co.message
    ro = orthogonal_conv_exists(3, 2, 1, 2)  # RO needs M <= C k^d = 2
    assert not ro and "M <= C*k^d=2" in ro.message
    assert orthogonal_conv_exists(2, 2, 1, 2)  # RO, k < S, M <= C k^d: exists (subsampling)
    assert orthogonal_conv_exists(4, 1, 2, 2, dims=2).case == "square"
    with pytest.raises(ValueError, match="positive"):
        orthogonal_conv_exists(0, 1, 3, 1)


def test_existence_grid_agrees_with_construction_and_rank_obstruction():
    result = existence_check()
    assert result["agree"] == result["total"] == 135, result["disagreements"]


def test_lorth_zero_for_orthogonal_and_bound_holds():
    result = lorth_check(random_kernels=24)
    assert result["max_abs_lorth_exact"] < 1e-12
    assert result["bound_holds"] == result["random_kernels"]
    assert 0 < result["max_err_over_bound"] <= 1


@pytest.mark.parametrize("M,C,k,S", [(4, 4, 3, 1), (4, 8, 3, 2), (16, 2, 3, 2), (4, 4, 3, 2)])
def test_lorth_detects_non_orthogonality(M, C, k, S):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        w = OrthogonalKernel(M, C, k, S, generator=g, dtype=torch.float64)()
    assert abs(float(lorth(w, S))) < 1e-12
    w2 = w + 1e-2 * torch.randn(w.shape, generator=g, dtype=torch.float64)
    value = float(lorth(w2, S))
    assert value > 1e-6
    err = orthogonality_error(w2, 4 * k, S)
    assert err <= lorth_bound(w2, S) == pytest.approx(math.sqrt(lorth_alpha(M, C, k, S) * value))


def test_lorth_gradcheck():
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: lorth(t, 2), (w,))


def test_compose_kernels_is_operator_composition():
    g = torch.Generator().manual_seed(5)
    inner = torch.randn(3, 2, 2, 2, generator=g, dtype=torch.float64)
    outer = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
    x = torch.randn(1, 2, 8, 8, generator=g, dtype=torch.float64)
    k = compose_kernels(outer, inner)
    two_step = circular_conv(circular_conv(x, inner, 1, (0, 0)), outer, 2, (0, 0))
    assert torch.allclose(circular_conv(x, k, 2, (0, 0)), two_step, atol=1e-12)
