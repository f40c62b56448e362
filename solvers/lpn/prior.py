"""The regulariser ``R`` learned by an LPN, evaluated by inverting the prox.

If ``f = grad psi`` with ``psi`` convex, then ``f = prox_R`` with

    R(x) = <y, x> - ||x||^2 / 2 - psi(y),   where f(y) = x,

and ``y = f^{-1}(x)`` is the minimiser of the convex problem ``psi(y) - <x, y>`` (strongly convex
thanks to the ``alpha ||y||^2`` term). :func:`invert_prox` solves it with L-BFGS (strong-Wolfe
line search) or plain gradient descent, and reports the inversion residual
``||f(y) - x|| / ||x||`` for every sample; :func:`regulariser` returns ``R`` with it.
:func:`prox_descent` checks the prox inequality ``R(f(x)) <= R(x) - ||f(x) - x||^2 / 2``: the
denoiser's output always has a lower ``R`` than its input, so a prior whose prox smooths ranks
smoothed (e.g. blurred) images lower.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from sciml.nn.icnn import LPN

__all__ = ["InversionResult", "invert_prox", "prox_descent", "regulariser"]


@dataclass
class InversionResult:
    """``y = f^{-1}(x)`` per sample.

    Attributes
    ----------
    y : (B, C, H, W) tensor
    residual : (B,) tensor
        ``||f(y) - x|| / ||x||``.
    iterations : int
    """

    y: torch.Tensor
    residual: torch.Tensor
    iterations: int


def _objective(model: LPN, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (model.psi(y) - (x * y).flatten(1).sum(1)).sum()


def invert_prox(model: LPN, x: torch.Tensor, method: str = "lbfgs", maxiter: int = 500, tol: float = 1e-6,
                lr: float = 1e-2) -> InversionResult:
    """Solve ``min_y psi(y) - <x, y>`` for every sample of ``x`` (so that ``f(y) = x``).

    Parameters
    ----------
    model : LPN
        Evaluated in ``x``'s dtype and device (the model is not modified; cast a copy first if
        needed, e.g. ``model.double()`` for float64 inputs).
    x : (B, C, H, W) tensor
    method : {"lbfgs", "gd"}
        L-BFGS with strong-Wolfe line search (default), or Adam with step ``lr`` (the reference
        repository's ``cvx_gd``).
    maxiter : int
    tol : float
        Stop when the largest relative gradient ``||f(y) - x|| / ||x||`` is below ``tol``.

    Returns
    -------
    InversionResult
    """
    if method not in ("lbfgs", "gd"):
        raise ValueError(f"unknown inversion method {method!r}; use 'lbfgs' or 'gd'")
    p = next(model.parameters())
    if p.dtype != x.dtype or p.device != x.device:
        raise ValueError(f"model is {p.dtype} on {p.device} but x is {x.dtype} on {x.device}; "
                         f"use model.to(x.device, x.dtype) or x.to(...)")
    x = x.detach()
    norm = x.flatten(1).norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny)
    y = x.clone().requires_grad_(True)
    iterations = 0

    def residual() -> torch.Tensor:
        return (model(y.detach(), create_graph=False) - x).flatten(1).norm(dim=1) / norm

    with torch.enable_grad():
        if method == "lbfgs":
            opt = torch.optim.LBFGS([y], lr=1.0, max_iter=20, history_size=20, line_search_fn="strong_wolfe",
                                    tolerance_grad=0.0, tolerance_change=0.0)

            def closure():
                opt.zero_grad()
                value = _objective(model, y, x)
                value.backward()
                return value
            while iterations < maxiter:
                opt.step(closure)
                iterations += 20
                if float(residual().max()) < tol:
                    break
        else:
            opt = torch.optim.Adam([y], lr=lr)
            for iterations in range(1, maxiter + 1):
                opt.zero_grad()
                _objective(model, y, x).backward()
                opt.step()
                if iterations % 50 == 0 and float(residual().max()) < tol:
                    break
    return InversionResult(y.detach(), residual(), iterations)


def regulariser(model: LPN, x: torch.Tensor, **kwargs) -> tuple[torch.Tensor, InversionResult]:
    """The learned ``R(x)`` (up to an additive constant) of every sample.

    Parameters
    ----------
    model : LPN
    x : (B, C, H, W) tensor
    **kwargs
        Passed to :func:`invert_prox`.

    Returns
    -------
    R : (B,) tensor
    inversion : InversionResult
        Check ``inversion.residual``: ``R`` is only meaningful where ``x`` is (close to) in the
        range of the prox.
    """
    inv = invert_prox(model, x, **kwargs)
    with torch.no_grad():
        y = inv.y
        r = (y * x).flatten(1).sum(1) - 0.5 * x.flatten(1).pow(2).sum(1) - model.psi(y)
    return r.detach(), inv


def prox_descent(model: LPN, x: torch.Tensor, **kwargs) -> dict[str, torch.Tensor]:
    """``R(x)``, ``R(f(x))`` and the prox inequality ``R(f(x)) + ||f(x) - x||^2 / 2 <= R(x)``.

    The inequality holds for any proximal operator ``f = prox_R`` (``f(x)`` minimises
    ``||u - x||^2 / 2 + R(u)``, compare with ``u = x``); its slack is returned as ``gap`` (>= 0 up to
    the inversion residual). Parameters as for :func:`regulariser`.

    Returns
    -------
    dict
        ``R_x``, ``R_fx``, ``half_step`` (``||f(x) - x||^2 / 2``) and ``gap``
        (``R_x - R_fx - half_step``), each a (B,) tensor, and ``residual``, the worse of the two
        inversion residuals per sample.
    """
    fx = model(x.detach()).detach()
    r_x, inv_x = regulariser(model, x, **kwargs)
    r_fx, inv_fx = regulariser(model, fx, **kwargs)
    half_step = 0.5 * (fx - x).flatten(1).pow(2).sum(1)
    return {"R_x": r_x, "R_fx": r_fx, "half_step": half_step, "gap": r_x - r_fx - half_step,
            "residual": torch.maximum(inv_x.residual, inv_fx.residual)}
