"""Sparse variational RVGP: stochastic variational inference with the eigen-coefficients as inducing variables.

RVGP's SGPR option puts inducing points in input space (farthest-point sampling). For a
rank-``k`` kernel that is wasteful and ill-posed: ``m`` inducing points carry ``m D`` rows,
and ``K_mm`` is singular as soon as ``m D > k``. The natural inducing variables of
``K = Phi diag(s) Phi^T`` are the ``k`` coefficients ``w`` themselves (inter-domain inducing
features, as in variational Fourier features): ``q(w) = N(m, L L^T)``, and the ELBO

    sum_rows E_q log N(y_r | phi_r^T w, sigma^2) - KL(q(w) || N(0, diag(s)))

is estimated on mini-batches of rows (unbiased, scaled by ``rows / batch``) and maximised
with Adam jointly over ``m``, ``L`` and the kernel / noise hyperparameters of
:class:`~solvers.rvgp.model.RVGP`. Cost per step O(b k^2), memory O(b k + k^2), whatever
``N``; the optimum for a full batch is the exact posterior (tested).
"""
from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from solvers.rvgp.model import RVGP, Prediction

__all__ = ["VariationalRVGP"]

logger = logging.getLogger(__name__)


class VariationalRVGP(torch.nn.Module):
    """Mini-batch variational RVGP sharing the geometry, kernel and likelihood of an :class:`RVGP`.

    Parameters
    ----------
    gp : RVGP
        Its kernel and likelihood hyperparameters are learned in place.
    """

    def __init__(self, gp: RVGP):
        super().__init__()
        self.gp = gp
        k = gp.kernel.eigenvalues.shape[0]
        self.q_mean = torch.nn.Parameter(torch.zeros(k, dtype=gp.dtype, device=gp.device))
        self.q_raw_chol = torch.nn.Parameter(torch.zeros(k, k, dtype=gp.dtype, device=gp.device))

    def _q_chol(self) -> torch.Tensor:
        raw = torch.tril(self.q_raw_chol, -1)
        return raw + torch.diag(torch.exp(torch.diagonal(self.q_raw_chol)))

    def elbo(self, rows: torch.Tensor, targets: torch.Tensor, total_rows: int) -> torch.Tensor:
        """ELBO estimate per data row from a batch of ``rows`` ``(b,)`` with ``targets`` ``(b,)``."""
        kernel = self.gp.kernel
        s = kernel.spectrum()
        noise = self.gp.likelihood.noise.squeeze()
        # q over the whitened coefficients v = w / sqrt(s): q(v) = N(m, L L^T), p(v) = N(0, I)
        phi = kernel.features(rows) * s.sqrt()                          # (b, k)
        chol = self._q_chol()
        resid = targets - phi @ self.q_mean
        spread = ((phi @ chol) ** 2).sum(-1)
        expected = -0.5 * (math.log(2 * math.pi) + torch.log(noise)) - 0.5 * (resid**2 + spread) / noise
        kl = 0.5 * ((chol**2).sum() + (self.q_mean**2).sum() - len(s) - 2 * torch.log(torch.diagonal(chol)).sum())
        return expected.mean() - kl / total_rows

    def fit(self, train_index, vectors, *, steps: int = 500, batch_size: int = 1024, lr: float = 0.05,
            learn_hyperparameters: bool = True, generator: torch.Generator | None = None,
            progress: bool = False) -> VariationalRVGP:
        """Maximise the ELBO with Adam over ``steps`` mini-batches of ``batch_size`` rows.

        Parameters
        ----------
        train_index : (n,) int
        vectors : (n, D)
        steps, batch_size, lr
        learn_hyperparameters : bool
            Also learn ``kappa``, ``nu``, ``outputscale`` and the noise.
        generator : torch.Generator, optional
            Mini-batch order (a CPU generator; default seed 0).
        progress : bool
            tqdm bar.
        """
        gp = self.gp
        gp.set_data(train_index, vectors)                  # validation and the data scale
        idx, scale = gp._data["index"], gp._data["scale"]
        y = torch.as_tensor(vectors.detach().cpu().numpy() if torch.is_tensor(vectors) else np.asarray(vectors),
                            dtype=gp.dtype).to(gp.device) / scale
        rows = gp.rows(idx)[:, 0].long()
        targets = y.reshape(-1)
        params = [self.q_mean, self.q_raw_chol]
        if learn_hyperparameters:
            params += [p for p in list(gp.kernel.parameters()) + list(gp.likelihood.parameters()) if p.requires_grad]
        opt = torch.optim.Adam(params, lr=lr)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        batch_size = min(batch_size, len(targets))
        start = time.perf_counter()
        steps_iter = range(steps)
        if progress:
            from tqdm import tqdm
            steps_iter = tqdm(steps_iter, desc="RVGP SVI")
        for _ in steps_iter:
            batch = torch.randperm(len(targets), generator=gen)[:batch_size].to(gp.device)
            opt.zero_grad()
            loss = -self.elbo(rows[batch], targets[batch], len(targets))
            loss.backward()
            opt.step()
        self.scale, self.fit_seconds = scale, time.perf_counter() - start
        logger.info("RVGP SVI: %d steps, -ELBO/row %.4g, %.2f s", steps, float(loss.detach()), self.fit_seconds)
        return self

    @torch.no_grad()
    def predict(self, index=None) -> Prediction:
        """Posterior mean (ambient, tangent to the frames) and variance under ``q`` at points ``index``."""
        gp = self.gp
        kernel = gp.kernel
        if index is None:
            index = np.arange(kernel.n_points)
        idx = torch.as_tensor(np.asarray(index.cpu() if torch.is_tensor(index) else index), device=gp.device).long()
        root = kernel.spectrum().sqrt()
        u = kernel.eigenvectors[idx] * root                               # (n, d, k)
        frame_mean = u @ self.q_mean * self.scale
        frame_var = ((u @ self._q_chol()) ** 2).sum(-1) * self.scale**2
        mean = torch.einsum("nad,nd->na", kernel.frames[idx], frame_mean)
        return Prediction(mean=mean, variance=frame_var.sum(-1), frame_mean=frame_mean, frame_variance=frame_var)
