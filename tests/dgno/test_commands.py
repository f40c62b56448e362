import json

import pytest

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
