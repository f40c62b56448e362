import json

import pytest
import torch

from solvers.dgno.model import DGNO


@pytest.mark.slow
def test_train_two_stages_and_stores_the_latent_prior(tmp_path):
    from solvers.dgno.commands import train
    common = ["--n-train", "4", "--refine", "1", "--latent", "4", "--width", "8", "--depth", "2",
              "--n-centres", "4", "--batch", "2", "--cache-dir", str(tmp_path), "--no-progress"]
    assert train([*common, "--steps", "3", "--name", "s1", "--out", str(tmp_path)]) == 0
    first = DGNO.load(tmp_path / "s1.safetensors")
    assert first.latent_prior() is not None
    assert train([*common, "--steps", "0", "--init-weights", str(tmp_path / "s1.safetensors"), "--refine-steps", "3",
                  "--refine-batch", "2", "--n-unlabelled", "8", "--name", "s2", "--out", str(tmp_path)]) == 0
    recipe = json.loads((tmp_path / "s2.json").read_text())
    assert recipe["latent_refinement"]["steps"] == 3 and recipe["steps"] == 0
    second = DGNO.load(tmp_path / "s2.safetensors")
    for name in ("u_decoder", "flux_decoders"):  # the refinement leaves the physics decoders alone
        a, b = getattr(first, name).state_dict(), getattr(second, name).state_dict()
        assert all((a[k] == b[k]).all() for k in a)
    with pytest.raises(ValueError, match="--init-weights"):
        train([*common, "--steps", "0", "--out", str(tmp_path)])


@pytest.mark.slow
def test_train_stage_three_changes_only_the_solution_decoders(tmp_path):
    from solvers.dgno.commands import train
    common = ["--n-train", "4", "--refine", "1", "--latent", "4", "--width", "8", "--depth", "2",
              "--n-centres", "4", "--batch", "2", "--cache-dir", str(tmp_path), "--no-progress"]
    assert train([*common, "--steps", "3", "--name", "s1", "--out", str(tmp_path)]) == 0
    assert train([*common, "--steps", "0", "--init-weights", str(tmp_path / "s1.safetensors"), "--physics-steps", "3",
                  "--physics-batch", "2", "--name", "s3", "--out", str(tmp_path)]) == 0
    recipe = json.loads((tmp_path / "s3.json").read_text())
    assert recipe["solution_decoder_refinement"]["steps"] == 3
    first, third = DGNO.load(tmp_path / "s1.safetensors"), DGNO.load(tmp_path / "s3.safetensors")
    for name, same in (("encoder", True), ("a_decoder", True), ("u_decoder", False)):
        a, b = getattr(first, name).state_dict(), getattr(third, name).state_dict()
        assert all((a[k] == b[k]).all() for k in a) == same, name


def test_stage_checkpoints_are_keyed_by_the_starting_point(tmp_path):
    """Same --name, other --init-weights: another checkpoint folder (no stale resume); more steps of
    the same stage, or other options of a later stage: the same folder (resumable)."""
    from solvers.dgno.commands import _parser, _stage_dir
    from solvers.dgno.model import DGNOConfig
    base = ["--cache-dir", str(tmp_path), "--steps", "0", "--physics-steps", "10"]
    args = _parser().parse_args(base)
    torch.manual_seed(0)
    one = DGNO(DGNOConfig(latent=4, width=8, depth=2, n_centres=4))
    torch.manual_seed(1)
    other = DGNO(DGNOConfig(latent=4, width=8, depth=2, n_centres=4))
    folder = _stage_dir(args, "physics", one)
    assert folder.parent == tmp_path and folder.name.startswith("physics_dgno-two-phase-")
    assert _stage_dir(args, "physics", other) != folder
    longer = _parser().parse_args([*base[:-1], "20"])
    assert _stage_dir(longer, "physics", one) == folder
    assert _stage_dir(_parser().parse_args([*base, "--physics-lr", "1e-4"]), "physics", one) != folder
    assert _stage_dir(_parser().parse_args([*base, "--physics-lr", "1e-4"]), "refine", one) == \
        _stage_dir(args, "refine", one)


def test_train_widens_the_coefficient_decoder_of_trained_weights(tmp_path):
    """--a-width on --init-weights: a fresh, wider a-decoder trained by the refinement; the u- and
    flux decoders are the starting model's; without a stage that trains it, a clear error."""
    from solvers.dgno.commands import train
    common = ["--n-train", "4", "--refine", "1", "--latent", "4", "--width", "8", "--depth", "2",
              "--n-centres", "4", "--batch", "2", "--cache-dir", str(tmp_path), "--no-progress", "--out", str(tmp_path)]
    assert train([*common, "--steps", "2", "--name", "s1"]) == 0
    start = ["--steps", "0", "--init-weights", str(tmp_path / "s1.safetensors"), "--a-width", "12", "--a-depth", "3"]
    with pytest.raises(ValueError, match="--refine-steps"):
        train([*common, *start, "--name", "wide"])
    with pytest.raises(ValueError, match="other sizes"):
        train([*common, *start, "--latent", "5", "--refine-steps", "2", "--name", "wide"])
    assert train([*common, *start, "--refine-steps", "2", "--refine-batch", "2", "--name", "wide"]) == 0
    first, wide = DGNO.load(tmp_path / "s1.safetensors"), DGNO.load(tmp_path / "wide.safetensors")
    assert (wide.config.a_width, wide.config.a_depth, wide.config.width) == (12, 3, 8)
    assert len(wide.a_decoder.branch.layers) != len(first.a_decoder.branch.layers)
    for name in ("u_decoder", "flux_decoders"):
        a, b = getattr(first, name).state_dict(), getattr(wide, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
