"""The generic conjugate-direction method with a pluggable direction generator.

Each iteration asks a *direction generator* for a search direction ``q`` given the
normalised residual, A-orthogonalises it against the last ``n_orth`` directions
(classical Gram-Schmidt with the stored ``A p`` and ``p^T A p``), and takes the
exact line-search step along it. With the identity generator ``q = r`` this is CG;
with a trained network ``q = f(r / ||r||)`` it is the deep conjugate-direction
method (DCDM, Kaneda et al. 2023), whose solver lives in ``solvers.dcdm``.
"""
from __future__ import annotations

from collections import deque
from typing import Callable

import torch

from sciml.linalg._krylov_common import Problem, check_finite
from sciml.linalg.errors import NotSPDError
from sciml.linalg.result import SolveResult

DirectionGenerator = Callable[[torch.Tensor], torch.Tensor]


def identity_direction(r: torch.Tensor) -> torch.Tensor:
    """The direction generator that returns the residual itself (gives CG)."""
    return r


def conjugate_directions(A, b: torch.Tensor, direction: DirectionGenerator = identity_direction,
                         x0: torch.Tensor | None = None, *, n_orth: int = 2, rtol: float = 1e-6,
                         atol: float = 0.0, maxiter: int | None = None, recompute_residual: bool = True,
                         stagnation_window: int | None = None, stagnation_factor: float = 0.9,
                         callback: Callable[[int, torch.Tensor, float], None] | None = None,
                         dtype: torch.dtype | None = torch.float64) -> SolveResult:
    """Solve ``A x = b`` (A SPD) by conjugate directions from a direction generator.

    Parameters
    ----------
    A : LinearOperator, tensor or scipy sparse matrix, shape (n, n)
    b : (n,) tensor
    direction : callable ``(n,) tensor -> (n,) tensor``
        Receives the residual divided by its norm (in the working dtype) and
        returns a search direction of any scale and of any floating dtype on the
        same device (e.g. a float32 network output); it is cast to the working dtype.
    x0 : (n,) tensor, optional
    n_orth : int
        Number of previous directions the new one is A-orthogonalised against
        (the DCDM paper uses 2; 1 suffices for CG in exact arithmetic).
    rtol, atol : float
        Stop when the true residual ``||b - A x|| <= max(rtol ||b||, atol)``.
    maxiter : int, optional
        Default ``n``.
    recompute_residual : bool
        Recompute ``r = b - A x`` every iteration (two operator applications per
        iteration, the DCDM recipe, robust for inexact directions) instead of the
        recurrence ``r -= alpha A q``.
    stagnation_window, stagnation_factor :
        Stop with ``converged=False`` and ``info["stagnated"] = True`` when the
        best residual of the last ``stagnation_window`` iterations is not below
        ``stagnation_factor`` times the best one before them; callers then fall
        back to PCG. Off by default (``None``): the residual of CG itself can
        plateau for dozens of iterations, so the window must suit the generator.
    callback : callable ``(iteration, x, relative_residual)``, optional
    dtype : torch.dtype or None
        Working precision of the Krylov vectors (default float64).

    Returns
    -------
    SolveResult
        ``residuals`` are true residuals when ``recompute_residual`` is set.
        ``info`` has ``matvecs``, ``stagnated`` and ``direction_calls``.

    Raises
    ------
    NotSPDError
        When a non-zero direction has ``q^T A q <= 0``.
    """
    prob = Problem(A, b, x0, dtype)
    maxiter = prob.A.shape[0] if maxiter is None else int(maxiter)
    if n_orth < 0:
        raise ValueError(f"n_orth must be >= 0, got {n_orth}")
    tol = max(rtol * prob.bnorm, atol)
    r = prob.true_residual() if x0 is not None else prob.b.clone()
    rnorm = float(torch.linalg.vector_norm(r))
    history = [prob.relative(rnorm)]
    previous: deque = deque(maxlen=max(n_orth, 1))
    status, converged, stagnated, k = None, rnorm <= tol, False, 0
    if converged:
        status = "b is zero, so x = 0 is the exact solution" if prob.bnorm == 0 else \
            "initial guess already satisfies the tolerance"
    while not converged and k < maxiter:
        k += 1
        q = _new_direction(direction, r, rnorm, prob)
        if n_orth > 0:
            coefficients = [torch.dot(q, Ap) / pAp for (_, Ap, pAp) in previous]
            for coefficient, (p, _, _) in zip(coefficients, previous):
                q.sub_(p * coefficient)
        Aq = prob.apply(q)
        qAq = torch.dot(q, Aq)
        _check_direction(float(qAq), float(torch.linalg.vector_norm(q)), k)
        alpha = torch.dot(q, r) / qAq
        prob.x.add_(q * alpha)
        r = prob.true_residual() if recompute_residual else r.sub_(Aq * alpha)
        if n_orth > 0:
            previous.append((q, Aq, qAq))
        rnorm = float(torch.linalg.vector_norm(r))
        check_finite(rnorm, "the residual norm", k)
        history.append(prob.relative(rnorm))
        if callback is not None:
            callback(k, prob.x, history[-1])
        converged = rnorm <= tol
        if not converged and stagnation_window and k > stagnation_window and \
                min(history[-stagnation_window:]) > stagnation_factor * min(history[:-stagnation_window]):
            stagnated = True
            status = (f"stagnated at relative residual {history[-1]:.2e} after {k} iterations (less than "
                      f"{1 - stagnation_factor:.0%} progress in {stagnation_window}); the directions are poor "
                      "for this system: fall back to pcg from result.x")
            break
    if not recompute_residual:
        recurrence = history[-1]
        history[-1] = prob.relative(float(torch.linalg.vector_norm(prob.true_residual())))
        if prob.bnorm > 0:
            true_converged = history[-1] * prob.bnorm <= tol * 1.0000001
            if converged and not true_converged:
                status = (f"not converged: the recurrence residual reached {recurrence:.2e} but the true residual "
                          f"is {history[-1]:.2e}; rtol={rtol:g} is below the attainable accuracy: loosen rtol, "
                          "use recompute_residual=True or a float64 operator")
            converged = true_converged
    if converged and status is None:
        status = f"converged in {k} iterations"
    if status is None:
        status = (f"not converged: reached maxiter={maxiter} at relative residual {history[-1]:.2e}; "
                  "raise maxiter or fall back to pcg from result.x")
    return SolveResult(x=prob.x, converged=bool(converged), iterations=k,
                       residuals=torch.tensor(history, dtype=torch.float64), wall_time=prob.elapsed(),
                       status=status, info={"matvecs": prob.applications, "stagnated": stagnated,
                                            "direction_calls": k, "true_every_iteration": recompute_residual})


def _new_direction(direction: DirectionGenerator, r: torch.Tensor, rnorm: float, prob: Problem) -> torch.Tensor:
    q = direction(r / rnorm)
    if not isinstance(q, torch.Tensor) or q.shape != r.shape:
        raise ValueError(f"the direction generator must return a tensor of shape {tuple(r.shape)}, got "
                         f"{getattr(q, 'shape', type(q).__name__)}")
    if q.device != r.device:
        raise ValueError(f"the direction generator returned a tensor on {q.device}, but the system is on "
                         f"{r.device}; move the network to {r.device}")
    return q.to(prob.dtype, copy=True)


def _check_direction(qAq: float, qnorm: float, k: int) -> None:
    check_finite(qAq, "q^T A q", k)
    if qnorm == 0.0:
        raise ValueError(f"the direction generator returned a direction in the span of the previous ones "
                         f"(zero after A-orthogonalisation) at iteration {k}; fall back to pcg")
    if qAq <= 0.0:
        raise NotSPDError(f"A is not symmetric positive definite (q^T A q = {qAq:.3e} at iteration {k}); "
                          "check the sign convention (-Laplacian is SPD) or the boundary mask")
