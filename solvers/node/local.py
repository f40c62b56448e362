"""The local regulariser (Pal et al. 2023): one extra solver step from a random time point.

Given a solution of the neural ODE, draw ``t_r`` -- uniformly in ``[t0, t1]`` (*unbiased*) or
uniformly among the solver's accepted step points (*biased*) -- take the state ``u(t_r)``
*detached* (the paper marks the integrator's creation non-differentiable), choose the step
size as the solver would for a fresh start (``torchdiffeq``'s ``_select_initial_step``,
detached), take one step of the embedded pair with torchdiffeq's ``_runge_kutta_step``, and
return ``EEst * dt``. The step is an ordinary autograd graph in the parameters, independent of
how the main solve is differentiated, so it works with ``odeint_adjoint``. Cost: 1 + 1 + 6 =
8 evaluations of the field (the paper quotes about 7 with Tsit5's FSAL reuse).
"""
from __future__ import annotations

import torch
from torchdiffeq._impl.misc import (
    _compute_error_ratio,
    _PerturbFunc,
    _rms_norm,
    _select_initial_step,
)
from torchdiffeq._impl.rk_common import _ButcherTableau, _runge_kutta_step

from solvers.node.tableau import tableau as get_tableau

__all__ = ["hermite", "local_error_step", "sample_start"]


def _cast(tab: _ButcherTableau, like: torch.Tensor) -> _ButcherTableau:
    kw = {"dtype": like.dtype, "device": like.device}
    return _ButcherTableau(alpha=tab.alpha.to(**kw), beta=[b.to(**kw) for b in tab.beta],
                           c_sol=tab.c_sol.to(**kw), c_error=tab.c_error.to(**kw))


def local_error_step(func, t_r: torch.Tensor, y_r: torch.Tensor, *, method: str = "tsit5", rtol: float = 1e-5,
                     atol: float = 1e-5, dt: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One adaptive-RK step from ``(t_r, y_r)``; returns ``(EEst * dt, |lambda| * dt)``.

    Parameters
    ----------
    func : callable ``(t, y) -> dy/dt``
        The vector field (e.g. a :class:`~solvers.node.recorder.StepRecorder`).
    t_r : () tensor
        Start time.
    y_r : tensor, any shape
        Start state; detached here (the start of the step carries no gradient).
    method : {"tsit5", "dopri5"}
    rtol, atol : float
        Tolerances defining EEst (and the step size choice).
    dt : () tensor, optional
        Step size; by default the solver's initial-step heuristic (2 evaluations, detached).

    Returns
    -------
    error : () tensor
        ``EEst * dt``, differentiable in the parameters of ``func``.
    stiffness : () tensor
        ``|lambda| * dt`` with the stiffness estimate from stages 6 and 7.
    """
    tab, order = get_tableau(method)
    y_r = y_r.detach()
    t_r = torch.as_tensor(t_r, dtype=torch.promote_types(torch.float64, y_r.dtype), device=y_r.device).detach()
    wrapped = _PerturbFunc(func)
    f0 = wrapped(t_r, y_r)
    rtol_t = torch.as_tensor(rtol, dtype=t_r.dtype, device=y_r.device)
    atol_t = torch.as_tensor(atol, dtype=t_r.dtype, device=y_r.device)
    if dt is None:
        with torch.no_grad():
            dt = _select_initial_step(wrapped, t_r, y_r, order - 1, rtol_t, atol_t, _rms_norm, f0=f0.detach())
    dt = torch.as_tensor(dt, dtype=t_r.dtype, device=y_r.device).detach()
    y1, _, y1_error, k = _runge_kutta_step(wrapped, y_r, f0, t_r, dt, t_r + dt, tableau=_cast(tab, y_r))
    ratio = _compute_error_ratio(y1_error, rtol_t, atol_t, y_r, y1, _rms_norm)
    dt_y = dt.to(y_r.dtype)
    # stages 6 and 7 are both at t_r + dt; stage 7 is evaluated at y1 (first same as last)
    g6 = y_r + torch.sum(k[..., :5] * (tab.beta[-2].to(k) * dt_y), dim=-1).view_as(y_r)
    eigen = torch.linalg.vector_norm(k[..., 6] - k[..., 5]) / torch.linalg.vector_norm(y1 - g6).clamp_min(
        torch.finfo(y_r.dtype).tiny)
    return ratio * dt_y, eigen * dt_y


def hermite(t: float, t0: torch.Tensor, y0: torch.Tensor, f0: torch.Tensor, t1: torch.Tensor, y1: torch.Tensor,
            f1: torch.Tensor) -> torch.Tensor:
    """Cubic Hermite interpolant through ``(t0, y0, f0)`` and ``(t1, y1, f1)`` at ``t`` (3rd order)."""
    h = float(t1 - t0)
    s = (t - float(t0)) / h
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    return h00 * y0 + (h10 * h) * f0 + h01 * y1 + (h11 * h) * f1


def sample_start(points: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], t0: float, t1: float,
                 sampling: str, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The local regulariser's start ``(t_r, y_r)`` from the main solve's accepted step points.

    Parameters
    ----------
    points : list of (t, y, f)
        Start of the solve and end of every accepted step (:attr:`StepRecorder.step_points`).
    t0, t1 : float
        Integration interval.
    sampling : {"unbiased", "biased"}
        ``"unbiased"``: ``t_r ~ U[t0, t1]`` and ``y_r`` from the cubic Hermite interpolant of the
        step containing ``t_r`` (no extra evaluations, no extra output time, so the adjoint pass
        is unchanged); ``"biased"``: uniform over the step points inside ``[t0, t1]``.
    generator : torch.Generator, optional

    Returns
    -------
    t_r : () float64 tensor
    y_r : tensor (detached)
    dt : () float64 tensor
        Size of the accepted step of the main solve that contains ``t_r`` (or starts there).
    """
    if len(points) < 2:
        raise ValueError("the local regulariser needs a solve with at least one accepted step")
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    if sampling == "biased":
        inside = [p for p in points if float(p[0]) <= t1]
        k = min(int(u * len(inside)), len(inside) - 1)
        t_r, y_r, _ = inside[k]
        dt = points[k + 1][0] - t_r if k + 1 < len(points) else t_r - points[k - 1][0]
        return t_r.to(torch.float64), y_r, dt.to(torch.float64)
    if sampling != "unbiased":
        raise ValueError(f"sampling={sampling!r} is unknown; use 'unbiased' or 'biased'")
    t_r = t0 + (t1 - t0) * u
    k = next((i for i in range(1, len(points)) if float(points[i][0]) >= t_r), len(points) - 1)
    (ta, ya, fa), (tb, yb, fb) = points[k - 1], points[k]
    return (torch.tensor(t_r, dtype=torch.float64), hermite(t_r, ta, ya, fa, tb, yb, fb),
            (tb - ta).to(torch.float64))
