"""Bundled data, the fixed split, shipped weights and the CLI entry points."""
import json

import numpy as np
import pytest
import torch

from solvers.lpn import data


def test_split_by_image_is_disjoint_and_fixed():
    assert not set(data.TRAIN_IMAGES) & set(data.HELDOUT_IMAGES)
    assert data.faces("train").shape == (160, 25, 25) and data.faces("heldout").shape == (40, 25, 25)
    held = data.heldout_images(64)
    assert set(held) == set(data.HELDOUT_IMAGES) and all(im.shape == (64, 64) for im in held.values())
    with pytest.raises(ValueError, match="split"):
        data.faces("test")


def test_photos_set_adds_the_other_packages_photographs_and_holds_none_out():
    more = [data.gray_image(name) for name in data.MORE_PHOTOS]
    assert all(im.ndim == 2 and im.min() == 0 and im.max() == 1 and min(im.shape) >= 150 for im in more)
    assert not set(data.MORE_PHOTOS) & set(data.HELDOUT_IMAGES + data.TRAIN_IMAGES)
    base, photos = data.sample_patches("images", 8), data.sample_patches("photos", 8)
    assert len(photos.images) == len(base.images) + len(data.MORE_PHOTOS)
    # each photograph (old or new) equally likely; the faces keep their share of two photographs
    assert torch.allclose(photos.weights[:len(data.TRAIN_IMAGES) + len(more)], photos.weights[0])
    with pytest.raises(ValueError, match="no bundled image"):
        data.gray_image("lily_of_the_valley")


def test_patch_sampler_deterministic_from_generator():
    sampler = data.PatchSampler([np.arange(100.0).reshape(10, 10) / 100, np.ones((4, 4))], patch=6)
    a = sampler(5, torch.Generator().manual_seed(0))
    b = sampler(5, torch.Generator().manual_seed(0))
    assert a.shape == (5, 1, 6, 6) and torch.equal(a, b)


def test_phantoms_in_unit_range():
    p = data.ellipse_phantom(32, np.random.default_rng(0))
    assert p.shape == (32, 32) and 0 <= p.min() and p.max() <= 1 and p.std() > 0
    s = data.shepp_logan(64)
    assert s.shape == (64, 64) and 0 <= s.min() and s.max() <= 1
    # default: no shell, the same phantom as before the option existed; shell_probability=1: a bright rim
    q = data.ellipse_phantom(32, np.random.default_rng(0), shell_probability=0.0)
    assert np.array_equal(p, q)
    rim = [data.ellipse_phantom(64, np.random.default_rng(k), n_ellipses=0, shell_probability=1.0)
           for k in range(3)]
    assert all(r.max() >= 0.7 and r[32, 32] <= 0.4 for r in rim)
    with pytest.raises(ValueError, match="ellipses-shell"):
        data.sample_patches("phantoms", 8)


@pytest.mark.parametrize("name", ["lpn-gray", "lpn-gray-h48", "lpn-gray-photos", "lpn-ct", "lpn-laplace-pm",
                                  "lpn-laplace-pm-quadrature", "lpn-laplace-l2", "lpn-digits"])
def test_shipped_weights_have_recipe_and_are_small(name):
    from sciml.pretrained import data_dir
    from solvers.lpn.model import load_lpn
    path = data_dir() / f"{name}.safetensors"
    assert path.stat().st_size < 2_000_000
    recipe = json.loads(path.with_suffix(".json").read_text())
    assert recipe["command"].startswith("sciml train lpn")
    model = load_lpn(name)
    assert model.potential.min_constrained_weight() >= 0.0


def test_default_model_recipe_chains_its_stages():
    from sciml.pretrained import data_dir
    from solvers.lpn.model import DEFAULT_MODEL
    recipe = json.loads((data_dir() / f"{DEFAULT_MODEL}.json").read_text())
    commands = [stage["command"].split() for stage in recipe["stages"]]
    names = [c[c.index("--name") + 1] for c in commands]
    assert names[-1] == DEFAULT_MODEL and recipe["command"] == recipe["stages"][-1]["command"]
    assert "--init" not in commands[0]
    assert [c[c.index("--init") + 1] for c in commands[1:]] == names[:-1]  # each stage starts from the one before


def test_missing_weights_name_the_command():
    from solvers.lpn.model import load_lpn
    with pytest.raises(FileNotFoundError, match="sciml train lpn"):
        load_lpn("lpn-nonexistent")


def test_registered():
    from sciml.registry import get
    entry = get("lpn")
    assert entry.bench and entry.demo and entry.train


def test_bench_targets_logic():
    from solvers.lpn.bench import targets
    out = {"denoising": {"mean_lpn_minus_tv_db": 0.6}, "ct": {"lpn_admm_minus_fbp_db": 2.0},
           "laplace": {"pm": {"sup_error": 0.05, "r_correlation": 0.995}, "l2": {"sup_error": 0.4}}}
    t = targets(out)
    assert t["denoising_0.5dB_above_tv"] and not t["ct_3dB_above_fbp"]
    assert t["laplace_pm_sup_error_below_0.1"] and t["laplace_l2_visibly_worse"]
    # the quadrature-trained model decides the target where present; the sampled one is reported
    out["laplace"]["pm"]["sup_error"] = 0.17
    out["laplace"]["pm-quadrature"] = {"sup_error": 0.06, "r_correlation": 0.999}
    t = targets(out)
    assert t["laplace_pm_sup_error_below_0.1"] and not t["laplace_pm_sampled_sup_error_below_0.1"]
    # the prior: the photograph prior and the paper's digits experiment are reported apart
    exact = {"symmetric_to_1e-8": True, "psd": True, "convex": True, "min_constrained_weight": 0.0}
    out = {"prior": {"noise": {"increasing": True}, "blur": {"increasing": False}},
           "digits": {"noise": {"increasing": True}, "blur": {"increasing": True}, "exactness": exact}}
    t = targets(out)
    assert t["prior_photos_rises_with_noise"] and not t["prior_photos_rises_with_blur"]
    assert t["prior_digits_rises_with_noise"] and t["prior_digits_rises_with_blur"] and t["digits_model_exact_prox"]


@pytest.mark.slow
def test_demo_writes_panel(tmp_path):
    from solvers.lpn.demo import demo
    rows = demo(tmp_path, "cpu", size=64)
    assert (tmp_path / "lpn_panel.png").exists() and len(rows) == 2
    assert rows[0].value > 20 and rows[1].value > 20


@pytest.mark.slow
def test_bench_small_sections():
    from solvers.lpn.bench import run
    out = run(["--only", "exactness", "denoising", "--size", "96", "--device", "cpu"])
    assert out["targets"]["exact_prox"]
    assert out["denoising"]["mean_lpn_psnr"] > out["denoising"]["mean_noisy_psnr"] + 5


def test_train_cli_dilations_and_recipe(tmp_path):
    from solvers.lpn.commands import train
    from solvers.lpn.model import load_lpn
    out = tmp_path / "tiny.safetensors"
    argv = ["--data", "images", "--patch", "8", "--layers", "3", "--hidden", "4", "--dilations", "1", "2",
            "--steps", "2", "--batch-size", "2", "--out", str(out), "--checkpoint-dir", str(tmp_path / "ck")]
    assert train(argv) == 0
    model = load_lpn(out)
    assert model.config["dilations"] == [1, 2] and model.config["hidden"] == 4
    assert model.recipe["command"] == "sciml train lpn " + " ".join(argv)
    assert model.potential.min_constrained_weight() >= 0.0


def test_digits_are_mnist_like_and_split_fixed():
    train, held = data.digits("train"), data.digits("heldout")
    assert train.shape == (1500, 28, 28) and held.shape == (297, 28, 28)
    assert train.min() == 0 and max(train.max(), held.max()) == 1
    # sharp strokes: most pixels are near 0 or 1, as in MNIST
    assert np.mean((train > 0.1) & (train < 0.9)) < 0.15
    assert not {im.tobytes() for im in held} & {im.tobytes() for im in train}
    sampler = data.sample_patches("digits", 28)
    batch = sampler(8, torch.Generator().manual_seed(0)).numpy()[:, 0]
    assert all(any(np.array_equal(b, t) for t in train) for b in batch)  # whole digits, never flipped
    with pytest.raises(ValueError, match="--patch 28"):
        data.sample_patches("digits", 20)


def test_train_cli_digits_builds_the_global_network(tmp_path):
    from solvers.lpn.commands import train
    from solvers.lpn.model import load_lpn
    out = tmp_path / "digits.safetensors"
    argv = ["--data", "digits", "--hidden", "2", "--head", "3", "--steps", "2", "--batch-size", "2",
            "--out", str(out), "--checkpoint-dir", str(tmp_path / "ck")]
    assert train(argv) == 0
    model = load_lpn(out)
    assert model.architecture == "global" and model.config["size"] == 28 and model.config["head"] == 3
    assert model.recipe["patch"] == 28 and model.potential.min_constrained_weight() >= 0.0
    with pytest.raises(ValueError, match="--head"):
        train(argv + ["--layers", "3"])


def test_shipped_digits_prior_rises_with_blur_and_noise_and_is_not_convex():
    """The paper's prior experiment (its Fig. 3) with the shipped fixed-size network, on 16 held-out digits."""
    from solvers.lpn.experiments import prior_curves
    from solvers.lpn.model import load_lpn
    model = load_lpn("lpn-digits")
    clean = torch.as_tensor(data.digits("heldout")[:16])[:, None]
    out = prior_curves(model, clean, noises=(0.0, 0.1), blurs=(0.0, 1.0, 2.0), mixes=(0.0, 0.5, 1.0), maxiter=200)
    assert out["noise"]["increasing"] and out["blur"]["increasing"] and out["mix"]["middle_above_ends"]
    assert min(out["blur"]["fraction_of_images_rising"]) >= 0.9
    assert max(max(out[k]["max_inversion_residual"]) for k in ("noise", "blur", "mix")) < 1e-3
