"""Tangent frames of a point cloud by local PCA, and the manifold dimension they imply.

For every point the ``K`` nearest points (itself included) are centred on their mean and
decomposed; the frame ``T_i`` is the ``d`` leading principal directions, ``(D, d)`` with
orthonormal columns. RVGP collects the ``K`` neighbours by Dijkstra on the kNN graph; we use
the ``K`` Euclidean nearest neighbours (the same set wherever the sampling resolves the
manifold, and O(N K) work with no graph search).

The dimension ``d`` is either given or estimated: the explained-variance ratios of the
principal directions are averaged over all points and ``d`` is the smallest count whose
cumulative ratio reaches ``threshold`` (RVGP uses 0.8).

PCA (RVGP's choice, ``method="pca"``) gives the tangent plane at the neighbourhood's
*centroid*; with random sampling the point sits off-centre in its neighbourhood, so the
frame tilts by ``O(curvature x spacing)``: a few degrees at RVGP's sampling, which alone costs
a relative L2 error of ~4 % on a tangent field (measured on the torus and the flat torus in
R^4 at N = 2000). ``method="jet"`` (our addition) refines the PCA frame by fitting the
normal offsets of the neighbours as a quadratic polynomial of their tangent coordinates
(an osculating jet, Cazals & Pouget 2005) centred at the point itself; the linear part of
the fit tilts the frame onto the tangent plane at the point (error ``O(spacing^2)``).
"""
from __future__ import annotations

import numpy as np

from geometry.knn import _as_points, knn

__all__ = ["FRAME_METHODS", "estimate_dimension", "frames_from_normals", "jet_refine", "local_pca", "tangent_frames"]

FRAME_METHODS = ("pca", "jet")


def local_pca(points, k: int = 15, workers: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Principal directions and variances of every point's ``k``-neighbourhood.

    Parameters
    ----------
    points : (N, D)
    k : int
        Neighbourhood size including the point itself (``2 <= k <= N``).
    workers : int
        Threads of the neighbour query.

    Returns
    -------
    directions : (N, D, r) float64
        Principal directions as columns, by decreasing variance, ``r = min(D, k)``.
    variances : (N, r) float64
        The matching variances (non-negative, decreasing).
    """
    pts = _as_points(points)
    n, dim = pts.shape
    if not 2 <= k <= n:
        raise ValueError(f"the PCA neighbourhood k must be in [2, N] = [2, {n}], got {k}")
    idx, _ = knn(pts, k - 1, workers)
    hood = pts[np.concatenate([np.arange(n)[:, None], idx], axis=1)]          # (N, k, D)
    hood -= hood.mean(axis=1, keepdims=True)
    if dim <= k:
        cov = np.einsum("nki,nkj->nij", hood, hood) / k                       # (N, D, D)
        values, vectors = np.linalg.eigh(cov)
        return vectors[:, :, ::-1].copy(), np.clip(values[:, ::-1], 0.0, None)
    _, s, vt = np.linalg.svd(hood, full_matrices=False)                      # (N, k), (N, k, D)
    return np.transpose(vt, (0, 2, 1)).copy(), s**2 / k


def estimate_dimension(variances: np.ndarray, threshold: float = 0.8) -> int:
    """Smallest ``d`` whose mean cumulative explained-variance ratio reaches ``threshold``.

    Parameters
    ----------
    variances : (N, r)
        Local PCA variances (decreasing per row), as from :func:`local_pca`.
    threshold : float
        In ``(0, 1]``.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    total = variances.sum(axis=1, keepdims=True)
    ratio = np.where(total > 0, variances / np.where(total > 0, total, 1.0), 0.0).mean(axis=0)
    return int(min(np.searchsorted(np.cumsum(ratio), threshold - 1e-12) + 1, variances.shape[1]))


def jet_refine(points, frames: np.ndarray, k: int = 15, iterations: int = 2, workers: int = -1) -> np.ndarray:
    """Tilt frames onto the tangent plane of a local quadratic fit centred at each point.

    For point ``i`` with frame ``T`` ``(D, d)`` and neighbour offsets ``y_j = x_j - x_i``, the
    tangent coordinates ``u_j = T^T y_j`` and normal residuals ``r_j = y_j - T u_j`` are fitted
    by least squares as ``r_j = G u_j + Q(u_j)`` (``G`` ``(D, d)`` linear, ``Q`` quadratic
    monomials, no constant: the surface passes through ``x_i``). The refined frame is the
    orthonormalised ``T + G``; ``iterations`` repeats the fit in the new frame.

    Parameters
    ----------
    points : (N, D)
    frames : (N, D, d)
        Initial frames (e.g. local PCA).
    k : int
        Neighbourhood size including the point; needs ``k - 1 >= d + d (d + 1) / 2``.
    iterations : int
    workers : int

    Returns
    -------
    frames : (N, D, d) float64, orthonormal columns
    """
    pts = _as_points(points)
    d = frames.shape[2]
    n_coef = d + d * (d + 1) // 2
    if k - 1 < n_coef:
        raise ValueError(f"jet frames of dimension {d} need k >= {n_coef + 1} neighbours, got k = {k}; raise k")
    idx, _ = knn(pts, k - 1, workers)
    hood = pts[idx] - pts[:, None, :]                                          # (N, k-1, D)
    a_idx, b_idx = np.triu_indices(d)
    frame = np.asarray(frames, dtype=np.float64)
    for _ in range(iterations):
        u = np.einsum("nkD,nDd->nkd", hood, frame)                             # tangent coordinates
        resid = hood - np.einsum("nDd,nkd->nkD", frame, u)                     # normal part
        design = np.concatenate([u, u[..., a_idx] * u[..., b_idx]], axis=-1)   # (N, k-1, n_coef)
        gram = np.einsum("nki,nkj->nij", design, design)
        ridge = 1e-12 * np.trace(gram, axis1=1, axis2=2)[:, None, None] + 1e-300
        coef = np.linalg.solve(gram + ridge * np.eye(n_coef), np.einsum("nki,nkD->niD", design, resid))
        frame, _ = np.linalg.qr(frame + np.transpose(coef[:, :d, :], (0, 2, 1)))
    return np.ascontiguousarray(frame)


def tangent_frames(points, dim: int | None = None, k: int = 15, threshold: float = 0.8,
                   workers: int = -1, method: str = "pca") -> np.ndarray:
    """Orthonormal tangent frames by local PCA.

    Parameters
    ----------
    points : (N, D)
    dim : int, optional
        Manifold dimension ``d``; estimated with :func:`estimate_dimension` when ``None``.
    k : int
        PCA neighbourhood size (the point included).
    threshold : float
        Explained-variance level of the dimension estimate.
    workers : int
    method : {"pca", "jet"}
        ``"pca"``: RVGP's local PCA; ``"jet"``: PCA refined by :func:`jet_refine` (same ``k``).

    Returns
    -------
    frames : (N, D, d) float64, ``frames[i].T @ frames[i] = I``
    """
    if method not in FRAME_METHODS:
        raise ValueError(f"unknown frame method {method!r}; choose one of {FRAME_METHODS}")
    directions, variances = local_pca(points, k, workers)
    if dim is None:
        dim = estimate_dimension(variances, threshold)
    if not 1 <= dim <= directions.shape[2]:
        raise ValueError(f"dim must be in [1, {directions.shape[2]}] (ambient dimension / neighbourhood size), "
                         f"got {dim}")
    frames = np.ascontiguousarray(directions[:, :, :dim])
    return jet_refine(points, frames, k, workers=workers) if method == "jet" else frames


def frames_from_normals(normals) -> np.ndarray:
    """Tangent frames ``(N, 3, 2)`` orthogonal to given surface normals ``(N, 3)`` (e.g. a mesh's)."""
    nrm = np.asarray(normals, dtype=np.float64)
    if nrm.ndim != 2 or nrm.shape[1] != 3:
        raise ValueError(f"normals must have shape (N, 3), got {nrm.shape}")
    length = np.linalg.norm(nrm, axis=1, keepdims=True)
    if (length < 1e-12).any():
        raise ValueError("some normals are zero; remove unreferenced or degenerate vertices "
                         "(trimesh: mesh.remove_unreferenced_vertices()) or use PCA frames")
    nrm = nrm / length
    helper = np.zeros_like(nrm)
    helper[np.arange(len(nrm)), np.argmin(np.abs(nrm), axis=1)] = 1.0
    e1 = np.cross(nrm, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    e2 = np.cross(nrm, e1)
    return np.stack([e1, e2], axis=2)
