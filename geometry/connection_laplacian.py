"""Parallel transport between neighbouring tangent frames and the connection Laplacian.

Transport (orthogonal Procrustes, RVGP's ``connections``): for an edge ``(i, j)`` with frames
``T_i, T_j`` (``(D, d)``, orthonormal columns), ``O_ij = U V^T`` where
``U S V^T = svd(T_i^T T_j)``. ``O_ij`` maps frame-``j`` coordinates to frame-``i`` coordinates;
reflections are allowed and ``O_ji = O_ij^T``.

Connection Laplacian (RVGP's ``compute_connection_laplacian``, no normalisation by default):
the ``(N d) x (N d)`` matrix with diagonal blocks ``deg_i I_d`` and off-diagonal blocks
``-w_ij O_ij``, i.e. the quadratic form ``sum_edges w_ij |x_i - O_ij x_j|^2``; it is symmetric
(exactly: the ``(j, i)`` block is stored as the transpose of the same numbers) and positive
semi-definite. Row ``i d + a`` is component ``a`` of point ``i`` in frame ``T_i``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["connection_laplacian", "edge_weights", "procrustes_transport"]

_CHUNK = 1 << 17


def procrustes_transport(frames: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Orthogonal ``O_ij`` closest to ``T_i^T T_j`` for every edge.

    Parameters
    ----------
    frames : (N, D, d)
    edges : (E, 2) int

    Returns
    -------
    (E, d, d) float64, orthogonal
    """
    frames = np.asarray(frames, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.int64)
    d = frames.shape[2]
    out = np.empty((len(edges), d, d))
    for start in range(0, len(edges), _CHUNK):
        e = edges[start:start + _CHUNK]
        overlap = np.einsum("eai,eaj->eij", frames[e[:, 0]], frames[e[:, 1]])
        u, _, vt = np.linalg.svd(overlap)
        out[start:start + _CHUNK] = u @ vt
    return out


def edge_weights(points: np.ndarray, edges: np.ndarray, kind: str = "unweighted",
                 epsilon: float | None = None) -> np.ndarray:
    """Edge weights: ``"unweighted"`` (RVGP, all 1) or ``"gaussian"`` (vector diffusion maps).

    Parameters
    ----------
    points : (N, D)
    edges : (E, 2)
    kind : {"unweighted", "gaussian"}
    epsilon : float, optional
        Gaussian bandwidth: ``w = exp(-|x_i - x_j|^2 / epsilon)``; default the median squared
        edge length.

    Returns
    -------
    (E,) float64
    """
    if kind == "unweighted":
        return np.ones(len(edges))
    if kind != "gaussian":
        raise ValueError(f"unknown edge weight kind {kind!r}; use 'unweighted' or 'gaussian'")
    sq = np.sum((points[edges[:, 0]] - points[edges[:, 1]]) ** 2, axis=1)
    eps = float(np.median(sq)) if epsilon is None else float(epsilon)
    if eps <= 0:
        raise ValueError(f"epsilon must be positive, got {eps} (duplicate points?)")
    return np.exp(-sq / eps)


def connection_laplacian(transport: np.ndarray, edges: np.ndarray, n: int, weights: np.ndarray | None = None,
                         normalization: str | None = None) -> sp.csr_matrix:
    """Sparse connection Laplacian ``(N d, N d)``.

    Parameters
    ----------
    transport : (E, d, d)
        ``O_ij`` of every edge (:func:`procrustes_transport`).
    edges : (E, 2) int
        Unique undirected edges ``(i, j)``.
    n : int
        Number of points.
    weights : (E,), optional
        Edge weights (default 1, RVGP).
    normalization : {None, "sym"}
        ``"sym"`` gives ``D^{-1/2} L_c D^{-1/2}`` (still symmetric, spectrum in [0, 2]).

    Returns
    -------
    scipy.sparse.csr_matrix, float64, exactly symmetric, PSD
    """
    edges = np.asarray(edges, dtype=np.int64)
    e, d = transport.shape[0], transport.shape[1]
    if edges.shape != (e, 2):
        raise ValueError(f"edges must have shape ({e}, 2) to match transport, got {edges.shape}")
    w = np.ones(e) if weights is None else np.asarray(weights, dtype=np.float64)
    if normalization not in (None, "sym"):
        raise ValueError(f"unknown normalization {normalization!r}; use None or 'sym'")
    degree = np.bincount(edges[:, 0], weights=w, minlength=n) + np.bincount(edges[:, 1], weights=w, minlength=n)
    if (degree <= 0).any():
        raise ValueError(f"{int((degree <= 0).sum())} isolated points have no edge; raise k or remove them")
    block = -w[:, None, None] * transport
    if normalization == "sym":
        scale = 1.0 / np.sqrt(degree)
        block = block * (scale[edges[:, 0]] * scale[edges[:, 1]])[:, None, None]
        diagonal = np.ones(n * d)
    else:
        diagonal = np.repeat(degree, d)
    a = np.arange(d)
    rows = (edges[:, 0, None, None] * d + a[None, :, None]).repeat(d, axis=2).reshape(-1)   # (E d d)
    cols = (edges[:, 1, None, None] * d + a[None, None, :]).repeat(d, axis=1).reshape(-1)
    values = block.reshape(-1)
    diag_index = np.arange(n * d)
    matrix = sp.coo_matrix((np.concatenate([values, values, diagonal]),
                            (np.concatenate([rows, cols, diag_index]), np.concatenate([cols, rows, diag_index]))),
                           shape=(n * d, n * d))
    return matrix.tocsr()
