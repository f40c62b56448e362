"""Lanczos, LOBPCG and eigsh against numpy's eigvalsh and closed forms."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sciml.linalg import Dense, Diagonal, Identity, SparseCSR, eigsh, lanczos, lobpcg

from ._problems import (dirichlet_poisson, dirichlet_poisson_eigenvalues, path_laplacian, poisson_problem, randn,
                        ring_laplacian)


def seeded(seed: int = 0, device="cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def random_symmetric(n: int, seed: int) -> torch.Tensor:
    a = randn(n, n, seed=seed)
    return (a + a.T) / 2


def distinct(values: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Sorted values with (numerically) repeated ones dropped."""
    values = np.sort(values)
    return values[np.concatenate([[True], np.diff(values) > tol])]


def assert_eigenpairs(A, values: torch.Tensor, vectors: torch.Tensor, reference: np.ndarray, *,
                      value_tol: float = 1e-9, residual_tol: float = 1e-8) -> None:
    """Values equal the reference, ``||A v - lambda v|| <= residual_tol``, columns orthonormal."""
    k = values.numel()
    assert values.shape == (k,) and vectors.shape == (A.shape[0], k)
    assert bool((values[1:] >= values[:-1]).all()), "ascending"
    np.testing.assert_allclose(values.cpu().numpy(), reference[:k], rtol=0, atol=value_tol)
    residuals = torch.linalg.vector_norm(A.matvec(vectors) - vectors * values, dim=0)
    assert float(residuals.max()) <= residual_tol
    gram = vectors.T @ vectors
    torch.testing.assert_close(gram, torch.eye(k, dtype=gram.dtype, device=gram.device), rtol=0, atol=1e-8)


# ----------------------------------------------------------------------------- Lanczos
def test_full_lanczos_ritz_values_are_the_eigenvalues():
    a = random_symmetric(12, seed=0)
    result = lanczos(Dense(a), 12, generator=seeded(1))
    assert result.steps == 12 and not result.breakdown
    assert result.alpha.shape == (12,) and result.beta.shape == (11,)
    np.testing.assert_allclose(result.ritz_values().numpy(), np.linalg.eigvalsh(a.numpy()), rtol=0, atol=1e-10)
    theta, vectors = result.ritz_pairs()
    torch.testing.assert_close(a @ vectors, vectors * theta, rtol=0, atol=1e-9)


def test_lanczos_basis_is_orthonormal_and_tridiagonalises():
    A = dirichlet_poisson(10)
    result = lanczos(A, 60, generator=seeded(2))
    Q = result.basis
    assert Q.shape == (1000, 60)
    torch.testing.assert_close(Q.T @ Q, torch.eye(60, dtype=torch.float64), rtol=0, atol=1e-10)
    T = torch.diag(result.alpha) + torch.diag(result.beta, 1) + torch.diag(result.beta, -1)
    torch.testing.assert_close(Q.T @ A.matvec(Q), T, rtol=0, atol=1e-10)


@pytest.mark.parametrize("store_basis", [True, False])
def test_partial_lanczos_finds_the_smallest_eigenvalues(store_basis):
    """Ritz values interlace from above and converge to the extreme (distinct) eigenvalues."""
    A = dirichlet_poisson(8)
    exact = dirichlet_poisson_eigenvalues(8)
    result = lanczos(A, 40, generator=seeded(3), store_basis=store_basis, reorthogonalize=store_basis)
    theta = result.ritz_values().numpy()
    assert result.steps == 40 and not result.breakdown
    assert np.all(theta >= exact[:40] - 1e-10)  # Cauchy interlacing
    levels = distinct(exact)  # a single start vector sees each eigenvalue once
    np.testing.assert_allclose(theta[:3], levels[:3], rtol=1e-8)
    assert theta[-1] == pytest.approx(exact[-1], rel=1e-10)
    short = lanczos(A, 20, generator=seeded(3), store_basis=store_basis, reorthogonalize=store_basis)
    assert abs(theta[0] - levels[0]) < abs(short.ritz_values()[0].item() - levels[0])  # more steps, closer


def test_lanczos_without_basis():
    A = dirichlet_poisson(6)
    result = lanczos(A, 30, generator=seeded(4), store_basis=False, reorthogonalize=False)
    assert result.basis is None
    assert result.ritz_values().shape == (30,)
    with pytest.raises(ValueError, match="store_basis=True"):
        result.ritz_pairs()
    with pytest.raises(ValueError, match="needs the stored basis"):
        lanczos(A, 10, store_basis=False)


def test_lanczos_breakdown_on_few_distinct_eigenvalues():
    d = torch.tensor([1.0, 2.0, 5.0] * 10, dtype=torch.float64)
    result = lanczos(Diagonal(d), 10, generator=seeded(5))
    assert result.breakdown and result.steps == 3 and result.basis.shape == (30, 3)
    np.testing.assert_allclose(result.ritz_values().numpy(), [1.0, 2.0, 5.0], atol=1e-10)
    theta, vectors = result.ritz_pairs()
    torch.testing.assert_close(d[:, None] * vectors, vectors * theta, rtol=0, atol=1e-10)
    one = lanczos(Identity(8), 5, generator=seeded(5))
    assert one.breakdown and one.steps == 1 and one.ritz_values().tolist() == pytest.approx([1.0])


def test_lanczos_arguments_start_vector_and_determinism():
    A = dirichlet_poisson(4)
    with pytest.raises(ValueError, match=r"steps must be in \[1, n=64\]"):
        lanczos(A, 65)
    with pytest.raises(ValueError, match="steps must be"):
        lanczos(A, 0)
    first, second = lanczos(A, 10, generator=seeded(7)), lanczos(A, 10, generator=seeded(7))
    assert torch.equal(first.alpha, second.alpha) and torch.equal(first.beta, second.beta)
    v0 = torch.ones(64, dtype=torch.float64)
    started = lanczos(A, 5, v0=3 * v0)
    torch.testing.assert_close(started.basis[:, 0], v0 / 8)  # normalised start vector
    single = lanczos(A, 1, v0=v0)
    assert single.steps == 1 and single.ritz_values().item() == pytest.approx(float(v0 @ A.matvec(v0)) / 64)


def test_lanczos_float32_operator_and_device(device):
    A = dirichlet_poisson(6, device=device)
    reference = lanczos(A, 20, generator=seeded(8)).ritz_values()
    low = lanczos(A.to(dtype=torch.float32), 20, generator=seeded(8))
    assert low.basis.dtype == torch.float64 and low.basis.device.type == device
    np.testing.assert_allclose(low.ritz_values().numpy(), reference.numpy(), atol=1e-5)


# ----------------------------------------------------------------------------- eigsh
METHODS = ["shift-invert", "lobpcg", "dense", "auto"]


@pytest.fixture(scope="module")
def poisson10():
    A = dirichlet_poisson(10)
    reference = np.linalg.eigvalsh(A.to_dense().numpy())
    np.testing.assert_allclose(reference, dirichlet_poisson_eigenvalues(10), atol=1e-12)
    return A, reference


@pytest.mark.parametrize("method", METHODS)
def test_eigsh_poisson(poisson10, method):
    A, reference = poisson10
    values, vectors = eigsh(A, 5, method=method, generator=seeded(0))  # cuts the triple eigenvalue 0.716
    assert values.dtype == torch.float64 and values.device == A.device
    assert_eigenpairs(A, values, vectors, reference)


@pytest.mark.parametrize("graph", ["path", "ring"])
@pytest.mark.parametrize("method", METHODS)
def test_eigsh_graph_laplacian_with_zero_eigenvalue(graph, method):
    L = {"path": path_laplacian, "ring": ring_laplacian}[graph](60)
    A = SparseCSR.from_scipy(L)
    reference = np.linalg.eigvalsh(L.toarray())
    assert abs(reference[0]) < 1e-12
    values, vectors = eigsh(A, 4, method=method, generator=seeded(1))
    assert_eigenpairs(A, values, vectors, reference)
    assert abs(float(values[0])) <= 1e-9
    constant = torch.full((60,), 60 ** -0.5, dtype=torch.float64)
    assert abs(float(vectors[:, 0] @ constant)) == pytest.approx(1.0, abs=1e-8)


def test_eigsh_accepts_tensors_scipy_and_a_shift():
    L = ring_laplacian(30)
    reference = np.linalg.eigvalsh(L.toarray())
    for A in (L, torch.as_tensor(L.toarray())):
        values, _ = eigsh(A, 3)
        np.testing.assert_allclose(values.numpy(), reference[:3], atol=1e-10)
    sigma = 1.75  # nearest: the double eigenvalue 2 - 2 cos(2 pi 7 / 30) = 1.79; then 1.38 and 2.21
    values, _ = eigsh(SparseCSR.from_scipy(L), 2, method="shift-invert", sigma=sigma, generator=seeded(2))
    nearest = reference[np.argsort(np.abs(reference - sigma))[:3]]
    assert nearest[1] - sigma < np.abs(nearest[2] - sigma) - 0.1  # a well-separated answer
    np.testing.assert_allclose(values.numpy(), np.sort(nearest[:2]), atol=1e-10)


def test_eigsh_on_a_stencil_with_obstacle():
    A, _, solid = poisson_problem(8, seed=0, dirichlet=("z+", "z-"))
    fluid = torch.as_tensor(~solid.ravel())
    spectrum = np.linalg.eigvalsh(A.to_dense().numpy())
    fluid_spectrum = np.linalg.eigvalsh(A.to_dense()[fluid][:, fluid].numpy())
    # solid cells are empty rows: one zero eigenvalue each, the rest is the fluid block's spectrum
    assert np.sum(np.abs(spectrum) < 1e-12) == solid.sum()
    np.testing.assert_allclose(spectrum[solid.sum():], fluid_spectrum, atol=1e-10)
    values, vectors = eigsh(A, 3, method="shift-invert", generator=seeded(0))  # the default shift: zeros
    np.testing.assert_allclose(values.numpy(), 0.0, atol=1e-10)
    assert float(vectors[fluid].abs().max()) <= 1e-8
    sigma = fluid_spectrum[1]  # shift-invert returns the k eigenvalues nearest to sigma
    values, vectors = eigsh(A, 3, method="shift-invert", sigma=sigma, generator=seeded(1))
    nearest = np.sort(spectrum[np.argsort(np.abs(spectrum - sigma))[:3]])
    np.testing.assert_allclose(values.numpy(), nearest, atol=1e-10)
    assert float(vectors[~fluid].abs().max()) <= 1e-10


def test_eigsh_lobpcg_is_deterministic_and_takes_a_start_block(poisson10):
    A, reference = poisson10
    first = eigsh(A, 4, method="lobpcg", generator=seeded(3))
    second = eigsh(A, 4, method="lobpcg", generator=seeded(3))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    X0 = torch.cat([first[1], randn(1000, 4, seed=9)], dim=1)
    values, vectors, info = lobpcg(A, 4, X0=X0)
    assert info["converged"] and info["iterations"] <= 30
    assert_eigenpairs(A, values, vectors, reference)


def test_eigsh_invalid_arguments(poisson10):
    A, _ = poisson10
    for k in (0, -1, 1000, 1001):
        with pytest.raises(ValueError, match=r"k must be in \[1, n-1\] = \[1, 999\]"):
            eigsh(A, k)
    with pytest.raises(ValueError, match="unknown method 'arpack'"):
        eigsh(A, 3, method="arpack")
    with pytest.raises(ValueError, match="square"):
        eigsh(Dense(randn(4, 5, seed=0)), 1)
    with pytest.raises(ValueError, match="method='dense'"):
        eigsh(dirichlet_poisson(3), 20, method="lobpcg")
    with pytest.raises(TypeError, match="method='lobpcg'"):
        eigsh(2.0 * A, 3, method="shift-invert")  # matrix-free, nothing to factorise


def test_eigsh_lobpcg_not_converging_raises(poisson10):
    A, _ = poisson10
    with pytest.raises(RuntimeError, match="LOBPCG did not converge in 2 iterations"):
        eigsh(A, 3, method="lobpcg", maxiter=2, generator=seeded(0))


def test_eigsh_on_device(device):
    A = dirichlet_poisson(10, device=device)
    reference = dirichlet_poisson_eigenvalues(10)
    values, vectors = eigsh(A, 4, generator=seeded(0))  # "auto": shift-invert on CPU, LOBPCG on CUDA
    assert values.device.type == device and vectors.device.type == device
    assert_eigenpairs(A, values, vectors, reference)
    values, vectors = eigsh(A, 4, method="lobpcg", generator=seeded(0))
    assert_eigenpairs(A, values, vectors, reference)
