"""Plug-and-play ADMM and proximal gradient descent with a denoiser as the prox.

Both solve (approximately, with a learned prox exactly) ::

    min_x  (w / 2) ||A x - y||^2 + R(x)

for a forward operator ``A`` given as a :class:`sciml.linalg.LinearOperator` with an adjoint,
with the regulariser entering only through its prox (an LPN, or TV via Chambolle's algorithm
for the classical baseline). Iterates are monitored through ``||x_{k+1} - x_k||``, and
every run returns its history.

A learned prox is exact but in general *not* non-expansive: the Jacobian of an LPN is
symmetric PSD with eigenvalues above 1 (its ``R`` is non-convex). Where ``A`` has a (near)
null space -- blur at high frequencies, sparse-view CT -- both schemes then reduce to repeated
application of the prox, which can drift away from the data (penalty continuation, growing
``rho``, does not help with a denoiser of fixed strength: it turns ADMM into repeated denoising).
The optional safeguard ``patience=P`` (off by default, which is the paper's plain algorithm) is a
stopping rule on ``||x_{k+1} - x_k||``: once the relative step has risen in ``P`` consecutive
iterations, the run stops and returns the iterate with the smallest relative step seen
(``PnPResult.returned_iteration``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from sciml.linalg import Identity, LinearOperator, cg
from sciml.nn.icnn import LPN

__all__ = ["PnPResult", "pnp_admm", "pnp_pgd", "lpn_denoiser", "tv_denoiser", "psnr"]

Denoiser = Callable[[torch.Tensor], torch.Tensor]


def psnr(x: torch.Tensor, reference: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (images clipped to ``[0, data_range]`` are not assumed)."""
    mse = float(((x - reference) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range**2 / mse)


@dataclass
class PnPResult:
    """Reconstruction and history of a plug-and-play run.

    Attributes
    ----------
    x : (H, W) tensor
        The final iterate (the denoiser's output, for ADMM the ``z`` variable).
    iterations : int
    converged : bool
        ``||x_{k+1} - x_k|| / ||x_k|| < tol`` was reached.
    history : dict of str -> list of float
        ``"step"``: ``||x_{k+1} - x_k||``; ``"relative_step"``: the same divided by ``||x_k||``;
        ``"data_misfit"``: ``||A x_k - y|| / ||y||``; ``"psnr"``: when a reference was given.
    seconds : float
    stop_reason : str
        ``"tol"``, ``"maxiter"`` or ``"diverging"`` (the ``patience`` rule fired).
    returned_iteration : int
        The iteration whose iterate is ``x`` (the last one unless the ``patience`` rule fired).
    """

    x: torch.Tensor
    iterations: int
    converged: bool
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    stop_reason: str = "maxiter"
    returned_iteration: int = 0


class _Guard:
    """The ``patience`` stopping rule: stop once the relative step rose ``patience`` times in a row."""

    def __init__(self, patience: int | None):
        if patience is not None and patience < 1:
            raise ValueError(f"patience={patience} must be a positive number of iterations (or None to disable)")
        self.patience = patience
        self.best: tuple[float, int, torch.Tensor | None] = (float("inf"), 0, None)
        self.previous, self.rises = float("inf"), 0

    def update(self, k: int, rel: float, x: torch.Tensor) -> bool:
        """Record iteration ``k``; returns True when the run should stop as diverging."""
        if self.patience is None:
            return False
        if rel < self.best[0]:
            self.best = (rel, k, x)
        self.rises = self.rises + 1 if rel > self.previous else 0
        self.previous = rel
        return self.rises >= self.patience

    def result(self, k: int, x: torch.Tensor, reason: str) -> tuple[torch.Tensor, int]:
        """The iterate to return and its iteration: the calmest one if the rule fired, else ``(x, k)``."""
        if reason == "diverging":
            return self.best[2], self.best[1]
        return x, k


def lpn_denoiser(model: LPN, clip: tuple[float, float] | None = None) -> Denoiser:
    """``x (H, W) -> f(x) (H, W)``: the LPN's prox, run in the model's dtype and device.

    ``clip=(lo, hi)`` clamps the *input* to the range the network was trained on first. This
    safeguard keeps PnP iterations from feeding the network values it never saw (where the
    gradient of an input-convex network can grow without bound), but ``f(clip(x))`` is no longer
    exactly a proximal operator; the default (``None``) is the exact prox.
    """
    p = next(model.parameters())

    def denoise(x: torch.Tensor) -> torch.Tensor:
        if clip is not None:
            x = x.clamp(*clip)
        out = model(x.to(device=p.device, dtype=p.dtype)[None, None], create_graph=False)
        return out[0, 0].to(device=x.device, dtype=x.dtype)
    return denoise


def tv_denoiser(weight: float, max_num_iter: int = 200) -> Denoiser:
    """Total-variation prox by Chambolle's algorithm (``skimage.restoration.denoise_tv_chambolle``).

    Runs on the CPU through numpy; the result returns to the input's device and dtype.
    """
    from skimage.restoration import denoise_tv_chambolle

    def denoise(x: torch.Tensor) -> torch.Tensor:
        out = denoise_tv_chambolle(x.detach().cpu().numpy().astype(np.float64), weight=weight,
                                   max_num_iter=max_num_iter)
        return torch.as_tensor(out, dtype=x.dtype, device=x.device)
    return denoise


def _check(A: LinearOperator, y: torch.Tensor, shape: tuple[int, int]) -> None:
    n = shape[0] * shape[1]
    if A.shape[1] != n:
        raise ValueError(f"operator of shape {A.shape} does not act on images of shape {shape} ({n} pixels)")
    if y.ndim != 1 or y.shape[0] != A.shape[0]:
        raise ValueError(f"measurements of shape {tuple(y.shape)} do not fit the operator {A.shape}; "
                         f"flatten them to ({A.shape[0]},)")


class _Monitor:
    def __init__(self, A, y, reference, callback):
        self.A, self.y, self.reference, self.callback = A, y, reference, callback
        self.ynorm = float(y.norm()) or 1.0
        self.history: dict[str, list[float]] = {"step": [], "relative_step": [], "data_misfit": []}
        if reference is not None:
            self.history["psnr"] = []

    def record(self, k: int, new: torch.Tensor, old: torch.Tensor) -> float:
        step = float((new - old).norm())
        rel = step / max(float(old.norm()), 1e-300)
        h = self.history
        h["step"].append(step)
        h["relative_step"].append(rel)
        h["data_misfit"].append(float((self.A.matvec(new.reshape(-1)) - self.y).norm()) / self.ynorm)
        if self.reference is not None:
            h["psnr"].append(psnr(new, self.reference))
        if self.callback is not None:
            self.callback(k, new, rel)
        return rel


def pnp_admm(A: LinearOperator, y: torch.Tensor, denoiser: Denoiser, shape: tuple[int, int], *,
             rho: float = 1.0, data_weight: float = 1.0, maxiter: int = 30, tol: float = 1e-4,
             x0: torch.Tensor | None = None, reference: torch.Tensor | None = None, cg_rtol: float = 1e-6,
             cg_maxiter: int = 100, callback: Callable | None = None, patience: int | None = None) -> PnPResult:
    """Plug-and-play ADMM (scaled form).

    ``x = argmin (w/2)||A x - y||^2 + (rho/2)||x - (z - u)||^2`` (by CG on
    ``w A^T A + rho I``), ``z = D(x + u)``, ``u = u + x - z``.

    Parameters
    ----------
    A : LinearOperator ``(m, H W)``
    y : (m,) tensor
        Measurements, on ``A``'s device and dtype.
    denoiser : callable ``(H, W) -> (H, W)``
        The prox (:func:`lpn_denoiser`, :func:`tv_denoiser`, ...).
    shape : (H, W)
    rho : float
        ADMM penalty; with a fixed denoiser it sets the balance between data and prior.
    data_weight : float
        ``w``, the weight of the data term.
    maxiter, tol : stop after ``maxiter`` iterations or when ``||z_{k+1} - z_k|| / ||z_k|| < tol``.
    x0 : (H, W) tensor, optional
        Initial image (default ``A^T y``).
    reference : (H, W) tensor, optional
        Ground truth, to record the PSNR of every iterate.
    callback : callable ``(k, z_k, relative_step)``, optional
    patience : int, optional
        Stop once ``||z_{k+1} - z_k|| / ||z_k||`` has risen in ``patience`` consecutive
        iterations and return the iterate of smallest relative step (default: off).

    Returns
    -------
    PnPResult
    """
    _check(A, y, shape)
    if rho <= 0:
        raise ValueError(f"the ADMM penalty rho must be positive, got {rho}")
    started = time.perf_counter()
    n = shape[0] * shape[1]
    system = data_weight * (A.T @ A) + rho * Identity(n, dtype=A.dtype, device=A.device)
    aty = data_weight * A.rmatvec(y)
    x = (A.rmatvec(y) if x0 is None else x0.reshape(-1)).clone()
    u = torch.zeros(shape, dtype=y.dtype, device=y.device)

    def admm_step(z: torch.Tensor) -> torch.Tensor:
        nonlocal x, u
        rhs = aty + rho * (z - u).reshape(-1)
        x = cg(system, rhs, x.reshape(-1), rtol=cg_rtol, maxiter=cg_maxiter, dtype=None).x.reshape(shape)
        z_new = denoiser(x + u)
        u = u + x - z_new
        return z_new
    return _iterate(admm_step, x.reshape(shape).clone(), _Monitor(A, y, reference, callback), _Guard(patience),
                    maxiter, tol, started)


def pnp_pgd(A: LinearOperator, y: torch.Tensor, denoiser: Denoiser, shape: tuple[int, int], *,
            step: float = 1.0, data_weight: float = 1.0, maxiter: int = 50, tol: float = 1e-4,
            x0: torch.Tensor | None = None, reference: torch.Tensor | None = None,
            callback: Callable | None = None, patience: int | None = None) -> PnPResult:
    """Plug-and-play proximal gradient descent: ``x = D(x - step * w A^T (A x - y))``.

    Parameters as for :func:`pnp_admm`; ``step`` is the gradient step (below ``2 / (w ||A||^2)``
    for a convergent gradient step; ``1 / (w ||A||^2)`` is the classical choice).
    """
    _check(A, y, shape)
    started = time.perf_counter()
    x = (A.rmatvec(y) if x0 is None else x0.reshape(-1)).reshape(shape).clone()

    def gradient_step(x: torch.Tensor) -> torch.Tensor:
        grad = data_weight * A.rmatvec(A.matvec(x.reshape(-1)) - y).reshape(shape)
        return denoiser(x - step * grad)
    return _iterate(gradient_step, x, _Monitor(A, y, reference, callback), _Guard(patience), maxiter, tol, started)


def _iterate(update: Callable[[torch.Tensor], torch.Tensor], iterate: torch.Tensor, monitor: _Monitor,
             guard: _Guard, maxiter: int, tol: float, started: float) -> PnPResult:
    """Apply ``update`` to the monitored iterate (ADMM's ``z``, PGD's ``x``) until its relative step
    falls below ``tol``, ``maxiter`` is reached or ``guard`` sees it diverge."""
    converged, k, reason = False, 0, "maxiter"
    for k in range(1, maxiter + 1):
        new = update(iterate)
        rel = monitor.record(k, new, iterate)
        iterate = new
        if rel < tol:
            converged, reason = True, "tol"
            break
        if guard.update(k, rel, iterate):
            reason = "diverging"
            break
    iterate, returned = guard.result(k, iterate, reason)
    return PnPResult(iterate, k, converged, monitor.history, time.perf_counter() - started, reason, returned)
