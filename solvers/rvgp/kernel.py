"""The RVGP kernel: a spectral filter of the connection Laplacian, as a gpytorch kernel.

With eigenpairs ``(lambda_l, u_l)`` of the connection Laplacian (``u_l`` of length ``N d``,
frame coordinates) and frames ``T_i`` ``(D, d)``, the features of the ambient row
``r = i D + a`` (component ``a`` of the vector at point ``i``) are

    phi_r = T_i[a, :] @ U_i,     U_i = rows i d .. i d + d - 1 of U,   shape (k,),

and the kernel is ``K = sigma_f^2 Phi diag(S) Phi^T`` (rank ``k``). Spectral filters:

* Matern (RVGP): ``S_l = (2 nu / kappa^2 + lambda_l)^(-nu)``; ``variant="geometric"`` uses the
  exponent ``-nu - d/2`` of GeometricKernels (the Matern kernel of a ``d``-manifold);
* squared exponential: ``S_l = exp(-kappa^2 lambda_l / 2)``.

``S`` is normalised to ``sum(S) = N d``, so the prior variance per tangent direction averages
``sigma_f^2`` over the points. Inputs ``x`` are ``(n, 1)`` float tensors holding the row
indices ``r`` (the convention of GeometricKernels' gpytorch frontend).
"""
from __future__ import annotations

import math

import gpytorch
import torch
from gpytorch.constraints import GreaterThan
from linear_operator.operators import LowRankRootLinearOperator, MatmulLinearOperator

__all__ = ["FILTERS", "VARIANTS", "RVGPKernel", "spectral_filter"]

FILTERS = ("matern", "se")
VARIANTS = ("rvgp", "geometric")


def spectral_filter(eigenvalues: torch.Tensor, kind: str, kappa: torch.Tensor, nu: torch.Tensor | None = None,
                    dim: int = 2, variant: str = "rvgp") -> torch.Tensor:
    """Logarithm of the unnormalised spectral density, ``log S(lambda)``, ``(k,)``.

    Parameters
    ----------
    eigenvalues : (k,)
        Connection-Laplacian eigenvalues (clamped at 0).
    kind : {"matern", "se"}
    kappa : scalar tensor
        Length scale.
    nu : scalar tensor
        Matern smoothness.
    dim : int
        Manifold dimension (used by ``variant="geometric"``).
    variant : {"rvgp", "geometric"}
    """
    lam = eigenvalues.clamp_min(0)
    if kind == "se":
        return -0.5 * kappa**2 * lam
    if kind != "matern":
        raise ValueError(f"unknown spectral filter {kind!r}; choose one of {FILTERS}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown Matern variant {variant!r}; choose one of {VARIANTS}")
    exponent = nu if variant == "rvgp" else nu + 0.5 * dim
    return -exponent * torch.log(2 * nu / kappa**2 + lam)


class RVGPKernel(gpytorch.kernels.Kernel):
    """``sigma_f^2 Phi diag(S) Phi^T`` on ambient-component rows (see the module docstring).

    Parameters
    ----------
    eigenvalues : (k,)
    eigenvectors : (N d, k)
        Orthonormal eigenvectors, point-major rows (``i d + c``).
    frames : (N, D, d)
    kind : {"matern", "se"}
    nu, kappa, outputscale : float
        Initial hyperparameters (RVGP: 3/2, 5, 1), all learnable (``nu`` only for Matern;
        ``learn_nu=False`` fixes it).
    variant : {"rvgp", "geometric"}
    floor : float
        Lower bound of ``nu``, ``kappa`` and ``outputscale`` (RVGP: 1e-2).
    """

    has_lengthscale = False

    def __init__(self, eigenvalues: torch.Tensor, eigenvectors: torch.Tensor, frames: torch.Tensor,
                 kind: str = "matern", nu: float = 1.5, kappa: float = 5.0, outputscale: float = 1.0,
                 variant: str = "rvgp", learn_nu: bool = True, floor: float = 1e-2, **kwargs):
        super().__init__(**kwargs)
        if kind not in FILTERS:
            raise ValueError(f"unknown spectral filter {kind!r}; choose one of {FILTERS}")
        n, _, d = frames.shape
        if eigenvectors.shape[0] != n * d or eigenvalues.shape[0] != eigenvectors.shape[1]:
            raise ValueError(f"eigenvectors {tuple(eigenvectors.shape)} and eigenvalues {tuple(eigenvalues.shape)} "
                             f"do not match frames {tuple(frames.shape)}: need (N d, k) = ({n * d}, k) and (k,)")
        if eigenvectors.device != frames.device or eigenvectors.dtype != frames.dtype:
            raise ValueError(f"eigenvectors are {eigenvectors.dtype} on {eigenvectors.device} but frames are "
                             f"{frames.dtype} on {frames.device}; move both to one device and dtype")
        self.kind, self.variant, self.learn_nu = kind, variant, learn_nu
        self.register_buffer("eigenvalues", eigenvalues)
        self.register_buffer("eigenvectors", eigenvectors.reshape(n, d, -1))
        self.register_buffer("frames", frames)
        for name, value in (("kappa", kappa), ("nu", nu), ("outputscale", outputscale)):
            constraint = GreaterThan(floor)
            self.register_parameter(f"raw_{name}", torch.nn.Parameter(
                torch.tensor(constraint.inverse_transform(torch.tensor(float(value))).item(), dtype=frames.dtype,
                             device=frames.device)))
            self.register_constraint(f"raw_{name}", constraint)
        if not learn_nu or kind == "se":
            self.raw_nu.requires_grad_(False)

    # -- hyperparameters --------------------------------------------------------------------
    @property
    def kappa(self) -> torch.Tensor:
        return self.raw_kappa_constraint.transform(self.raw_kappa)

    @property
    def nu(self) -> torch.Tensor:
        return self.raw_nu_constraint.transform(self.raw_nu)

    @property
    def outputscale(self) -> torch.Tensor:
        return self.raw_outputscale_constraint.transform(self.raw_outputscale)

    @property
    def n_points(self) -> int:
        return self.frames.shape[0]

    @property
    def dim(self) -> int:
        return self.frames.shape[2]

    def spectrum(self) -> torch.Tensor:
        """Prior variances of the eigen-coefficients, ``sigma_f^2 S_l`` normalised (``(k,)``)."""
        log_s = spectral_filter(self.eigenvalues, self.kind, self.kappa, self.nu, self.dim, self.variant)
        log_s = log_s - torch.logsumexp(log_s, 0) + math.log(self.n_points * self.dim)
        return self.outputscale * torch.exp(log_s)

    # -- features -----------------------------------------------------------------------
    def features(self, rows: torch.Tensor) -> torch.Tensor:
        """``Phi`` of ambient rows ``r = i D + a``: ``(..., n)`` int -> ``(..., n, k)``."""
        dim_ambient = self.frames.shape[1]
        point, comp = rows // dim_ambient, rows % dim_ambient
        return torch.einsum("...c,...ck->...k", self.frames[point, comp], self.eigenvectors[point])

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 1:
            raise ValueError(f"RVGPKernel inputs are (n, 1) row indices i*D + a, got shape {tuple(x.shape)}")
        return x[..., 0].round().long()

    def forward(self, x1, x2, diag: bool = False, last_dim_is_batch: bool = False, **params):
        if last_dim_is_batch:
            raise ValueError("RVGPKernel does not support last_dim_is_batch; use a batch of index inputs instead")
        root = self.spectrum().sqrt()
        f1 = self.features(self._rows(x1)) * root
        if diag:
            f2 = f1 if x2 is x1 else self.features(self._rows(x2)) * root
            return (f1 * f2).sum(-1)
        if x1 is x2 or (x1.shape == x2.shape and torch.equal(x1, x2)):
            return LowRankRootLinearOperator(f1)
        f2 = self.features(self._rows(x2)) * root
        return MatmulLinearOperator(f1, f2.transpose(-1, -2))
