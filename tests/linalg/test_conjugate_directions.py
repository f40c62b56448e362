"""Conjugate directions: CG equivalence, true residuals, A-conjugacy, stagnation, generator checks."""
from __future__ import annotations

import pytest
import torch

from sciml.linalg import LinearOperator, NotSPDError, cg, conjugate_directions, identity_direction

from ._problems import poisson_problem, randn, true_relative_residual


class Recording(LinearOperator):
    """Wraps an operator and keeps a copy of every vector it is applied to."""

    def __init__(self, op: LinearOperator):
        self.op, self.calls = op, []
        self.shape, self.dtype, self.device, self.symmetric = op.shape, op.dtype, op.device, op.symmetric

    def _matvec(self, x):
        self.calls.append(x.clone())
        return self.op._matvec(x)


def solve_recording_directions(A, b, **kwargs):
    """Run conjugate_directions and return (result, directions p_1..p_k, iterates x_1..x_k).

    Each iteration applies A to the new direction first, then to the iterate (true residual),
    so the direction of iteration k is the first vector A saw after the callback of k - 1.
    """
    recording = Recording(A)
    marks, iterates = [0], []

    def callback(k, x, rel):
        marks.append(len(recording.calls))
        iterates.append(x.clone())

    result = conjugate_directions(recording, b, callback=callback, **kwargs)
    directions = [recording.calls[m] for m in marks[:-1]]
    return result, directions, iterates


def a_cosine(A, p, q) -> float:
    """``|p^T A q| / (||p||_A ||q||_A)``."""
    Ap, Aq = A.matvec(p), A.matvec(q)
    return abs(float(p @ Aq)) / float((p @ Ap).sqrt() * (q @ Aq).sqrt())


@pytest.fixture(scope="module")
def problem():
    return poisson_problem(16, seed=5)


@pytest.mark.parametrize("n_orth", [1, 2, 8])
def test_identity_generator_reproduces_cg(problem, n_orth):
    A, b, _ = problem
    cg_iterates = []
    reference = cg(A, b, rtol=1e-8, callback=lambda k, x, rel: cg_iterates.append(x.clone()))
    result, _, iterates = solve_recording_directions(A, b, direction=identity_direction, n_orth=n_orth, rtol=1e-8)
    assert result.converged and result.status == f"converged in {result.iterations} iterations"
    assert abs(result.iterations - reference.iterations) <= 2
    assert result.residual <= 1e-8
    scale = float(reference.x.abs().max())
    for k, (x, x_cg) in enumerate(zip(iterates[:40], cg_iterates[:40])):  # same iterates early on
        assert float((x - x_cg).abs().max()) <= 1e-8 * scale, k
    torch.testing.assert_close(result.x, reference.x, rtol=0, atol=1e-6 * scale)
    assert result.info["direction_calls"] == result.iterations
    assert result.info["matvecs"] == 2 * result.iterations
    assert result.info["stagnated"] is False and result.info["true_every_iteration"] is True


def test_residual_history_is_the_true_residual(problem):
    A, b, _ = problem
    result, _, iterates = solve_recording_directions(A, b, rtol=1e-8)
    assert result.residuals.shape == (result.iterations + 1,) and result.residuals[0] == 1.0
    for k, x in enumerate(iterates, start=1):
        assert float(result.residuals[k]) == pytest.approx(true_relative_residual(A, x, b), rel=1e-12, abs=1e-15)
    assert result.residual == pytest.approx(true_relative_residual(A, result.x, b), rel=1e-12)


@pytest.mark.parametrize("n_orth", [1, 2, 8])
def test_consecutive_directions_are_a_conjugate(problem, n_orth):
    A, b, _ = problem
    result, directions, _ = solve_recording_directions(A, b, n_orth=n_orth, rtol=1e-8)
    assert result.converged and len(directions) == result.iterations
    for i in range(len(directions)):
        for lag in range(1, n_orth + 1):
            if i + lag < len(directions):
                assert a_cosine(A, directions[i], directions[i + lag]) < 1e-8, (i, lag)


def test_inexact_generator_keeps_local_conjugacy(problem):
    """A perturbed generator (like a network) still gets directions conjugate to the last n_orth."""
    A, b, _ = problem
    g = torch.Generator().manual_seed(0)
    fluid = (b != 0).double()
    relative_noise = 0.1 / b.numel() ** 0.5  # about 10% of the unit-norm residual
    noisy = lambda r: r + relative_noise * fluid * torch.randn(r.shape, generator=g, dtype=r.dtype)  # noqa: E731
    result, directions, _ = solve_recording_directions(A, b, direction=noisy, n_orth=2, rtol=1e-6, maxiter=400)
    assert result.converged and result.residual <= 1e-6
    for i in range(len(directions) - 2):
        assert a_cosine(A, directions[i], directions[i + 1]) < 1e-8
        assert a_cosine(A, directions[i], directions[i + 2]) < 1e-8


def bad_generator(n: int, seed: int = 0, noise: float = 1e-6):
    """Always (almost) the same direction: no progress after the first step."""
    g = torch.Generator().manual_seed(seed)
    fixed = torch.randn(n, generator=g, dtype=torch.float64)
    return lambda r: fixed + noise * torch.randn(n, generator=g, dtype=torch.float64)


def test_stagnation_is_detected(problem):
    A, b, _ = problem
    result = conjugate_directions(A, b, bad_generator(b.numel()), stagnation_window=5, maxiter=200)
    assert not result.converged and result.info["stagnated"] is True
    assert result.iterations < 200
    assert "stagnated" in result.status and "fall back to pcg" in result.status
    assert result.residual == pytest.approx(true_relative_residual(A, result.x, b), rel=1e-12)
    # with the detector off, the same generator runs to maxiter
    off = conjugate_directions(A, b, bad_generator(b.numel()), maxiter=12)
    assert not off.converged and off.iterations == 12 and off.info["stagnated"] is False
    assert "maxiter=12" in off.status
    # and CG itself is not flagged with a sensible window
    assert conjugate_directions(A, b, stagnation_window=20, rtol=1e-8).converged


def test_float32_generator(problem):
    A, b, _ = problem
    calls = []

    def generator(r):
        calls.append(r.dtype)
        return r.float()

    result = conjugate_directions(A, b, generator, rtol=1e-8)
    assert calls and set(calls) == {torch.float64}  # the generator sees the working dtype
    assert result.x.dtype == torch.float64
    assert result.converged and result.residual <= 1e-8
    assert result.iterations <= 1.5 * cg(A, b, rtol=1e-8).iterations


def test_generator_receives_normalised_residual(problem):
    A, b, _ = problem
    norms = []
    conjugate_directions(A, b, lambda r: norms.append(float(r.norm())) or r, maxiter=5)
    assert norms == pytest.approx([1.0] * 5, rel=1e-12)


def test_recurrence_residual_mode(problem):
    A, b, _ = problem
    result = conjugate_directions(A, b, rtol=1e-8, recompute_residual=False)
    assert result.converged and result.info["true_every_iteration"] is False
    assert result.info["matvecs"] == result.iterations + 1
    assert result.residual == pytest.approx(true_relative_residual(A, result.x, b), rel=1e-12)


def test_recurrence_mode_reports_unattainable_accuracy(problem):
    """The recurrence of a float32 operator goes below what the true residual can reach."""
    A, b, _ = problem
    A32 = A.to(dtype=torch.float32)
    result = conjugate_directions(A32, b, rtol=1e-10, recompute_residual=False)
    assert not result.converged and result.residual > 1e-10
    true = torch.linalg.vector_norm(b - A32.matvec(result.x.float()).double()) / torch.linalg.vector_norm(b)
    assert result.residual == pytest.approx(float(true), rel=1e-12)  # true residual of the float32 operator
    assert "not converged" in result.status and "recompute_residual=True" in result.status


def test_initial_guess_zero_rhs_and_maxiter(problem):
    A, b, _ = problem
    exact = cg(A, b, rtol=1e-12).x
    x0 = exact + 1e-4 * randn(b.numel(), seed=2) * (b != 0)
    warm = conjugate_directions(A, b, x0=x0, rtol=1e-8)
    assert warm.converged and float(warm.residuals[0]) == pytest.approx(true_relative_residual(A, x0, b))
    zero = conjugate_directions(A, torch.zeros_like(b), x0=x0)
    assert zero.converged and zero.iterations == 0 and not zero.x.any()
    short = conjugate_directions(A, b, maxiter=3)
    assert not short.converged and short.iterations == 3 and "maxiter=3" in short.status


def test_on_device(device):
    A, b, _ = poisson_problem(8, seed=1, device=device)
    result = conjugate_directions(A, b, rtol=1e-8)
    assert result.converged and result.x.device.type == device and result.residual <= 1e-8
    assert result.residual == pytest.approx(true_relative_residual(A, result.x, b), rel=1e-5)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("generator, message", [
    (lambda r: r[:-1], r"must return a tensor of shape \(4096,\), got torch.Size\(\[4095\]\)"),
    (lambda r: r.reshape(16, 256), r"must return a tensor of shape \(4096,\)"),
    (lambda r: r.numpy(), r"must return a tensor of shape \(4096,\), got \(4096,\)"),
    (lambda r: [0.0], "must return a tensor of shape"),
    (lambda r: torch.zeros_like(r), "in the span of the previous ones"),
])
def test_bad_generators_raise_value_error(problem, generator, message):
    A, b, _ = problem
    with pytest.raises(ValueError, match=message):
        conjugate_directions(A, b, generator)


@pytest.mark.gpu
def test_generator_on_the_wrong_device_raises(problem):
    A, b, _ = problem
    with pytest.raises(ValueError, match=r"returned a tensor on cuda:0, but the system is on cpu"):
        conjugate_directions(A, b, lambda r: r.cuda())


def test_not_spd_and_bad_arguments(problem):
    A, b, _ = problem
    with pytest.raises(NotSPDError, match="symmetric positive definite"):
        conjugate_directions(-A, b)
    with pytest.raises(ValueError, match="n_orth must be >= 0"):
        conjugate_directions(A, b, n_orth=-1)
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        conjugate_directions(A, b[:7])
    steepest = conjugate_directions(A, b, n_orth=0, maxiter=5)  # steepest descent: allowed, slow
    assert steepest.iterations == 5 and steepest.residual < 1.0
