"""Latent-space tools for the DGNO inverse problem: an empirical latent prior and frozen decoders.

* :class:`LatentPrior` -- a Gaussian ``N(mu, L L^T)`` on the pre-tanh latent ``z``
  (``beta = tanh(z)``) fitted to the encodings of unlabelled training coefficients. The
  authors' code optimises ``beta`` with no prior (only its random start keeps it anywhere near
  the encoded latents); decoders evaluated far from the encodings give washed-out ``a``. The
  prior is this package's addition (selectable in :func:`solvers.dgno.inverse.solve_inverse`).
* :class:`FrozenDecoders` -- with frozen decoders the MultiONet trunk features depend only on
  the points, so they are computed once for the observation points and a pool of Wendland
  centres; each step then costs only the branch nets and inner products. The numbers are the
  same as :meth:`DGNO.u` and :meth:`DGNO.physics_loss` (tested).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["FrozenDecoders", "LatentPrior"]


@dataclass
class LatentPrior:
    """Gaussian prior on the pre-tanh latent ``z``: mean ``mean : (m,)``, Cholesky factor ``chol : (m, m)``."""

    mean: torch.Tensor
    chol: torch.Tensor

    @classmethod
    def fit(cls, model, a: torch.Tensor, jitter: float = 1e-4, chunk: int = 256) -> LatentPrior:
        """Fit to the encodings ``z = Enc(a)`` of coefficients ``a : (n, P, P)`` (``n > latent`` advised).

        ``jitter`` (relative to the mean variance) is added to the diagonal of the covariance.
        """
        p = next(model.parameters())
        a = torch.as_tensor(a, dtype=p.dtype, device=p.device)
        if a.shape[0] < 2:
            raise ValueError(f"LatentPrior.fit needs at least 2 coefficients, got {a.shape[0]}")
        with torch.no_grad():
            z = torch.cat([model.encode_z(a[i:i + chunk]) for i in range(0, a.shape[0], chunk)])
        z64 = z.double()
        cov = torch.cov(z64.T)
        cov = cov + jitter * cov.diagonal().mean() * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
        return cls(z64.mean(0).to(p.dtype), torch.linalg.cholesky(cov).to(p.dtype))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws ``(n, m)`` of ``z``."""
        eps = torch.randn(n, self.mean.shape[0], generator=generator, dtype=self.mean.dtype)
        return self.mean + eps.to(self.mean.device) @ self.chol.T

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """Negative log density up to a constant, ``0.5 |L^{-1}(z - mu)|^2`` per row ``(B,)``."""
        w = torch.linalg.solve_triangular(self.chol, (z - self.mean).T, upper=False)
        return 0.5 * (w ** 2).sum(0)


class FrozenDecoders:
    """Precomputed trunk features of a trained :class:`~solvers.dgno.model.DGNO`.

    Parameters
    ----------
    model : DGNO
        Its weights must not change while this object is used.
    x_obs : (n_obs, 2)
        Observation points.
    pool : (n_pool, 2)
        Wendland centres; :meth:`physics_loss` uses any subset of them.
    """

    def __init__(self, model, x_obs: torch.Tensor, pool: torch.Tensor) -> None:
        self.model = model
        c = model.config
        self.n_quad = len(model.tests.weights)
        with torch.no_grad():
            pts = model.points(pool)                                          # (n_pool * Q, 2)
            self.mask_obs = _mask(x_obs)[0]
            self.obs = model.u_decoder.trunk_features(x_obs)[0]
            self.mask, self.dmask = _mask(pts)
            self.u_t, self.u_j = model.u_decoder.trunk_features(pts, grad=True)
            self.a_t = model.a_decoder.trunk_features(pts)[0]
            self.s_t = ([dec.trunk_features(pts)[0] for dec in model.flux_decoders] if c.form == "mixed" else None)
        self.n_pool = pool.shape[0]

    def u_obs(self, beta: torch.Tensor) -> torch.Tensor:
        """``u(beta; x_obs) : (B, n_obs)`` (same as ``model.u(beta, x_obs)``)."""
        return self.mask_obs * self.model.u_decoder.forward_features(beta, self.obs)[0]

    def _take(self, feats: list[torch.Tensor], idx: torch.Tensor | slice) -> list[torch.Tensor]:
        q = self.n_quad
        if isinstance(idx, slice):  # a view: no copy
            start, stop, _ = idx.indices(self.n_pool)
            return [f[start * q:stop * q] for f in feats]
        return [f.reshape(self.n_pool, q, *f.shape[1:])[idx].reshape(len(idx) * q, *f.shape[1:]) for f in feats]

    def physics_loss(self, beta: torch.Tensor, idx: torch.Tensor | slice, a_at: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """``model.physics_loss(beta, a_at, pool[idx])`` ``(B,)`` (``a_at=None``: the decoded coefficient;
        ``idx``: indices, or a slice of consecutive centres, which is cheaper)."""
        from solvers.dgno.weak_form import weak_residual
        model, c = self.model, self.model.config
        mask, dmask = self._take([self.mask[:, None], self.dmask], idx)
        n, dn = model.u_decoder.forward_features(beta, self._take(self.u_t, idx), self._take(self.u_j, idx))
        grad = dmask * n[..., None] + mask * dn
        if a_at is None:
            raw = model.a_decoder.forward_features(beta, self._take(self.a_t, idx))[0]
            a_at = (c.low + (c.high - c.low) * torch.sigmoid(raw)) if c.kind == "two_phase" else torch.exp(raw)
        a = a_at
        a_grad_u = a[..., None] * grad
        B, n_c = beta.shape[0], mask.shape[0] // self.n_quad
        if self.s_t is None:
            r = weak_residual(a_grad_u.reshape(B, n_c, -1, 2), c.f, model.tests)
            return c.w_pde * (r ** 2).mean(-1)
        flux = torch.stack([dec.forward_features(beta, self._take(t, idx))[0]
                            for dec, t in zip(model.flux_decoders, self.s_t)], -1)
        r = weak_residual(flux.reshape(B, n_c, -1, 2), c.f, model.tests)
        mismatch = flux - a_grad_u
        return c.w_flux * (mismatch ** 2).sum(-1).mean(-1) + c.w_pde * math.sqrt(n_c) * (r ** 2).mean(-1)


def _mask(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``sin(pi x) sin(pi y)`` ``(N,)`` and its gradient ``(N, 2)``."""
    sx, sy = torch.sin(math.pi * x[:, 0]), torch.sin(math.pi * x[:, 1])
    cx, cy = torch.cos(math.pi * x[:, 0]), torch.cos(math.pi * x[:, 1])
    return sx * sy, math.pi * torch.stack([cx * sy, sx * cy], 1)
