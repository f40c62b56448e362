"""k-nearest-neighbour graphs of point clouds with O(N k) memory.

The graph is the undirected union of the directed kNN relations (``j`` is among the ``k``
nearest neighbours of ``i`` *or* ``i`` among those of ``j``), as in RVGP's
``manifold_graph``; it is returned as a unique edge list ``(E, 2)`` with ``i < j``.
Neighbour queries go through ``scipy.spatial.cKDTree`` (parallel over ``workers``), never
through an ``N x N`` distance matrix.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

__all__ = ["farthest_point_sampling", "graph_laplacian", "knn", "knn_edges"]


def _as_points(points) -> np.ndarray:
    if hasattr(points, "detach"):
        points = points.detach().cpu().numpy()
    pts = np.ascontiguousarray(np.asarray(points, dtype=np.float64))
    if pts.ndim != 2 or pts.shape[0] < 2:
        raise ValueError(f"points must have shape (N, D) with N >= 2, got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ValueError("points contain NaN or inf; remove those rows before building the graph")
    return pts


def knn(points, k: int, workers: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest neighbours of every point (the point itself excluded).

    Parameters
    ----------
    points : (N, D) array or tensor
    k : int
        Number of neighbours, ``1 <= k < N``.
    workers : int
        Threads for the tree query (``-1``: all).

    Returns
    -------
    index : (N, k) int64
        Neighbour indices, nearest first.
    distance : (N, k) float64
    """
    pts = _as_points(points)
    if not 1 <= k < len(pts):
        raise ValueError(f"k must be in [1, N-1] = [1, {len(pts) - 1}], got {k}")
    dist, idx = cKDTree(pts).query(pts, k=k + 1, workers=workers)
    # drop the point itself; with duplicate points it may not come first, so remove it by value
    self_col = idx == np.arange(len(pts))[:, None]
    has_self = self_col.any(axis=1)
    drop = np.where(has_self, self_col.argmax(axis=1), k)
    keep = np.ones_like(idx, dtype=bool)
    keep[np.arange(len(pts)), drop] = False
    return idx[keep].reshape(len(pts), k).astype(np.int64), dist[keep].reshape(len(pts), k)


def knn_edges(points, k: int, workers: int = -1) -> np.ndarray:
    """Undirected kNN graph as unique edges ``(E, 2)``, ``i < j``, sorted lexicographically.

    Parameters
    ----------
    points : (N, D)
    k : int
        Neighbours per point; an edge exists when either end is among the other's ``k``
        nearest neighbours.
    workers : int

    Returns
    -------
    edges : (E, 2) int64, ``k N / 2 <= E <= k N``
    """
    idx, _ = knn(points, k, workers)
    n = idx.shape[0]
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = idx.reshape(-1)
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    keys = np.unique(lo * n + hi)
    return np.stack([keys // n, keys % n], axis=1)


def graph_laplacian(edges: np.ndarray, n: int, weights: np.ndarray | None = None) -> sp.csr_matrix:
    """Combinatorial graph Laplacian ``L = D - A`` (symmetric, PSD), ``(n, n)`` CSR float64.

    Parameters
    ----------
    edges : (E, 2) int
        Unique undirected edges.
    n : int
        Number of nodes.
    weights : (E,) float, optional
        Edge weights (default 1).
    """
    edges = np.asarray(edges, dtype=np.int64)
    w = np.ones(len(edges)) if weights is None else np.asarray(weights, dtype=np.float64)
    i, j = edges[:, 0], edges[:, 1]
    adjacency = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))),
                              shape=(n, n)).tocsr()
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    return (sp.diags(degree) - adjacency).tocsr()


def farthest_point_sampling(points, m: int, start: int = 0) -> np.ndarray:
    """Indices of ``m`` points chosen greedily farthest from those already chosen (Euclidean).

    O(N m) time and O(N) memory (RVGP's version keeps an ``N x N`` matrix).

    Parameters
    ----------
    points : (N, D)
    m : int
        ``1 <= m <= N``.
    start : int
        First index.

    Returns
    -------
    (m,) int64
    """
    pts = _as_points(points)
    if not 1 <= m <= len(pts):
        raise ValueError(f"m must be in [1, N] = [1, {len(pts)}], got {m}")
    chosen = np.empty(m, dtype=np.int64)
    chosen[0] = start
    dist = np.sum((pts - pts[start]) ** 2, axis=1)
    for t in range(1, m):
        chosen[t] = int(np.argmax(dist))
        np.minimum(dist, np.sum((pts - pts[chosen[t]]) ** 2, axis=1), out=dist)
    return chosen
