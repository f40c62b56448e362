"""Tangent frames of a point cloud by local PCA, and the manifold dimension they imply.

For every point the ``K`` nearest points (itself included) are centred on their mean and
decomposed; the frame ``T_i`` is the ``d`` leading principal directions, ``(D, d)`` with
orthonormal columns. RVGP collects the ``K`` neighbours by Dijkstra on the kNN graph; we use
the ``K`` Euclidean nearest neighbours (the same set wherever the sampling resolves the
manifold, and O(N K) work with no graph search).

The dimension ``d`` is either given or estimated: the explained-variance ratios of the
principal directions are averaged over all points and ``d`` is the smallest count whose
cumulative ratio reaches ``threshold`` (RVGP uses 0.8).
"""
from __future__ import annotations

import numpy as np

from geometry.knn import _as_points, knn

__all__ = ["estimate_dimension", "frames_from_normals", "local_pca", "tangent_frames"]


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


def tangent_frames(points, dim: int | None = None, k: int = 15, threshold: float = 0.8,
                   workers: int = -1) -> np.ndarray:
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

    Returns
    -------
    frames : (N, D, d) float64, ``frames[i].T @ frames[i] = I``
    """
    directions, variances = local_pca(points, k, workers)
    if dim is None:
        dim = estimate_dimension(variances, threshold)
    if not 1 <= dim <= directions.shape[2]:
        raise ValueError(f"dim must be in [1, {directions.shape[2]}] (ambient dimension / neighbourhood size), "
                         f"got {dim}")
    return np.ascontiguousarray(directions[:, :, :dim])


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
