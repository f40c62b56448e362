"""CG and PCG: agreement with scipy, true residuals, statuses, preconditioners, dtypes, errors."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from sciml.linalg import (Dense, Diagonal, Identity, LinearOperator, NonFiniteError, NotSPDError, PoissonStencil,
                          SolveResult, cg, jacobi, pcg)

from ._problems import dirichlet_poisson, poisson_problem, randn, true_relative_residual


def scipy_cg_iterations(A: PoissonStencil, b: torch.Tensor, rtol: float) -> int:
    count = [0]

    def callback(xk):
        count[0] += 1

    _, info = spla.cg(A.to_csr().to_scipy(), b.cpu().numpy(), rtol=rtol, atol=0.0, callback=callback)
    assert info == 0
    return count[0]


@pytest.fixture(scope="module")
def problem16():
    return poisson_problem(16, seed=0)


# ----------------------------------------------------------------------------- agreement with scipy
@pytest.mark.parametrize("n", [16, 24])
def test_iteration_count_and_solution_match_scipy(n):
    A, b, solid = poisson_problem(n, seed=n)
    result = cg(A, b, rtol=1e-6)
    assert isinstance(result, SolveResult)
    assert result.converged and result.status == f"converged in {result.iterations} iterations"
    assert abs(result.iterations - scipy_cg_iterations(A, b, 1e-6)) <= 2
    assert result.residual <= 1e-6
    assert result.residual == pytest.approx(true_relative_residual(A, result.x, b), rel=1e-10)

    # ||x - x*|| <= ||b - A x|| / lambda_min on the fluid block, which spsolve solves directly
    fluid = ~solid.ravel()
    block = A.to_csr().to_scipy()[fluid][:, fluid].tocsc()
    lu = spla.splu(block)
    x_star = lu.solve(b.numpy()[fluid])
    inverse = spla.LinearOperator(block.shape, matvec=lu.solve, dtype=np.float64)
    lambda_min = 1.0 / spla.eigsh(inverse, k=1, which="LA", tol=1e-8, v0=np.ones(block.shape[0]),
                                  return_eigenvectors=False)[0]
    error = np.linalg.norm(result.x.numpy()[fluid] - x_star)
    assert error <= 1.01 * result.residual * np.linalg.norm(b.numpy()) / lambda_min
    assert error <= 1e-4 * np.linalg.norm(x_star)
    assert not result.x.numpy()[~fluid].any()  # solid cells stay exactly zero


def test_residual_history(problem16):
    A, b, _ = problem16
    iterates = []
    result = cg(A, b, rtol=1e-8, callback=lambda k, x, rel: iterates.append((k, x.clone(), rel)))
    assert result.residuals.dtype == torch.float64 and result.residuals.device.type == "cpu"
    assert result.residuals.shape == (result.iterations + 1,)
    assert result.residuals[0] == 1.0
    assert result.residual == float(result.residuals[-1])
    assert result.residual == pytest.approx(true_relative_residual(A, result.x, b), rel=1e-10)
    # the callback sees every iteration on the CPU; the recurrence tracks the true residual
    assert [k for k, _, _ in iterates] == list(range(1, result.iterations + 1))
    for k, x, rel in iterates[:-1]:
        assert rel == float(result.residuals[k])
        assert rel == pytest.approx(true_relative_residual(A, x, b), rel=1e-6, abs=1e-13)
    assert result.info["matvecs"] >= result.iterations + 1
    assert result.wall_time > 0
    assert "converged=True" in repr(result)


def test_maxiter_exhaustion(problem16):
    A, b, _ = problem16
    result = cg(A, b, rtol=1e-10, maxiter=7)
    assert not result.converged and result.iterations == 7
    assert "maxiter=7" in result.status and "not converged" in result.status
    assert result.residual == pytest.approx(true_relative_residual(A, result.x, b), rel=1e-10)
    assert f"{result.residual:.2e}" in result.status


# ----------------------------------------------------------------------------- preconditioners
def test_pcg_jacobi_converges(problem16):
    A, b, _ = problem16
    result = pcg(A, b, rtol=1e-8)
    assert result.converged and result.residual <= 1e-8
    assert result.residual == pytest.approx(true_relative_residual(A, result.x, b), rel=1e-10)
    plain = cg(A, b, rtol=1e-8)
    assert result.iterations <= plain.iterations
    assert torch.allclose(result.x, plain.x, rtol=0, atol=1e-5 * float(plain.x.abs().max()))
    same = cg(A, b, rtol=1e-8, M="Jacobi")
    assert same.iterations == result.iterations


def test_callable_and_operator_preconditioners(problem16):
    A, b, _ = problem16
    reference = pcg(A, b, rtol=1e-8)
    D = jacobi(A)
    calls = []

    def precondition(r):
        calls.append(r.shape)
        return D.matvec(r)

    by_callable = pcg(A, b, rtol=1e-8, M=precondition)
    by_operator = cg(A, b, rtol=1e-8, M=D)
    assert calls and by_callable.converged and by_operator.converged
    assert abs(by_callable.iterations - reference.iterations) <= 1
    assert abs(by_operator.iterations - reference.iterations) <= 1
    # a constant multiple of the identity changes nothing but the scale: CG's iterates
    scaled = pcg(A, b, rtol=1e-8, M=lambda r: r / 6.0)
    assert abs(scaled.iterations - cg(A, b, rtol=1e-8).iterations) <= 1


def test_jacobi_zero_diagonal_and_negative_diagonal():
    D = jacobi(Diagonal(torch.tensor([2.0, 0.0, 4.0], dtype=torch.float64)))
    assert torch.equal(D.diag, torch.tensor([0.5, 0.0, 0.25], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"A\[1,1\] = -1.*not SPD"):
        jacobi(Diagonal(torch.tensor([1.0, -1.0], dtype=torch.float64)))


def test_bad_preconditioners_raise(problem16):
    A, b, _ = problem16
    with pytest.raises(ValueError, match="unknown preconditioner 'ilu'"):
        cg(A, b, M="ilu")
    with pytest.raises(TypeError, match="preconditioner must be"):
        cg(A, b, M=3.0)
    with pytest.raises(NotSPDError, match="preconditioner M is not symmetric positive definite"):
        cg(A, b, M=lambda r: -r)


# ----------------------------------------------------------------------------- dtypes and starts
def test_float32_operator_with_float64_working_dtype(problem16):
    A, b, _ = problem16
    A32 = A.to(dtype=torch.float32)
    for rhs in (b, b.float()):
        result = cg(A32, rhs, rtol=1e-5)
        assert result.x.dtype == torch.float64
        assert result.converged and result.residual <= 1e-5
        assert true_relative_residual(A, result.x, b) <= 2e-5


def test_dtype_none_keeps_float32(problem16):
    A, b, _ = problem16
    result = cg(A.to(dtype=torch.float32), b.float(), rtol=1e-4, dtype=None)
    assert result.x.dtype == torch.float32
    assert result.converged and result.residual <= 1e-4
    assert true_relative_residual(A, result.x, b) <= 2e-4
    assert result.residuals.dtype == torch.float64


def test_zero_rhs_gives_zero_solution(problem16):
    A, b, _ = problem16
    zero = torch.zeros_like(b)
    result = cg(A, zero)
    assert result.converged and result.iterations == 0
    assert not result.x.any() and result.residual == 0.0
    assert "b is zero" in result.status
    # also from a non-zero initial guess: the solution of A x = 0 is x = 0
    result = cg(A, zero, x0=b.clone())
    assert result.converged and not result.x.any() and result.residual == 0.0


def test_initial_guess(problem16):
    A, b, _ = problem16
    exact = cg(A, b, rtol=1e-12).x
    from_zero = cg(A, b, rtol=1e-6)
    x0 = exact + 1e-3 * randn(b.numel(), seed=1) * (b != 0)
    warm = cg(A, b, x0=x0, rtol=1e-6)
    assert warm.converged and warm.residual <= 1e-6
    assert float(warm.residuals[0]) == pytest.approx(true_relative_residual(A, x0, b), rel=1e-12)
    assert warm.iterations < from_zero.iterations
    assert torch.equal(x0, exact + 1e-3 * randn(b.numel(), seed=1) * (b != 0))  # x0 is not modified
    done = cg(A, b, x0=exact, rtol=1e-6)
    assert done.converged and done.iterations == 0 and "initial guess" in done.status
    assert torch.equal(done.x, exact)


def test_check_every(problem16):
    A, b, _ = problem16
    every = cg(A, b, rtol=1e-8)
    seen = []
    batched = cg(A, b, rtol=1e-8, check_every=4, callback=lambda k, x, rel: seen.append(k))
    assert batched.converged and batched.residual <= 1e-8
    assert batched.residual == pytest.approx(true_relative_residual(A, batched.x, b), rel=1e-10)
    assert every.iterations <= batched.iterations < every.iterations + 4
    assert seen == list(range(4, batched.iterations + 1, 4))
    assert torch.allclose(batched.x, every.x, rtol=0, atol=1e-6 * float(every.x.abs().max()))


@pytest.mark.parametrize("check_every", [1, 4, None])
def test_exact_convergence_within_a_check_block(device, check_every):
    """Operators with few distinct eigenvalues: CG reaches r = 0 exactly, then idles safely."""
    b = randn(12, seed=0, device=device)
    for A in (Identity(12, device=device), 3.0 * Identity(12, device=device),
              Diagonal(torch.tensor([1.0, 2.0] * 6, dtype=torch.float64, device=device))):
        result = cg(A, b, rtol=1e-10, check_every=check_every)
        assert result.converged and result.residual <= 1e-10, (A, result)
        assert torch.isfinite(result.x).all()
        torch.testing.assert_close(A.matvec(result.x), b, rtol=1e-10, atol=1e-10)


def test_other_operator_inputs():
    a = randn(6, 6, seed=0)
    spd = a @ a.T + 6 * torch.eye(6, dtype=torch.float64)
    b = randn(6, seed=1)
    expected = torch.linalg.solve(spd, b)
    for A in (spd, Dense(spd), Dense(spd).to_dense().to_sparse_csr()):
        result = cg(A, b, rtol=1e-12)
        assert result.converged
        torch.testing.assert_close(result.x, expected, rtol=1e-9, atol=1e-9)
    result = cg(sp.csr_matrix(spd.numpy()), b, rtol=1e-12)
    torch.testing.assert_close(result.x, expected, rtol=1e-9, atol=1e-9)


def test_progress_bar_runs(problem16):
    A, b, _ = problem16
    assert cg(A, b, rtol=1e-4, progress=True).converged


def test_on_device(device):
    A, b, _ = poisson_problem(10, seed=3, device=device)
    result = cg(A, b, rtol=1e-8)
    assert result.x.device.type == device and result.converged
    assert result.residual <= 1e-8
    assert result.residual == pytest.approx(true_relative_residual(A, result.x, b), rel=1e-5)
    assert pcg(A, b, rtol=1e-8).converged
    cpu = cg(A.to(device="cpu"), b.cpu(), rtol=1e-8)
    assert cpu.iterations - 2 <= result.iterations <= cpu.iterations + 9  # CUDA checks every 8 iterations


# ----------------------------------------------------------------------------- errors
def test_rhs_shape_mismatch_names_both_shapes(problem16):
    A, b, _ = problem16
    with pytest.raises(ValueError, match=r"shape \(4095,\).*operator of shape \(4096, 4096\).*\(4096,\)"):
        cg(A, b[:-1])
    with pytest.raises(ValueError, match=r"shape \(16, 16, 16\).*reshape\(-1\)"):
        cg(A, b.reshape(16, 16, 16))
    with pytest.raises(ValueError, match=r"x0 has shape \(3,\).*expected \(4096,\)"):
        cg(A, b, x0=b[:3])
    with pytest.raises(ValueError, match="square"):
        cg(Dense(randn(3, 4, seed=0)), randn(3, seed=0))
    with pytest.raises(ValueError, match="complex"):
        cg(Identity(3), torch.ones(3, dtype=torch.complex128))


@pytest.mark.gpu
def test_device_mismatch_names_both_devices():
    A = dirichlet_poisson(3, device="cuda")
    b = torch.ones(27, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"device mismatch: b is on cpu but the operator is on cuda"):
        cg(A, b)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_rhs(problem16, bad):
    A, b, _ = problem16
    b = b.clone()
    b[5] = bad
    with pytest.raises(NonFiniteError, match="b contains NaN or infinity"):
        cg(A, b)


def test_non_finite_operator_output():
    class Broken(LinearOperator):
        shape, dtype, device, symmetric = (4, 4), torch.float64, torch.device("cpu"), True

        def _matvec(self, x):
            return x * float("nan")

    with pytest.raises(NonFiniteError, match="iteration 1"):
        cg(Broken(), torch.ones(4, dtype=torch.float64))


def test_negative_definite_raises_not_spd(problem16):
    A, b, _ = problem16
    with pytest.raises(NotSPDError, match=r"symmetric positive definite.*iteration 1.*-Laplacian"):
        cg(-A, b)


def test_indefinite_raises_not_spd():
    eigenvalues = torch.tensor([1.0, 2.0, 3.0, -0.5, 4.0, 5.0], dtype=torch.float64)
    q = torch.linalg.qr(randn(6, 6, seed=0))[0]
    A = Dense(q @ torch.diag(eigenvalues) @ q.T, symmetric=True)
    with pytest.raises(NotSPDError, match="symmetric positive definite") as info:
        cg(A, randn(6, seed=1), rtol=1e-12)
    assert isinstance(info.value, ValueError)
    # a singular PSD direction (p in the null space) is reported the same way, not as NaN
    with pytest.raises(NotSPDError, match="symmetric positive definite"):
        cg(Diagonal(torch.tensor([1.0, 0.0], dtype=torch.float64)), torch.tensor([0.0, 1.0], dtype=torch.float64))
