"""Pool-based active learning with the UMat uncertainty (uncertainty vs random selection).

For each seed: a pool of procedural materials (seeds disjoint from training and held-out
sets), a small random labelled set, and a network trained on it. Then, for each strategy,
``rounds`` times: score the unlabelled pool, add ``per_round`` materials -- the ones with the
highest per-material uncertainty (:func:`~solvers.umat.uncertainty.per_material_score` of the
TTA or MC-dropout score) or random ones -- and fine-tune on the enlarged set. Both strategies
start from the same labelled set and the same initial network, and spend the same number of
steps. The figure of merit is the mean normal angular error on a fixed held-out set.
"""
from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from solvers.umat.losses import LossWeights
from solvers.umat.training import UMatTrainConfig, heldout_set, train_umat
from solvers.umat.uncertainty import (
    angular_error_deg,
    per_material_score,
    predict_mc_dropout,
    predict_tta,
)

__all__ = ["POOL_SEED", "ActiveConfig", "active_learning", "heldout_normal_error", "select"]

logger = logging.getLogger(__name__)

POOL_SEED = 3_000_017


@dataclass
class ActiveConfig:
    """Sizes of the active-learning experiment (defaults: a few minutes on one CPU core).

    Attributes
    ----------
    pool_size, initial, per_round, rounds : int
        Pool of candidate materials, initial labelled set, materials added per round, rounds.
    seeds : sequence of int
        Repetitions (pool, initial set and network initialisation change with the seed).
    material_size, crop : int
        Pool material size and training crop.
    steps_initial, steps_round : int
        Training steps on the initial set, and fine-tuning steps after each round.
    batch_size : int
    lr : float
    base_channels, depth, dropout : network size.
    method : ``"tta"`` or ``"mc_dropout"``
        Uncertainty used for the selection.
    n_test, test_size : int
        Held-out evaluation set.
    initial_kinds : sequence of str, optional
        Restrict the initial labelled set to these material kinds (a biased start); ``None`` = any.
    """

    pool_size: int = 48
    initial: int = 8
    per_round: int = 8
    rounds: int = 2
    seeds: Sequence[int] = (0, 1, 2)
    material_size: int = 48
    crop: int = 32
    steps_initial: int = 80
    steps_round: int = 40
    batch_size: int = 8
    lr: float = 2e-3
    base_channels: int = 8
    depth: int = 2
    dropout: float = 0.1
    method: str = "tta"
    n_test: int = 12
    test_size: int = 48
    initial_kinds: Sequence[str] | None = None
    weights: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        if self.initial + self.rounds * self.per_round > self.pool_size:
            raise ValueError(f"initial ({self.initial}) + rounds x per_round ({self.rounds} x {self.per_round}) "
                             f"exceeds pool_size={self.pool_size}; enlarge the pool")
        if self.method not in ("tta", "mc_dropout"):
            raise ValueError(f"method={self.method!r}; use 'tta' or 'mc_dropout'")

    def train_config(self, steps: int, seed: int) -> UMatTrainConfig:
        return UMatTrainConfig(steps=steps, batch_size=self.batch_size, lr=self.lr, seed=seed,
                               material_size=self.material_size, crop=self.crop, base_channels=self.base_channels,
                               depth=self.depth, dropout=self.dropout, weights=self.weights, checkpoint_dir=None)


def heldout_normal_error(model: nn.Module, maps, image: torch.Tensor) -> float:
    """Mean normal angular error (degrees) of ``model`` on ``image`` ``(B, 3, H, W)``."""
    with torch.no_grad():
        pred = model.eval()(image)
    return float(angular_error_deg(pred[:, :3], maps.normal).mean())


def _material_scores(model: nn.Module, images: torch.Tensor, method: str, seed: int) -> np.ndarray:
    if isinstance(model, nn.Module):
        model.eval()
    with torch.no_grad():
        if method == "tta":
            score = predict_tta(model, images).score
        else:
            score = predict_mc_dropout(model, images, 8, seed=seed).score
    return per_material_score(score).numpy()


def select(strategy: str, model: nn.Module, images: torch.Tensor, candidates: np.ndarray, k: int,
           rng: np.random.Generator, method: str = "tta", seed: int = 0) -> np.ndarray:
    """Pick ``k`` of the pool indices ``candidates``: the most uncertain, or uniformly at random.

    Parameters
    ----------
    strategy : ``"uncertainty"`` or ``"random"``
    images : (N, 3, H, W)
        Scanner images of the whole pool.
    candidates : (M,) int array
        Unlabelled pool indices.
    """
    if strategy == "random":
        return rng.choice(candidates, size=k, replace=False)
    if strategy != "uncertainty":
        raise ValueError(f"unknown strategy {strategy!r}; use 'uncertainty' or 'random'")
    scores = _material_scores(model, images[torch.as_tensor(candidates)], method, seed)
    return candidates[np.argsort(-scores, kind="stable")[:k]]


def _one_seed(config: ActiveConfig, seed: int, test) -> dict:
    from solvers.umat.materials import generate_materials
    from solvers.umat.render import scanner_image
    pool = generate_materials(config.pool_size, config.material_size, seed=POOL_SEED + 7919 * seed)
    images = scanner_image(pool)
    rng = np.random.default_rng(seed)
    eligible = np.arange(config.pool_size)
    if config.initial_kinds is not None:
        from solvers.umat.materials import KINDS
        kind_of = [KINDS[(POOL_SEED + 7919 * seed + i) % len(KINDS)] for i in range(config.pool_size)]
        eligible = np.array([i for i, k in enumerate(kind_of) if k in config.initial_kinds])
    labelled0 = rng.choice(eligible, size=config.initial, replace=False)
    idx = torch.as_tensor(labelled0)
    base = train_umat(config.train_config(config.steps_initial, seed), materials=pool[idx], images=images[idx]).model
    row = {"seed": seed, "initial_error_deg": heldout_normal_error(base, *test), "strategies": {}}
    for strategy in ("uncertainty", "random"):
        model, labelled = copy.deepcopy(base), labelled0.copy()
        pick_rng = np.random.default_rng(10_000 + seed)
        errors = []
        for r in range(config.rounds):
            candidates = np.setdiff1d(np.arange(config.pool_size), labelled)
            picked = select(strategy, model, images, candidates, config.per_round, pick_rng, config.method, seed)
            labelled = np.concatenate([labelled, picked])
            idx = torch.as_tensor(labelled)
            model = train_umat(config.train_config(config.steps_round, 1000 * seed + r + 1), model,
                               materials=pool[idx], images=images[idx]).model
            errors.append(heldout_normal_error(model, *test))
        row["strategies"][strategy] = {"error_per_round_deg": errors, "final_error_deg": errors[-1],
                                       "labelled": [int(i) for i in labelled]}
    return row


def active_learning(config: ActiveConfig | None = None) -> dict:
    """Run the experiment for every seed; returns a JSON-ready summary.

    Returns
    -------
    dict
        ``per_seed`` rows and ``mean_final_error_deg`` per strategy, their ratio
        (``uncertainty / random``; <= 1 means uncertainty selection is no worse) and the
        held-out error of the flat-normal baseline.
    """
    config = config or ActiveConfig()
    started = time.perf_counter()
    test = heldout_set(config.n_test, config.test_size)
    rows = [_one_seed(config, seed, test) for seed in config.seeds]
    means = {s: float(np.mean([r["strategies"][s]["final_error_deg"] for r in rows]))
             for s in ("uncertainty", "random")}
    flat = torch.zeros_like(test[0].normal)
    flat[:, 2] = 1
    cfg = asdict(config)
    cfg["seeds"] = list(config.seeds)
    return {"config": cfg, "per_seed": rows, "mean_final_error_deg": means,
            "mean_initial_error_deg": float(np.mean([r["initial_error_deg"] for r in rows])),
            "uncertainty_over_random": means["uncertainty"] / means["random"],
            "uncertainty_no_worse": means["uncertainty"] <= means["random"],
            "flat_error_deg": float(angular_error_deg(flat, test[0].normal).mean()),
            "seconds": time.perf_counter() - started}
