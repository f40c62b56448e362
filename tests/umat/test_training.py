"""Training: deterministic batches, exact resume, the CLI recipe, the shipped model vs baselines."""
import json
import math

import pytest
import torch

from solvers.umat.training import (
    HELDOUT_SEED,
    TRAIN_SEED_LIMIT,
    UMatTrainConfig,
    heldout_set,
    load_model,
    make_batch,
    train_umat,
)
from solvers.umat.uncertainty import angular_error_deg

TINY = {"batch_size": 4, "material_size": 24, "crop": 16, "base_channels": 8, "depth": 2}


def assert_close(actual, expected, atol=1e-6, rtol=1e-5, msg=""):
    """Like torch.testing.assert_close (whose first call imports torch.distributed, seconds on a busy CPU)."""
    assert actual.shape == expected.shape, (msg, actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (msg, actual.dtype, expected.dtype)
    assert torch.allclose(actual, expected, atol=atol, rtol=rtol), (msg, float((actual - expected).abs().max()))


def test_batches_are_a_function_of_the_generator_seed():
    cfg = UMatTrainConfig(**TINY)
    a = make_batch(cfg, torch.Generator().manual_seed(7), 4)
    b = make_batch(cfg, torch.Generator().manual_seed(7), 4)
    c = make_batch(cfg, torch.Generator().manual_seed(8), 4)
    for key in a:
        assert_close(a[key], b[key])
    assert not torch.equal(a["image"], c["image"])
    assert a["image"].shape == (4, 3, 16, 16) and a["lights"].shape == (4, 3, 3)


def test_heldout_seeds_are_outside_the_training_range():
    assert HELDOUT_SEED >= TRAIN_SEED_LIMIT
    with pytest.raises(ValueError, match="training range"):
        heldout_set(2, 16, seed=5)


def test_training_resume_is_exact(tmp_path):
    full = train_umat(UMatTrainConfig(steps=4, checkpoint_dir=tmp_path / "a", checkpoint_every=2, **TINY))
    # an interrupted run: 2 steps of the same 4-step cosine schedule, then resumed
    train_umat(UMatTrainConfig(steps=2, schedule_steps=4, checkpoint_dir=tmp_path / "b", checkpoint_every=2, **TINY))
    resumed = train_umat(UMatTrainConfig(steps=4, checkpoint_dir=tmp_path / "b", checkpoint_every=2, resume=True,
                                         **TINY))
    assert resumed.start_step == 2 and len(resumed.losses) == 4
    assert resumed.losses == pytest.approx(full.losses, abs=1e-6)
    for (name, p), q in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert_close(p, q, atol=1e-6, rtol=0, msg=name)


def test_train_cli_writes_weights_and_recipe(tmp_path):
    from solvers.umat.commands import train
    out = tmp_path / "tiny"
    argv = ["--steps", "2", "--batch-size", "2", "--material-size", "24", "--crop", "16", "--base-channels", "8",
            "--depth", "2", "--out", str(out), "--checkpoint-dir", str(tmp_path / "ck"), "--no-progress"]
    assert train(argv) == 0
    recipe = json.loads((tmp_path / "tiny.json").read_text())
    assert recipe["command"].startswith("sciml train umat") and recipe["command"].endswith("--steps 2")
    assert "--schedule-steps 2" in recipe["command"]
    assert "--checkpoint-dir" not in recipe["command"] and "--out" not in recipe["command"]  # no effect on weights
    assert recipe["steps"] == 2 and recipe["config"]["base_channels"] == 8
    model = load_model(tmp_path / "tiny.safetensors")
    assert model.config["base_channels"] == 8 and not model.training
    with pytest.raises(FileNotFoundError, match="sciml train umat"):
        load_model(tmp_path / "missing.safetensors")


def test_shipped_model_beats_flat_normals_twice():
    """The bench number on its fixed held-out set (20 materials, 4 of each kind, 64 x 64):
    normal angular error <= 0.5x the flat-normal baseline (measured 11.96 vs 25.92 degrees)."""
    model = load_model("umat")
    maps, image = heldout_set(20, 64)
    with torch.no_grad():
        pred = model(image)
    flat = torch.zeros_like(maps.normal)
    flat[:, 2] = 1
    err = float(angular_error_deg(pred[:, :3], maps.normal).mean())
    base = float(angular_error_deg(flat, maps.normal).mean())
    assert err <= 0.5 * base, (err, base)


@pytest.mark.slow
def test_adversarial_training_runs():
    from solvers.umat.losses import LossWeights
    res = train_umat(UMatTrainConfig(steps=2, weights=LossWeights(adversarial=0.1), **TINY))
    assert len(res.losses) == 2 and all(math.isfinite(v) for v in res.losses)


def test_active_selection_picks_the_most_uncertain_materials():
    import numpy as np

    from solvers.umat.active import select

    def tilted(image):  # tilts to +x by the brightness: the u-flip disagrees more on brighter images
        lum = image.mean(1, keepdim=True)
        n = torch.cat([lum, torch.zeros_like(lum), torch.ones_like(lum)], 1)
        return torch.cat([n / n.norm(dim=1, keepdim=True), torch.full_like(lum, 0.5), torch.full_like(lum, 0.1)], 1)
    images = torch.stack([torch.full((3, 8, 8), v) for v in (0.1, 0.9, 0.3, 0.7, 0.5)])
    rng = np.random.default_rng(0)
    picked = select("uncertainty", tilted, images, np.array([0, 2, 3, 4]), 2, rng)
    assert sorted(picked.tolist()) == [3, 4]
    assert len(set(select("random", tilted, images, np.array([0, 2, 3, 4]), 2, rng).tolist())) == 2
    with pytest.raises(ValueError, match="strategy"):
        select("greedy", tilted, images, np.array([0]), 1, rng)


def test_active_learning_tiny_run():
    from solvers.umat.active import ActiveConfig, active_learning
    cfg = ActiveConfig(pool_size=6, initial=2, per_round=1, rounds=2, seeds=(0,), material_size=16, crop=16,
                       steps_initial=2, steps_round=1, batch_size=2, base_channels=8, n_test=2, test_size=16)
    out = active_learning(cfg)
    row = out["per_seed"][0]
    for strategy in ("uncertainty", "random"):
        lab = row["strategies"][strategy]["labelled"]
        assert len(lab) == 4 and len(set(lab)) == 4
        assert len(row["strategies"][strategy]["error_per_round_deg"]) == 2
    assert row["strategies"]["uncertainty"]["labelled"][:2] == row["strategies"]["random"]["labelled"][:2]
    assert out["uncertainty_over_random"] > 0
    with pytest.raises(ValueError, match="pool"):
        ActiveConfig(pool_size=4, initial=2, per_round=2, rounds=2)


@pytest.mark.slow
def test_bench_quick_and_demo(tmp_path):
    import json as _json

    from solvers.umat.bench import run
    from solvers.umat.demo import demo
    result = run(["--quick", "--cache-dir", str(tmp_path / "cache")])
    _json.dumps(result)
    assert result["tiling"]["odd_shape_ok"]
    rows = demo(tmp_path / "demo", size=256)
    assert rows[0].value < rows[0].baseline_value
    assert (tmp_path / "demo" / "capture.png").exists() and (tmp_path / "demo" / "rerender.png").exists()
