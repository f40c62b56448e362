"""Scores of predicted vector fields: cosine similarity, relative L2 error, winding number."""
from __future__ import annotations

import numpy as np

__all__ = ["cosine_similarity", "relative_l2", "ring_indices", "winding_number"]


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def cosine_similarity(pred, truth, eps: float = 1e-12) -> float:
    """Mean over points of ``<p_i, t_i> / (|p_i| |t_i|)`` (RVGP's "alignment"), points with ``t_i = 0`` skipped.

    Parameters
    ----------
    pred, truth : (n, D)
    """
    p, t = _np(pred), _np(truth)
    if p.shape != t.shape or len(t) == 0:
        raise ValueError(f"pred {p.shape} and truth {t.shape} must have the same non-empty shape (n, D)")
    tn, pn = np.linalg.norm(t, axis=1), np.linalg.norm(p, axis=1)
    ok = tn > eps * max(tn.max(), eps)
    return float(np.mean(np.sum(p[ok] * t[ok], axis=1) / np.maximum(pn[ok] * tn[ok], eps)))


def relative_l2(pred, truth) -> float:
    """``||P - T||_F / ||T||_F`` over the given points, ``(n, D)`` each."""
    p, t = _np(pred), _np(truth)
    return float(np.linalg.norm(p - t) / np.linalg.norm(t))


def ring_indices(points, centre, radius: float, width: float) -> np.ndarray:
    """Indices of sphere-like points at geodesic angle ``radius +- width / 2`` from ``centre``."""
    pts = _np(points)
    c = np.asarray(centre, dtype=np.float64)
    c = c / np.linalg.norm(c)
    angle = np.arccos(np.clip(pts @ c / np.linalg.norm(pts, axis=1), -1, 1))
    return np.flatnonzero(np.abs(angle - radius) <= width / 2)


def winding_number(points, vectors, centre, normal) -> float:
    """Winding number of a field along a closed ring of points around ``centre``.

    The ring points are ordered by their angle about ``centre`` in the plane orthogonal to
    ``normal``; the vectors are projected onto that plane and the total turning of their
    angle, divided by ``2 pi``, is returned (an integer up to discretisation when the ring is
    resolved and the field does not vanish on it). An isolated zero of index ``+1`` (source,
    sink, vortex) gives ``+1`` on a small ring around it.

    Parameters
    ----------
    points : (m, 3)
        Ring points.
    vectors : (m, 3)
        Field at the ring points.
    centre : (3,)
    normal : (3,)
        Normal of the tangent plane at the centre (for a unit sphere, ``centre`` itself).
    """
    pts, vec = _np(points), _np(vectors)
    nrm = np.asarray(normal, dtype=np.float64)
    nrm = nrm / np.linalg.norm(nrm)
    helper = np.eye(3)[np.argmin(np.abs(nrm))]
    e1 = np.cross(nrm, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(nrm, e1)
    rel = pts - np.asarray(centre, dtype=np.float64)
    order = np.argsort(np.arctan2(rel @ e2, rel @ e1))
    angles = np.arctan2(vec[order] @ e2, vec[order] @ e1)
    steps = np.diff(np.concatenate([angles, angles[:1]]))
    steps = (steps + np.pi) % (2 * np.pi) - np.pi
    return float(steps.sum() / (2 * np.pi))
