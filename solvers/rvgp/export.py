"""ParaView export of an RVGP prediction (``.vtp`` point cloud or surface)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sciml.io import write_vtp

__all__ = ["write_prediction"]


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def write_prediction(path, points, prediction, train_index, observed, truth=None, faces=None) -> Path:
    """Write the predicted field, its variance and the training data to a ``.vtp`` file.

    Parameters
    ----------
    path : str or Path
        Destination ending in ``.vtp``.
    points : (N, 3)
    prediction : Prediction
        For all ``N`` points (``mean (N, 3)``, ``variance (N,)``).
    train_index : (n,) int
    observed : (n, 3)
        Training vectors.
    truth : (N, 3), optional
    faces : (F, 3) int, optional
        Triangles of a mesh (otherwise a point cloud).

    Returns
    -------
    Path
        Point data: ``prediction`` (active vectors), ``variance``, ``std``, ``train`` (0/1),
        ``observed`` (training vectors, zero elsewhere) and ``truth`` when given.
    """
    pts = _np(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"ParaView export needs 3-D points, got shape {pts.shape}; project or embed them in R^3 first")
    mean, variance = _np(prediction.mean), _np(prediction.variance)
    if mean.shape != pts.shape:
        raise ValueError(f"prediction.mean {mean.shape} must cover all points {pts.shape}; call predict() "
                         "without an index")
    idx = _np(train_index).astype(np.int64)
    train = np.zeros(len(pts), dtype=np.uint8)
    train[idx] = 1
    obs = np.zeros_like(pts)
    obs[idx] = _np(observed)
    data = {"prediction": mean, "variance": variance, "std": np.sqrt(np.clip(variance, 0, None)), "train": train,
            "observed": obs}
    if truth is not None:
        data["truth"] = _np(truth)
    return write_vtp(path, pts, faces=None if faces is None else _np(faces), point_data=data)
