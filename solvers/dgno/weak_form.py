"""Weak-form residuals of ``-div(a grad u) = f`` with Wendland compactly supported RBF test functions.

A test function is ``v_j(x) = phi(|x - c_j| / R)`` with the Wendland function
``phi(r) = (1 - r)^(l+2) [(l^2 + 4l + 3) r^2 + (3l + 6) r + 3] / 3``, ``l = floor(d/2) + 3``
(C^4, support radius ``R``). Since ``v_j`` vanishes with its gradient on ``|x - c_j| = R``,
integration by parts over the ball gives the residual (divided by the ball's area)

    r_j = mean_{B(c_j, R)} ( s . grad v_j - f v_j ),   s = a grad u   (primal) or the flux (mixed),

which is zero for the exact solution; only first derivatives of ``u`` are needed. The centres
are redrawn every batch (Latin hypercube in ``[R, 1-R]^2``) and the integral uses a local
quadrature on the unit disk, the same for every centre:

* ``"grid"`` -- the authors' rule: an ``n x n`` grid on ``[-1, 1]^2`` restricted to the open disk
  (``n = 7`` gives 25 points), equal weights;
* ``"polar"`` -- Gauss-Legendre in the radius times the trapezoid rule in the angle (accurate).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = [
    "WendlandTestFunctions",
    "gradient",
    "latin_hypercube",
    "weak_residual",
    "weak_residual_elementwise",
    "wendland",
]


def wendland(r: np.ndarray | torch.Tensor, dim: int = 2):
    """Wendland CSRBF ``phi(r)`` and ``phi'(r)`` for ``0 <= r`` (zero for ``r >= 1``)."""
    ell = dim // 2 + 3
    lib = torch if isinstance(r, torch.Tensor) else np
    s = lib.clip(1.0 - r, 0.0, None)
    A, B = (ell + 1) * (ell + 3), 3 * (ell + 2)
    p = A * r ** 2 + B * r + 3.0
    phi = s ** (ell + 2) * p / 3.0
    dphi = s ** (ell + 1) * (-(ell + 2) * p + s * (2 * A * r + B)) / 3.0
    return phi, dphi


def _disk_rule(quadrature: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``(Q, 2)`` in the unit disk and weights ``(Q,)`` summing to 1 (a mean over the disk)."""
    if quadrature == "grid":
        t = np.linspace(-1.0, 1.0, n)
        X, Y = np.meshgrid(t, t, indexing="ij")
        nodes = np.stack([X.ravel(), Y.ravel()], 1)
        nodes = nodes[np.linalg.norm(nodes, axis=1) < 1.0 - 1e-12]
        return nodes, np.full(len(nodes), 1.0 / len(nodes))
    if quadrature == "polar":
        x, w = np.polynomial.legendre.leggauss(n)
        r, wr = (x + 1) / 2, w / 2
        n_theta = 2 * n
        th = 2 * np.pi * np.arange(n_theta) / n_theta
        R, TH = np.meshgrid(r, th, indexing="ij")
        nodes = np.stack([(R * np.cos(TH)).ravel(), (R * np.sin(TH)).ravel()], 1)
        weights = (wr[:, None] * r[:, None] * np.full((1, n_theta), 2 * np.pi / n_theta)).ravel() / np.pi
        return nodes, weights
    raise ValueError(f"unknown quadrature {quadrature!r}; use 'grid' (the paper's) or 'polar'")


def latin_hypercube(n: int, dim: int, generator: torch.Generator | None = None, low: float = 0.0,
                    high: float = 1.0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``n`` Latin-hypercube points ``(n, dim)`` in ``[low, high]^dim`` (one per stratum and axis)."""
    cols = []
    for _ in range(dim):
        perm = torch.randperm(n, generator=generator)
        jitter = torch.rand(n, generator=generator, dtype=torch.float64)
        cols.append((perm + jitter) / n)
    return (low + (high - low) * torch.stack(cols, 1)).to(dtype)


class WendlandTestFunctions:
    """Compactly supported test functions of radius ``radius`` and their local quadrature.

    Parameters
    ----------
    radius : float
        Support radius ``R`` of every test function.
    quadrature : {"grid", "polar"}
        ``"grid"`` is the authors' rule (``n_quad = 7``: 25 points).
    n_quad : int
        Grid points per side (``"grid"``) or radial Gauss points (``"polar"``, with ``2 n_quad`` angles).

    Attributes
    ----------
    nodes : (Q, 2) float64 array, quadrature nodes in the unit disk
    weights : (Q,) float64 array, summing to 1
    v : (Q,) values of ``phi`` at the nodes
    grad_v : (Q, 2) gradient of ``v_j`` at ``c_j + R * nodes`` (includes the ``1/R``)
    """

    def __init__(self, radius: float = 0.05, quadrature: str = "grid", n_quad: int = 7) -> None:
        if not 0.0 < radius < 0.5:
            raise ValueError(f"radius={radius} must be in (0, 0.5) so the support fits in the unit square")
        self.radius, self.quadrature, self.n_quad = float(radius), quadrature, n_quad
        self.nodes, self.weights = _disk_rule(quadrature, n_quad)
        rho = np.linalg.norm(self.nodes, axis=1)
        phi, dphi = wendland(rho)
        unit = np.divide(self.nodes, rho[:, None], out=np.zeros_like(self.nodes), where=rho[:, None] > 0)
        self.v = phi
        self.grad_v = dphi[:, None] * unit / self.radius

    def sample_centres(self, n: int, generator: torch.Generator | None = None,
                       dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
        """``n`` centres ``(n, 2)`` by Latin hypercube in ``[R, 1 - R]^2``."""
        return latin_hypercube(n, 2, generator, self.radius, 1.0 - self.radius, dtype).to(device)

    def evaluate(self, x: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``v(x)`` ``(M,)`` and ``grad v(x)`` ``(M, 2)`` of the test function centred at ``centre : (2,)``."""
        d = (np.asarray(x) - np.asarray(centre)) / self.radius
        rho = np.linalg.norm(d, axis=-1)
        phi, dphi = wendland(np.minimum(rho, 1.0))
        unit = np.divide(d, rho[..., None], out=np.zeros_like(d), where=rho[..., None] > 0)
        return phi, dphi[..., None] * unit / self.radius

    def points(self, centres: torch.Tensor) -> torch.Tensor:
        """Quadrature points ``(..., n, Q, 2)`` of the centres ``(..., n, 2)``."""
        nodes = torch.as_tensor(self.nodes, dtype=centres.dtype, device=centres.device)
        return centres[..., :, None, :] + self.radius * nodes

    def tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(weights (Q,), v (Q,), grad_v (Q, 2))`` with the dtype and device of ``like``."""
        kw = {"dtype": like.dtype, "device": like.device}
        return (torch.as_tensor(self.weights, **kw), torch.as_tensor(self.v, **kw),
                torch.as_tensor(self.grad_v, **kw))


def weak_residual(flux: torch.Tensor, f: torch.Tensor, tests: WendlandTestFunctions) -> torch.Tensor:
    """``r_j = sum_q w_q (flux_jq . grad v_q - f_jq v_q)`` for every centre.

    Parameters
    ----------
    flux : (..., n, Q, 2)
        ``a grad u`` (or the flux variable) at :meth:`WendlandTestFunctions.points`.
    f : (..., n, Q) or scalar
        Source at the same points.

    Returns
    -------
    r : (..., n)
        The residuals, normalised by the ball's area.
    """
    w, v, gv = tests.tensors(flux)
    if flux.shape[-2:] != gv.shape:
        raise ValueError(f"flux has trailing shape {tuple(flux.shape[-2:])}, expected {tuple(gv.shape)} "
                         "(quadrature points x 2); evaluate it at tests.points(centres)")
    return ((flux * gv).sum(-1) - f * v) @ w


def gradient(u_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``u = u_fn(x)`` and ``grad u`` (same shape as ``x``) by autograd, keeping the graph."""
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    u = u_fn(x)
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    return u, g




def weak_residual_elementwise(points: np.ndarray, weights: np.ndarray, flux: np.ndarray, f: float,
                              tests: WendlandTestFunctions, centres: np.ndarray) -> np.ndarray:
    """Weak residuals of a finite-element field, integrated element by element.

    ``r_j = (1 / (pi R^2)) * sum_e sum_g w_eg (flux_e . grad v_j(x_eg) - f v_j(x_eg))``. Used to
    check FEM solutions: a piecewise-constant flux makes the local disk rule of
    :class:`WendlandTestFunctions` inaccurate, while ``grad v_j`` is smooth on each element.

    Parameters
    ----------
    points : (E, G, 2) quadrature points of every element
    weights : (E, G) quadrature weights (including the Jacobian)
    flux : (E, 2) ``a grad u_h`` on every element (constant for P1 and piecewise-constant ``a``)
    f : float
        Constant source.
    centres : (n, 2)

    Returns
    -------
    r : (n,) float64 array, normalised by the ball's area like :func:`weak_residual`.
    """
    pts = points.reshape(-1, 2)
    w = weights.reshape(-1)
    fl = np.repeat(flux, points.shape[1], axis=0)
    out = np.empty(len(centres))
    R = tests.radius
    for j, c in enumerate(np.asarray(centres, dtype=np.float64)):
        near = np.all(np.abs(pts - c) < R, axis=1)
        v, gv = tests.evaluate(pts[near], c)
        out[j] = ((fl[near] * gv).sum(1) - f * v) @ w[near] / (np.pi * R ** 2)
    return out
