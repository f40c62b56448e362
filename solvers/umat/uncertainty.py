"""Test-time uncertainty of UMat predictions: TTA, MC dropout and small ensembles.

Every estimator produces ``S`` predictions ``(S, B, 5, H, W)`` of the same image (normal 3,
roughness 1, specular 1), returns their mean (normals renormalised) and a per-pixel score, selected by ``score``:

* ``"normal"`` (default): ``spread_n``, the mean angle (radians) between each sample's normal
  and the mean normal;
* ``"combined"``: ``spread_n + std_r + std_s``, adding the standard deviations of roughness
  and specular over the samples (comparable units: 0.1 rad ~ 5.7 deg vs a roughness std of
  0.1 on a [0.05, 1] scale).

The normal spread alone ranks the normal error better: on 16 *training-range* materials
(TTA, shrink 0.5) Spearman 0.34 and a 10.3 % error drop against 0.31 and 9.1 % for the
combined score; roughness and specular are barely better than constants from a diffuse
image, so their spread adds noise. :func:`score_components` returns the parts separately
(``spread_n`` in degrees).

A spread from a handful of samples is a noisy per-pixel estimate, and much of its
information is at the level of the whole material (shipped model, TTA, 20 held-out
materials: Spearman with the normal error 0.70 per material but 0.19 within an image). The
returned pixel score is therefore shrunk towards the image mean,
``(1 - shrink) * score + shrink * mean_over_image(score)`` (:func:`shrink_score`; ``shrink=0``
gives the raw spread). ``DEFAULT_SHRINK = 0.5`` maximises the pooled per-pixel Spearman on 20
*training-range* materials (``sciml bench umat``, ``shrink_sweep_training_seeds``), not on the
held-out set. The per-material score is the mean of the pixel score
(:func:`per_material_score`), which shrinking leaves unchanged.

**Test-time augmentation** is restricted to transforms that keep the capture valid. The
synthetic scanner's directional light lies in the y-z plane, so the only symmetry of the
light is the horizontal flip ``u -> -u`` (undone on the prediction by flipping back and
negating the normal's x component). Shifts move the image relative to the network's
stride grid (``2**depth``); ``shift_mode="reflect"`` pads the top/left by the shift and
crops the prediction back (any image), ``"circular"`` rolls the image (exact for tileable
materials). The dihedral group is *not* used: it rotates the light.

Calibration helpers at the end: Spearman correlation, sparsification curves, the error drop
after removing the most uncertain pixels, and AUSE (area under the sparsification error).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DEFAULT_SHIFTS",
    "DEFAULT_SCORE",
    "DEFAULT_SHRINK",
    "ESTIMATORS",
    "SCORES",
    "UncertainPrediction",
    "angular_error_deg",
    "ause",
    "error_drop",
    "per_material_score",
    "predict_ensemble",
    "predict_mc_dropout",
    "predict_tta",
    "predict_uncertain",
    "random_ause",
    "score_components",
    "shrink_score",
    "sparsification_curve",
    "spearman",
    "summarize_samples",
]

DEFAULT_SHIFTS: tuple[tuple[int, int], ...] = ((0, 0), (3, 5), (5, 2), (6, 7))
DEFAULT_SHRINK = 0.5
SCORES = ("normal", "combined")
DEFAULT_SCORE = "normal"
ESTIMATORS = ("tta", "mc_dropout", "ensemble")

Model = Callable[[Tensor], Tensor]


class UncertainPrediction(NamedTuple):
    """``(mean, score)`` of an uncertainty estimator.

    Attributes
    ----------
    mean : (B, 5, H, W)
        Mean prediction, unit normals.
    score : (B, 1, H, W)
        Per-pixel uncertainty (see the module docstring), >= 0.
    """

    mean: Tensor
    score: Tensor


# ----------------------------------------------------------------------------- scores
def _unit(normal: Tensor) -> Tensor:
    return normal / torch.linalg.vector_norm(normal, dim=-3, keepdim=True).clamp_min(1e-12)


def angular_error_deg(a: Tensor, b: Tensor) -> Tensor:
    """Angle in degrees between two normal maps ``(..., 3, H, W)``; returns ``(..., 1, H, W)``."""
    cos = (_unit(a) * _unit(b)).sum(-3, keepdim=True).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


def score_components(samples: Tensor) -> dict[str, Tensor]:
    """Spread of ``S`` predictions ``(S, B, 5, H, W)``.

    Returns
    -------
    dict with ``"normal_spread_deg"``, ``"roughness_std"``, ``"specular_std"``, each ``(B, 1, H, W)``.
    """
    mean_n = _unit(samples[:, :, :3].mean(0))
    spread = angular_error_deg(samples[:, :, :3], mean_n.unsqueeze(0)).mean(0)
    std = samples[:, :, 3:].std(0, unbiased=False) if samples.shape[0] > 1 else torch.zeros_like(samples[0, :, 3:])
    return {"normal_spread_deg": spread, "roughness_std": std[:, :1], "specular_std": std[:, 1:2]}


def shrink_score(score: Tensor, shrink: float = DEFAULT_SHRINK) -> Tensor:
    """``(1 - shrink) * score + shrink * (mean of score over each image)`` for ``score : (B, 1, H, W)``."""
    if not 0.0 <= shrink <= 1.0:
        raise ValueError(f"shrink={shrink} must lie in [0, 1] (0: raw pixel spread, 1: one value per image)")
    if shrink == 0.0:
        return score
    return (1.0 - shrink) * score + shrink * score.mean(dim=(-2, -1), keepdim=True)


def summarize_samples(samples: Tensor, shrink: float = DEFAULT_SHRINK, score: str = DEFAULT_SCORE
                      ) -> UncertainPrediction:
    """Mean prediction (unit normals) and score of ``(S, B, 5, H, W)`` samples.

    The score is ``spread_n`` [rad] (``score="normal"``) or ``spread_n + std_r + std_s``
    (``"combined"``), shrunk towards its image mean by ``shrink`` (:func:`shrink_score`).
    """
    if samples.ndim != 5 or samples.shape[2] != 5:
        raise ValueError(f"samples have shape {tuple(samples.shape)}; expected (S, B, 5, H, W)")
    if score not in SCORES:
        raise ValueError(f"score={score!r}; choose one of {SCORES}")
    mean = samples.mean(0)
    mean = torch.cat([_unit(mean[:, :3]), mean[:, 3:]], 1)
    parts = score_components(samples)
    value = torch.deg2rad(parts["normal_spread_deg"])
    if score == "combined":
        value = value + parts["roughness_std"] + parts["specular_std"]
    return UncertainPrediction(mean, shrink_score(value, shrink))


def per_material_score(pixel_score: Tensor) -> Tensor:
    """Mean of a per-pixel score ``(B, 1, H, W)`` over the pixels: ``(B,)``."""
    if pixel_score.ndim != 4:
        raise ValueError(f"pixel_score has shape {tuple(pixel_score.shape)}; expected (B, 1, H, W)")
    return pixel_score.flatten(1).mean(1)


# ------------------------------------------------------------------------ transforms
def _flip_u(pred_or_image: Tensor, is_prediction: bool) -> Tensor:
    out = pred_or_image.flip(-1)
    if is_prediction:
        out = torch.cat([-out[:, :1], out[:, 1:]], 1)
    return out


def _shifted(model: Model, image: Tensor, dy: int, dx: int, mode: str) -> Tensor:
    """``model`` applied to ``image`` moved by ``(dy, dx)`` pixels, moved back."""
    if dy == 0 and dx == 0:
        return model(image)
    if mode == "circular":
        return torch.roll(model(torch.roll(image, (dy, dx), (-2, -1))), (-dy, -dx), (-2, -1))
    height, width = image.shape[-2:]
    pad_mode = "reflect" if dy < height and dx < width else "replicate"
    padded = F.pad(image, (dx, 0, dy, 0), mode=pad_mode)
    return model(padded)[..., dy:dy + height, dx:dx + width]


def predict_tta(model: Model, image: Tensor, *, shifts: Sequence[tuple[int, int]] = DEFAULT_SHIFTS,
                flips: Sequence[str] = ("none", "u"), shift_mode: str = "reflect",
                shrink: float = DEFAULT_SHRINK, score: str = DEFAULT_SCORE) -> UncertainPrediction:
    """Test-time augmentation with the transforms that keep the scanner light valid.

    Parameters
    ----------
    model : callable ``(B, 3, H, W) -> (B, 5, H, W)``
        Any size in, same size out (e.g. :class:`~solvers.umat.model.UMatNet` in eval mode).
    image : (B, 3, H, W)
        Scanner image.
    shifts : sequence of (dy, dx), non-negative ints
        Offsets relative to the network's stride grid; ``(0, 0)`` is the identity.
    flips : subset of ``("none", "u")``
        ``"u"`` flips the image horizontally; the prediction is flipped back and its normal
        x component negated.
    shift_mode : ``"reflect"`` or ``"circular"``
    shrink : float
        Pull of the pixel score towards its image mean (:func:`shrink_score`).
    score : {"normal", "combined"}
        Which spread the pixel score measures (module docstring).

    Returns
    -------
    UncertainPrediction
        Mean over ``len(shifts) * len(flips)`` passes and the per-pixel score.
    """
    if shift_mode not in ("reflect", "circular"):
        raise ValueError(f"shift_mode={shift_mode!r}; use 'reflect' (any image) or 'circular' (tileable images)")
    bad = [f for f in flips if f not in ("none", "u")]
    if bad or not flips:
        raise ValueError(f"flips={tuple(flips)}: only 'none' and 'u' (horizontal) preserve the scanner light; "
                         "vertical flips and rotations move it")
    if not shifts or any(dy < 0 or dx < 0 for dy, dx in shifts):
        raise ValueError(f"shifts={tuple(shifts)} must be a non-empty sequence of non-negative (dy, dx)")
    samples = []
    for flip in flips:
        x = _flip_u(image, False) if flip == "u" else image
        for dy, dx in shifts:
            pred = _shifted(model, x, int(dy), int(dx), shift_mode)
            samples.append(_flip_u(pred, True) if flip == "u" else pred)
    return summarize_samples(torch.stack(samples), shrink, score)


def predict_mc_dropout(model, image: Tensor, samples: int = 8, *, seed: int = 0,
                       generator: torch.Generator | None = None, shrink: float = DEFAULT_SHRINK,
                       score: str = DEFAULT_SCORE) -> UncertainPrediction:
    """MC dropout: ``samples`` stochastic passes with the dropout layers active.

    Parameters
    ----------
    model : UMatNet
        Must provide ``set_mc_dropout(enabled, generator)``; it is switched back to
        deterministic mode afterwards.
    image : (B, 3, H, W)
    samples : int
    seed : int
        Seeds the dropout masks when no ``generator`` is given.
    generator : torch.Generator, optional
        On ``image.device``; drives the dropout masks (shared across calls, e.g. tiles).
    shrink, score
        See :func:`predict_tta`.
    """
    if samples < 2:
        raise ValueError(f"samples={samples}; MC dropout needs >= 2 passes to measure a spread")
    if not hasattr(model, "set_mc_dropout"):
        raise ValueError(f"{type(model).__name__} has no set_mc_dropout(); use a UMatNet with dropout > 0")
    if generator is None:
        generator = torch.Generator(device=image.device).manual_seed(seed)
    model.set_mc_dropout(True, generator)
    try:
        outs = torch.stack([model(image) for _ in range(samples)])
    finally:
        model.set_mc_dropout(False, None)
    return summarize_samples(outs, shrink, score)


def predict_ensemble(models: Sequence[Model], image: Tensor, *, shrink: float = DEFAULT_SHRINK,
                     score: str = DEFAULT_SCORE) -> UncertainPrediction:
    """Mean and spread of several independently trained models (>= 2)."""
    if len(models) < 2:
        raise ValueError(f"an ensemble needs >= 2 models, got {len(models)}")
    return summarize_samples(torch.stack([m(image) for m in models]), shrink, score)


def predict_uncertain(model, image: Tensor, method: str = "tta", **options) -> UncertainPrediction:
    """Dispatch by name: ``"tta"``, ``"mc_dropout"`` or ``"ensemble"`` (``model`` is then a list)."""
    if method == "tta":
        return predict_tta(model, image, **options)
    if method == "mc_dropout":
        return predict_mc_dropout(model, image, **options)
    if method == "ensemble":
        return predict_ensemble(model, image, **options)
    raise ValueError(f"unknown uncertainty method {method!r}; choose one of {ESTIMATORS}")


# ---------------------------------------------------------------------- calibration
def _flat(x) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64).ravel()


def spearman(score, error) -> float:
    """Spearman rank correlation of two equally sized arrays (any shape, flattened)."""
    from scipy.stats import spearmanr
    s, e = _flat(score), _flat(error)
    if s.size != e.size:
        raise ValueError(f"score has {s.size} entries but error has {e.size}; pass maps of the same shape")
    if s.size < 3 or np.ptp(s) == 0 or np.ptp(e) == 0:
        return float("nan")
    return float(spearmanr(s, e).statistic)


def sparsification_curve(error, score, fractions: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean error left after removing the fraction ``f`` of pixels with the highest ``score``.

    Parameters
    ----------
    error, score : arrays of the same size (flattened)
    fractions : fractions in [0, 1); default ``0, 0.02, ..., 0.98``

    Returns
    -------
    fractions : (K,) array
    mean_error : (K,) array
    """
    e, s = _flat(error), _flat(score)
    if e.size != s.size or e.size == 0:
        raise ValueError(f"error ({e.size}) and score ({s.size}) must be non-empty and of equal size")
    f = np.arange(0.0, 1.0, 0.02) if fractions is None else np.asarray(fractions, dtype=np.float64)
    if np.any((f < 0) | (f >= 1)):
        raise ValueError("fractions must lie in [0, 1)")
    order = np.argsort(-s, kind="stable")  # most uncertain first
    sorted_err = e[order]
    tail = np.cumsum(sorted_err[::-1])[::-1]  # tail[i] = sum of errors from position i on
    removed = np.floor(f * e.size).astype(int)
    return f, tail[removed] / (e.size - removed)


def error_drop(error, score, fraction: float = 0.2) -> float:
    """Relative drop of the mean error after removing the ``fraction`` most uncertain pixels."""
    _, curve = sparsification_curve(error, score, [0.0, fraction])
    return float(1.0 - curve[1] / curve[0]) if curve[0] > 0 else 0.0


def ause(error, score, fractions: Sequence[float] | None = None) -> float:
    """Area under the sparsification error: curve(score) - curve(oracle), normalised by the mean error.

    0 for a score that orders pixels exactly like the error; trapezoidal rule over ``fractions``.
    """
    f, by_score = sparsification_curve(error, score, fractions)
    _, oracle = sparsification_curve(error, error, f)
    base = by_score[0] if by_score[0] > 0 else 1.0
    gap = (by_score - oracle) / base
    return float(np.sum(0.5 * (gap[1:] + gap[:-1]) * np.diff(f))) if len(f) > 1 else 0.0


def random_ause(error, fractions: Sequence[float] | None = None, seed: int = 0) -> float:
    """AUSE of a random score (a reference: an informative score has a smaller AUSE)."""
    rng = np.random.default_rng(seed)
    return ause(error, rng.random(_flat(error).size), fractions)

