import json

import pytest
import torch

from solvers.dgno.model import DGNO, DGNOConfig


def test_demo_writes_png_and_vtu(tmp_path):
    from sciml.io import read_vtk
    from solvers.dgno.demo import demo
    torch.manual_seed(0)
    model = DGNO(DGNOConfig(n_pix=9, latent=8, encoder_hidden=(16,), width=12, depth=3))
    with torch.no_grad():
        model.u_decoder.layer_weights.fill_(1.0)
    weights = model.save(tmp_path / "tiny.safetensors")
    rows = demo(tmp_path / "out", "cpu", weights=str(weights), n_obs=20, steps=5, members=2)
    assert [f.name for f in rows[0].files] == ["inverse.png", "inverse.vtu"]
    assert all(f.stat().st_size > 0 for f in rows[0].files)
    mesh = read_vtk(rows[0].files[1])
    assert {"a_true", "a_mean", "a_std"} <= set(mesh["cell_data"]) and "u_recovered" in mesh["point_data"]


def test_registered():
    import solvers.dgno
    assert solvers.dgno.ENTRY.name == "dgno" and solvers.dgno.ENTRY.bench and solvers.dgno.ENTRY.demo


@pytest.mark.slow
def test_bench_quick(tmp_path):
    from solvers.dgno.bench import run
    res = run(["--quick", "--cache-dir", str(tmp_path)])
    json.dumps({k: v for k, v in res.items() if k != "table"}, default=str)
    assert res["weak_residual"]["manufactured"][0]["exact_over_source"] < 1e-8
    assert res["data"]["self_check"]["passed"]
    assert {"deeponet", "multionet"} <= set(res["forward"]["baselines"])
    assert "25" in res["inverse"]
