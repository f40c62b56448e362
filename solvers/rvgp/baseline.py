"""The peer every RVGP claim is measured against: a component-wise Euclidean RBF GP.

Each ambient component ``a`` of the field is an independent exact GP on the ambient
coordinates with its own RBF length scale, output scale and noise, tuned by maximising the
exact marginal likelihood (scipy L-BFGS-B, dense Cholesky, O(n^3): meant for up to a few thousand
training points) from several starting length scales; the best optimum is kept.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from solvers.rvgp.optim import minimize_lbfgsb

__all__ = ["EuclideanGP"]


class EuclideanGP:
    """Independent RBF GPs per ambient component, hyperparameters by marginal likelihood.

    Parameters
    ----------
    lengthscales : sequence of float, optional
        Starting length scales (default: 2, 8 and 32 times the median nearest-neighbour
        spacing of the training points).
    max_iter : int
        L-BFGS-B iterations per start.
    device, dtype
    """

    def __init__(self, lengthscales=None, max_iter: int = 100, device="cpu", dtype: torch.dtype = torch.float64):
        self.lengthscales, self.max_iter = lengthscales, max_iter
        self.device, self.dtype = torch.device(device), dtype

    def _kernel(self, a, b, log_ell, log_sf):
        d2 = torch.cdist(a, b) ** 2                              # (n, m)
        ell2 = torch.exp(2 * log_ell)[:, None, None]            # (D, 1, 1)
        return torch.exp(2 * log_sf)[:, None, None] * torch.exp(-0.5 * d2[None] / ell2)

    def _nlml(self, params):
        log_ell, log_sf, log_sn = params
        k = self._kernel(self.x, self.x, log_ell, log_sf)
        k = k + (torch.exp(2 * log_sn) + 1e-8)[:, None, None] * torch.eye(len(self.x), dtype=self.dtype,
                                                                          device=self.device)
        chol, info = torch.linalg.cholesky_ex(k)
        if int(info.max()) > 0:
            return None, None
        alpha = torch.cholesky_solve(self.y.T[:, :, None], chol)     # (D, n, 1)
        nlml = 0.5 * (self.y.T[:, :, None] * alpha).sum() + torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum()
        return nlml / self.y.numel() + 0.5 * math.log(2 * math.pi), (chol, alpha)

    def fit(self, points, vectors) -> EuclideanGP:
        """Fit to vectors ``(n, D)`` observed at ``points`` ``(n, P)``."""
        self.x = torch.as_tensor(np.asarray(points), dtype=self.dtype, device=self.device)
        y = torch.as_tensor(np.asarray(vectors), dtype=self.dtype, device=self.device)
        self.mean = y.mean(0)
        self.scale = y.std(0).clamp_min(1e-12)
        self.y = (y - self.mean) / self.scale
        dim = self.y.shape[1]
        if self.lengthscales is None:
            nn = torch.cdist(self.x, self.x).fill_diagonal_(float("inf")).min(1).values.median()
            starts = [2 * float(nn), 8 * float(nn), 32 * float(nn)]
        else:
            starts = list(self.lengthscales)
        best = None
        for ell in starts:
            params = [torch.full((dim,), math.log(v), dtype=self.dtype, device=self.device, requires_grad=True)
                      for v in (ell, 1.0, 0.1)]
            minimize_lbfgsb(lambda params=params: self._nlml(params)[0], params, self.max_iter)
            with torch.no_grad():
                loss, factors = self._nlml(params)
            if loss is not None and torch.isfinite(loss) and (best is None or float(loss) < best[0]):
                best = (float(loss), [p.detach().clone() for p in params], factors)
        if best is None:
            raise RuntimeError("the Euclidean GP found no positive-definite kernel; check for duplicate points")
        self.nlml, self.params, (self.chol, self.alpha) = best
        return self

    @torch.no_grad()
    def predict(self, points) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(m, D)`` and variance summed over components ``(m,)`` at ``points`` ``(m, P)``."""
        xs = torch.as_tensor(np.asarray(points), dtype=self.dtype, device=self.device)
        log_ell, log_sf, _ = self.params
        ks = self._kernel(xs, self.x, log_ell, log_sf)                          # (D, m, n)
        mean = (ks @ self.alpha)[..., 0].T * self.scale + self.mean
        v = torch.linalg.solve_triangular(self.chol, ks.transpose(1, 2), upper=False)
        var = (torch.exp(2 * log_sf)[:, None] - (v**2).sum(1)).clamp_min(0) * self.scale[:, None] ** 2
        return mean, var.sum(0)

    def hyperparameters(self) -> dict:
        """Fitted length scales, output scales and noise standard deviations per component (scaled data)."""
        log_ell, log_sf, log_sn = self.params
        return {"lengthscale": torch.exp(log_ell).tolist(), "outputscale": torch.exp(log_sf).tolist(),
                    "noise": torch.exp(log_sn).tolist()}
