"""Conjugate gradients, plain and preconditioned, on torch tensors."""
from __future__ import annotations

from typing import Callable

import torch

from sciml.linalg._krylov_common import Problem, as_preconditioner, check_finite, default_check_every
from sciml.linalg.errors import NotSPDError
from sciml.linalg.result import SolveResult


def cg(A, b: torch.Tensor, x0: torch.Tensor | None = None, *, rtol: float = 1e-6, atol: float = 0.0,
       maxiter: int | None = None, M=None, callback: Callable[[int, torch.Tensor, float], None] | None = None,
       dtype: torch.dtype | None = torch.float64, check_every: int | None = None,
       progress: bool = False) -> SolveResult:
    """Solve ``A x = b`` for a symmetric positive definite ``A`` by (preconditioned) CG.

    Parameters
    ----------
    A : LinearOperator, dense tensor or scipy sparse matrix, shape (n, n)
    b : (n,) tensor
        On ``A.device``.
    x0 : (n,) tensor, optional
        Initial guess (zero by default).
    rtol, atol : float
        Stop when ``||r|| <= max(rtol * ||b||, atol)`` (scipy's rule), confirmed on
        the true residual ``b - A x``.
    maxiter : int, optional
        Default ``10 n``.
    M : None, "jacobi", LinearOperator or callable ``r -> z``
        SPD preconditioner.
    callback : callable ``(iteration, x, relative_residual)``, optional
        Called after every convergence check (every iteration on CPU).
    dtype : torch.dtype or None
        Working precision of the Krylov vectors (default float64; ``None`` keeps
        the dtype of ``b``). ``A`` is applied in its own dtype.
    check_every : int, optional
        Iterations between convergence checks (host syncs); 1 on CPU, 8 on CUDA
        without a preconditioner, 1 with one.
    progress : bool
        Show a tqdm bar of ``-log10`` residual.

    Returns
    -------
    SolveResult
        ``info["matvecs"]`` counts operator applications.

    Raises
    ------
    NotSPDError
        When ``p^T A p <= 0`` (or ``r^T M r <= 0``) for some search direction.
    NonFiniteError
        When NaN/inf appears.
    """
    prob = Problem(A, b, x0, dtype)
    precond = as_preconditioner(M, prob.A)
    n = prob.A.shape[0]
    maxiter = 10 * n if maxiter is None else int(maxiter)
    check_every = check_every or default_check_every(prob.A.device, precond is not None)
    tol = max(rtol * prob.bnorm, atol)
    bar = _progress_bar(progress, rtol)

    r = prob.true_residual() if x0 is not None else prob.b.clone()
    history = [prob.relative(float(torch.linalg.vector_norm(r)))]
    if history[0] * max(prob.bnorm, 1e-300) <= tol or prob.bnorm == 0:
        status = "b is zero, so x = 0 is the exact solution" if prob.bnorm == 0 else \
            "initial guess already satisfies the tolerance"
        return _finish(prob, True, 0, history, status, bar)
    z = r if precond is None else precond(r)
    p = z.clone()
    rz = torch.dot(r, z)
    norms = torch.empty(check_every, dtype=torch.float64, device=r.device)
    curvatures = torch.empty(check_every, dtype=torch.float64, device=r.device)
    k, replacements, status, converged = 0, 0, None, False
    while k < maxiter:
        steps = min(check_every, maxiter - k)
        for s in range(steps):
            Ap = prob.apply(p)
            pAp = torch.dot(p, Ap)
            alpha = _divide(rz, pAp)
            prob.x.addcmul_(p, alpha)
            r.addcmul_(Ap, alpha, value=-1.0)
            z = r if precond is None else precond(r)
            rz_new = torch.dot(r, z)
            norms[s] = torch.linalg.vector_norm(r) if precond is not None else rz_new.sqrt()
            curvatures[s] = torch.minimum(pAp, rz_new)
            p.mul_(_divide(rz_new, rz)).add_(z)
            rz = rz_new
        values, curv = norms[:steps].tolist(), curvatures[:steps].tolist()
        for value, curvature in zip(values, curv):
            k += 1
            check_finite(value, "the residual norm", k)
            _check_curvature(curvature, k, precond is not None, value == 0.0)
            history.append(prob.relative(value))
        if callback is not None:
            callback(k, prob.x, history[-1])
        _update_bar(bar, history[-1])
        if min(values) <= tol:
            # Confirm on the true residual; restart from it if the recurrence drifted.
            r = prob.true_residual()
            true_norm = float(torch.linalg.vector_norm(r))
            history[-1] = prob.relative(true_norm)
            if true_norm <= tol * 1.0000001:
                converged, status = True, f"converged in {k} iterations"
                break
            replacements += 1
            if replacements > 3:
                status = (f"stagnated at true residual {history[-1]:.2e} although the recurrence reached "
                          f"{min(values) / max(prob.bnorm, 1e-300):.2e}: rtol={rtol:g} is below the attainable "
                          "accuracy in this precision; loosen rtol or use dtype=torch.float64")
                break
            z = r if precond is None else precond(r)
            p, rz = z.clone(), torch.dot(r, z)
    if status is None:
        r_final = torch.linalg.vector_norm(prob.true_residual())
        history[-1] = prob.relative(float(r_final))
        status = (f"not converged: reached maxiter={maxiter} at relative residual {history[-1]:.2e}; "
                  "raise maxiter or use a preconditioner (M='jacobi' or an AMG/multigrid operator)")
    return _finish(prob, converged, k, history, status, bar, replacements=replacements)


def pcg(A, b: torch.Tensor, x0: torch.Tensor | None = None, *, M="jacobi", **kwargs) -> SolveResult:
    """Preconditioned CG; :func:`cg` with ``M="jacobi"`` by default.

    ``M`` may also be a :class:`~sciml.linalg.LinearOperator` or any callable
    ``r -> z`` (e.g. a multigrid V-cycle). Other arguments as for :func:`cg`.
    """
    return cg(A, b, x0, M=M, **kwargs)


def _divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator``, or 0 where the denominator is 0.

    Between host checks (``check_every > 1``) CG keeps iterating after the residual has
    reached exactly zero (``p = 0``, ``p^T A p = 0``, ``r^T z = 0``); a zero step keeps
    ``x`` finite there. A zero ``p^T A p`` for a non-zero residual is still reported by
    the curvature check as not SPD.
    """
    return torch.where(denominator != 0, numerator / denominator, torch.zeros_like(numerator))


def _check_curvature(value: float, k: int, preconditioned: bool, done: bool) -> None:
    if value > 0 or done:
        return
    check_finite(value, "p^T A p", k)
    who = "A or the preconditioner M" if preconditioned else "A"
    raise NotSPDError(f"{who} is not symmetric positive definite (p^T A p or r^T M r = {value:.3e} at "
                      f"iteration {k}); use minres/gmres for indefinite systems, check the sign convention "
                      "(-Laplacian is SPD) or the boundary mask")


def _finish(prob: Problem, converged: bool, k: int, history: list, status: str, bar, **info) -> SolveResult:
    if bar is not None:
        bar.close()
    return SolveResult(x=prob.x, converged=converged, iterations=k,
                       residuals=torch.tensor(history, dtype=torch.float64), wall_time=prob.elapsed(),
                       status=status, info={"matvecs": prob.applications, "true_every_iteration": False, **info})


def _progress_bar(progress: bool, rtol: float):
    if not progress:
        return None
    from tqdm.auto import tqdm
    import math
    return tqdm(total=round(-math.log10(max(rtol, 1e-300)), 2), unit="decade", desc="cg")


def _update_bar(bar, relative: float) -> None:
    if bar is not None:
        import math
        bar.n = round(min(bar.total, max(0.0, -math.log10(max(relative, 1e-300)))), 2)
        bar.refresh()
