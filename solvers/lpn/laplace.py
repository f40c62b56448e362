"""The paper's 1-D experiment: Laplacian signals, where the ideal prox is soft-thresholding."""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["laplace_sampler", "soft_threshold"]


def laplace_sampler(scale: float = 1.0) -> Callable[[int, torch.Generator], torch.Tensor]:
    """Draw ``count`` Laplace(0, ``scale``) samples as ``(count, 1, 1, 1)`` float64 tensors."""
    def sample(count: int, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand(count, generator=generator, dtype=torch.float64) - 0.5
        x = -scale * torch.sign(u) * torch.log1p(-2 * u.abs())
        return x.reshape(count, 1, 1, 1)
    return sample


def soft_threshold(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """``sign(x) max(|x| - threshold, 0)``: the prox of ``threshold |x|``."""
    return torch.sign(x) * (x.abs() - threshold).clamp_min(0)


def evaluate_laplace(model, lo: float = -4.0, hi: float = 4.0, points: int = 401, threshold: float = 1.0,
                     r_points: int = 81) -> dict:
    """Compare a 1-D LPN with soft-thresholding on ``[lo, hi]`` and its ``R`` with ``|x|``.

    For Laplace(0, b) signals in Gaussian noise of standard deviation ``sigma`` the MAP
    denoiser is soft-thresholding at ``sigma^2 / b`` (``threshold``; 1 for the paper's b = sigma = 1),
    i.e. the prox of ``threshold |x|``.

    Parameters
    ----------
    model : LPN
        A per-pixel (``kernel_size=1``) network; evaluated in float64 on a copy.
    points : int
        Grid points for the prox comparison.
    r_points : int
        Grid points for the regulariser (each needs an inversion of the prox).

    Returns
    -------
    dict
        ``sup_error`` (max |f(x) - soft(x)|), ``mean_error``, ``r_correlation`` (Pearson
        correlation of ``R`` with ``threshold |x|`` on the grid), ``r_max_abs_error`` (after
        removing the best constant offset), ``inversion_residual`` (largest), and the curves.
    """
    import copy

    from solvers.lpn.prior import regulariser
    net = copy.deepcopy(model).double().cpu().eval()
    x = torch.linspace(lo, hi, points, dtype=torch.float64)
    with torch.no_grad():
        fx = net(x.reshape(-1, 1, 1, 1)).reshape(-1)
    target = soft_threshold(x, threshold)
    err = (fx - target).abs()
    xr = torch.linspace(lo, hi, r_points, dtype=torch.float64)
    # R is a sum over pixels: one image of r_points pixels inverts all points at once
    r, inv = regulariser(net, xr.reshape(1, 1, 1, -1), maxiter=2000, tol=1e-7)
    # per-point R: psi is separable, so evaluate the pointwise formula on the inverted y
    y = inv.y.reshape(-1, 1, 1, 1)
    with torch.no_grad():
        r_point = y.reshape(-1) * xr - 0.5 * xr**2 - net.psi(y)
        pointwise_residual = (net(y).reshape(-1) - xr).abs().max()
    ideal = threshold * xr.abs()
    corr = float(torch.corrcoef(torch.stack([r_point, ideal]))[0, 1])
    offset = float((r_point - ideal).mean())
    return {"sup_error": float(err.max()), "mean_error": float(err.mean()), "r_correlation": corr,
            "r_max_abs_error": float((r_point - offset - ideal).abs().max()),
            "inversion_residual": float(pointwise_residual), "x": x.tolist(), "prox": fx.tolist(),
            "soft_threshold": target.tolist(), "r_x": xr.tolist(), "r": (r_point - r_point.min()).tolist()}
