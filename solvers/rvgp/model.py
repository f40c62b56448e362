"""RVGP with exact low-rank inference (Woodbury): cost linear in the number of points.

The kernel ``K = Phi diag(s) Phi^T`` has rank ``k`` (the number of eigenpairs), so the GP is
the Bayesian linear model ``y = Phi w + eps``, ``w ~ N(0, diag(s))``, ``eps ~ N(0, sigma^2 I)``.
With ``G = Phi_t^T Phi_t`` and ``b = Phi_t^T y`` over the ``n D`` training rows,
``B = I + s^{1/2} G s^{1/2} / sigma^2`` (``k x k``, eigenvalues >= 1, ``B = L L^T``):

* ``log|K + sigma^2 I| = log|B| + n D log sigma^2`` (determinant lemma),
* ``y^T (K + sigma^2 I)^{-1} y = (y^T y - |L^{-1} s^{1/2} b|^2 / sigma^2) / sigma^2`` (Woodbury),
* posterior ``w | y ~ N(s^{1/2} B^{-1} s^{1/2} b / sigma^2, s^{1/2} B^{-1} s^{1/2})``.

``G``, ``b`` and ``y^T y`` do not depend on the hyperparameters: one O(n D k^2) pass, then
every marginal-likelihood evaluation costs O(k^3). This is exact GP inference, identical to
gpytorch's ``ExactGP`` with :class:`~solvers.rvgp.kernel.RVGPKernel` (tested), at any ``N``.
Frames are orthonormal, so ``Phi_i^T Phi_i = U_i^T U_i`` and ``Phi_i^T y_i = U_i^T T_i^T y_i``:
``Phi`` is never formed.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import gpytorch
import numpy as np
import torch
from gpytorch.constraints import GreaterThan

from geometry.manifold import ManifoldGraph
from solvers.rvgp.kernel import RVGPKernel
from solvers.rvgp.optim import minimize_lbfgsb
from solvers.rvgp.spectrum import connection_eigenpairs

__all__ = ["RVGP", "Prediction"]

logger = logging.getLogger(__name__)


@dataclass
class Prediction:
    """Posterior of the field at some points.

    Attributes
    ----------
    mean : (n, D) tensor
        Ambient vectors, tangent to the frames.
    variance : (n,) tensor
        Trace of the posterior covariance of the vector (sum over tangent directions).
    frame_mean : (n, d) tensor
        The mean in frame coordinates.
    frame_variance : (n, d) tensor
        Posterior variance of each frame coordinate.
    """

    mean: torch.Tensor
    variance: torch.Tensor
    frame_mean: torch.Tensor
    frame_variance: torch.Tensor


class RVGP(torch.nn.Module):
    """Gaussian process for tangent vector fields on a sampled manifold (Peach et al. 2024).

    Parameters
    ----------
    manifold : ManifoldGraph
        All points (training and prediction) with their frames and transport.
    n_eigenpairs : int
        Rank ``k`` of the kernel (RVGP examples: 100).
    kind : {"matern", "se"}
    nu, kappa, outputscale, noise : float
        Initial hyperparameters (RVGP: 3/2, 5, 1; ``noise`` is ``sigma^2`` relative to the
        scaled data).
    variant : {"rvgp", "geometric"}
        Matern exponent ``-nu`` (paper) or ``-nu - d/2``.
    normalization : {None, "sym"}
        Connection-Laplacian normalisation (paper: None).
    eig_method : str
        ``sciml.linalg.eigsh`` method; ``"auto"`` factorises on the CPU (shift-invert).
    device, dtype
        Where the GP lives (the eigenpairs are moved there).
    eigenpairs : (values (k,), vectors (N d, k)), optional
        Precomputed eigenpairs (skips the eigensolve).
    """

    def __init__(self, manifold: ManifoldGraph, n_eigenpairs: int = 100, kind: str = "matern", nu: float = 1.5,
                 kappa: float = 5.0, outputscale: float = 1.0, noise: float = 1e-2, variant: str = "rvgp",
                 normalization: str | None = None, eig_method: str = "auto", device="cpu",
                 dtype: torch.dtype = torch.float64, learn_nu: bool = True,
                 eigenpairs: tuple[torch.Tensor, torch.Tensor] | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.manifold = manifold
        start = time.perf_counter()
        if eigenpairs is None:
            eigenpairs = connection_eigenpairs(manifold, n_eigenpairs, normalization=normalization,
                                               method=eig_method, device=device, generator=generator)
        values, vectors = (t.to(device=device, dtype=dtype) for t in eigenpairs)
        self.eig_seconds = time.perf_counter() - start
        frames = torch.as_tensor(manifold.frames, dtype=dtype, device=device)
        self.kernel = RVGPKernel(values, vectors, frames, kind=kind, nu=nu, kappa=kappa, outputscale=outputscale,
                                 variant=variant, learn_nu=learn_nu)
        self.likelihood = gpytorch.likelihoods.GaussianLikelihood(noise_constraint=GreaterThan(1e-8)).to(
            device=device, dtype=dtype)
        self.likelihood.noise = noise
        self._data = None

    # -- construction helpers -----------------------------------------------------------------
    @classmethod
    def from_points(cls, points, dim: int | None = None, k: int = 10, k_pca: int = 15, frames: str = "pca",
                    **kwargs) -> RVGP:
        """Build the geometry of ``points`` ``(N, D)`` (:meth:`ManifoldGraph.from_points`) and the GP.

        ``frames="pca"`` is RVGP's local PCA; ``"jet"`` refines it by a local quadratic fit.
        """
        return cls(ManifoldGraph.from_points(points, dim=dim, k=k, k_pca=k_pca, frames=frames), **kwargs)

    @classmethod
    def from_mesh(cls, mesh, k: int | None = None, frames: str = "normals", **kwargs) -> RVGP:
        """GP on the vertices of a trimesh mesh (:meth:`ManifoldGraph.from_mesh`)."""
        return cls(ManifoldGraph.from_mesh(mesh, k=k, frames=frames), **kwargs)

    @property
    def device(self) -> torch.device:
        return self.kernel.frames.device

    @property
    def dtype(self) -> torch.dtype:
        return self.kernel.frames.dtype

    def rows(self, index) -> torch.Tensor:
        """gpytorch inputs ``(n D, 1)`` (row indices ``i D + a``) of the points ``index`` ``(n,)``."""
        idx = torch.as_tensor(np.asarray(index) if not torch.is_tensor(index) else index, device=self.device).long()
        dim_ambient = self.kernel.frames.shape[1]
        r = idx[:, None] * dim_ambient + torch.arange(dim_ambient, device=self.device)
        return r.reshape(-1, 1).to(self.dtype)

    # -- training -------------------------------------------------------------------------------
    def set_data(self, train_index, vectors) -> RVGP:
        """Condition on ambient vectors ``(n, D)`` at points ``train_index`` ``(n,)`` (no hyperparameter fit)."""
        idx = torch.as_tensor(np.asarray(train_index.cpu() if torch.is_tensor(train_index) else train_index),
                              device=self.device).long()
        y = torch.as_tensor(vectors.detach() if torch.is_tensor(vectors) else np.asarray(vectors)).to(
            device=self.device, dtype=self.dtype)
        n, dim_ambient = y.shape
        if idx.shape != (n,) or dim_ambient != self.kernel.frames.shape[1]:
            raise ValueError(f"train_index {tuple(idx.shape)} and vectors {tuple(y.shape)} must be (n,) and "
                             f"(n, {self.kernel.frames.shape[1]})")
        if len(torch.unique(idx)) != n:
            raise ValueError("train_index has repeated points; pass each training point once")
        scale = float(torch.sqrt((y**2).sum() / (n * self.kernel.dim)))
        if not scale > 0:
            raise ValueError("all training vectors are zero; nothing to fit")
        y = y / scale
        u = self.kernel.eigenvectors[idx]                                     # (n, d, k)
        coords = torch.einsum("nad,na->nd", self.kernel.frames[idx], y)       # frame coordinates
        self._data = {"index": idx, "scale": scale, "gram": torch.einsum("ndk,ndl->kl", u, u),
                          "proj": torch.einsum("ndk,nd->k", u, coords), "yy": (y**2).sum(), "rows": n * dim_ambient}
        return self

    def _factor(self):
        s = self.kernel.spectrum()
        root = s.sqrt()
        noise = self.likelihood.noise.squeeze()
        data = self._data
        b_mat = torch.eye(len(s), dtype=s.dtype, device=s.device) + root[:, None] * data["gram"] * root[None, :] / noise
        chol = torch.linalg.cholesky(b_mat)
        return root, noise, chol

    def negative_log_marginal_likelihood(self) -> torch.Tensor:
        """``-log p(y)`` of the (scaled) training data per training row (exact, Woodbury)."""
        if self._data is None:
            raise RuntimeError("call fit(...) or set_data(...) first")
        data = self._data
        root, noise, chol = self._factor()
        z = torch.linalg.solve_triangular(chol, (root * data["proj"])[:, None], upper=False)[:, 0]
        quad = (data["yy"] - (z**2).sum() / noise) / noise
        logdet = 2 * torch.log(torch.diagonal(chol)).sum() + data["rows"] * torch.log(noise)
        return 0.5 * (quad + logdet + data["rows"] * math.log(2 * math.pi)) / data["rows"]

    def fit(self, train_index, vectors, *, optimize: bool = True, max_iter: int = 200,
            kappa_grid: bool = True) -> RVGP:
        """Condition on training vectors and fit the hyperparameters by exact marginal likelihood.

        Parameters
        ----------
        train_index : (n,) int
            Training points (indices into the manifold's points).
        vectors : (n, D)
            Observed ambient vectors (their normal parts are treated as noise).
        optimize : bool
            Fit ``kappa``, ``nu``, ``outputscale`` and the noise (scipy L-BFGS-B, as RVGP).
        max_iter : int
            L-BFGS-B iterations (RVGP: 1000).
        kappa_grid : bool
            Start L-BFGS from the best ``kappa`` of a log grid scaled to the spectrum (our
            addition; ``False`` starts from the given ``kappa`` as the paper does).
        """
        self.set_data(train_index, vectors)
        if not optimize:
            return self
        start = time.perf_counter()
        if kappa_grid:
            self._grid_kappa()
        params = [p for p in list(self.kernel.parameters()) + list(self.likelihood.parameters()) if p.requires_grad]
        minimize_lbfgsb(self.negative_log_marginal_likelihood, params, max_iter)
        self.fit_seconds = time.perf_counter() - start
        logger.info("RVGP fit: %s (%.2f s)", self.hyperparameters(), self.fit_seconds)
        return self

    @torch.no_grad()
    def _grid_kappa(self) -> None:
        lam = self.kernel.eigenvalues.clamp_min(0)
        scale = float(lam[lam > 0].median()) if (lam > 0).any() else 1.0
        best, best_raw = None, None
        for factor in np.logspace(-2, 2, 9):
            kappa = math.sqrt(2 * float(self.kernel.nu) / (scale * factor))
            self.kernel.raw_kappa.copy_(self.kernel.raw_kappa_constraint.inverse_transform(
                torch.tensor(kappa, dtype=self.dtype, device=self.device)))
            value = float(self.negative_log_marginal_likelihood())
            if np.isfinite(value) and (best is None or value < best):
                best, best_raw = value, self.kernel.raw_kappa.clone()
        if best_raw is not None:
            self.kernel.raw_kappa.copy_(best_raw)

    # -- prediction -----------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, index=None) -> Prediction:
        """Posterior mean (ambient, tangent to the frames) and variance at points ``index`` (default all)."""
        if self._data is None:
            raise RuntimeError("call fit(...) or set_data(...) before predict(...)")
        data = self._data
        root, noise, chol = self._factor()
        weights = root * torch.cholesky_solve((root * data["proj"])[:, None], chol)[:, 0] / noise
        if index is None:
            index = torch.arange(self.kernel.n_points, device=self.device)
        idx = torch.as_tensor(np.asarray(index.cpu() if torch.is_tensor(index) else index), device=self.device).long()
        u = self.kernel.eigenvectors[idx]                                    # (n, d, k)
        frame_mean = u @ weights * data["scale"]
        # covariance of w is root B^{-1} root = (L^{-1} root)^T (L^{-1} root)
        left = torch.linalg.solve_triangular(chol, torch.diag(root), upper=False)        # (k, k)
        frame_var = ((u @ left.T) ** 2).sum(-1) * data["scale"] ** 2                   # (n, d)
        mean = torch.einsum("nad,nd->na", self.kernel.frames[idx], frame_mean)
        return Prediction(mean=mean, variance=frame_var.sum(-1), frame_mean=frame_mean, frame_variance=frame_var)

    def hyperparameters(self) -> dict:
        """Current hyperparameters as floats (noise relative to the scaled data)."""
        with torch.no_grad():
            return {"kappa": float(self.kernel.kappa), "nu": float(self.kernel.nu),
                        "outputscale": float(self.kernel.outputscale), "noise": float(self.likelihood.noise)}
