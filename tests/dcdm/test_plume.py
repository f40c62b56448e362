"""The smoke-plume simulator: projection, boundaries, output files, pluggable solver."""
from __future__ import annotations

import runpy
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

from sciml.io import read_vtk
from sciml.linalg import PoissonStencil, cg
from solvers.dcdm.plume import moving_sphere_obstacle, simulate_plume

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 14^3 run of 6 steps with the default moving sphere, frames written every 2 steps."""
    out = tmp_path_factory.mktemp("plume")
    return simulate_plume(14, 6, out_dir=out, every=2)


def _divergence(u, v, w, h):
    return (u.diff(dim=0) + v.diff(dim=1) + w.diff(dim=2)) / h


def test_projection_removes_divergence_on_fluid_cells(run):
    assert all(run.converged)
    assert max(run.divergence_ratio) <= 1e-5
    assert all(after <= 1e-5 * before for after, before in zip(run.divergence, run.divergence_before))
    assert min(run.divergence_before) > 1.0          # there was something to remove
    # recomputed independently from the final fields
    div = _divergence(run.u, run.v, run.w, 1 / 14)[~run.solid]
    assert float(div.abs().max()) == pytest.approx(run.divergence[-1], rel=1e-9, abs=1e-12)
    assert max(run.residuals) <= 1e-6


def test_smoke_rises(run):
    heights = run.smoke_height
    assert all(b > a for a, b in zip(heights, heights[1:]))
    z = (torch.arange(14, dtype=torch.float64) + 0.5) / 14
    assert float((run.density * z).sum() / run.density.sum()) == pytest.approx(heights[-1])
    assert float(run.density[run.solid].abs().max()) == 0.0


def test_wall_and_obstacle_faces(run):
    n, solid = 14, run.solid
    assert solid.any() and run.obstacle_velocity[0] > 0
    assert float(run.u[[0, n]].abs().max()) == 0.0
    assert float(run.v[:, [0, n]].abs().max()) == 0.0
    bottom = run.w[:, :, 0]
    assert float(bottom.max()) == pytest.approx(1.0) and float(bottom.min()) == 0.0   # inflow disc, walls 0
    c = (np.arange(n) + 0.5) / n
    disc = torch.as_tensor((c[:, None] - 0.5) ** 2 + (c[None, :] - 0.5) ** 2 < 0.12 ** 2)
    assert float(bottom[~disc].abs().max()) == 0.0
    # interior faces touching the sphere move with it
    touch_u = solid[1:] | solid[:-1]
    assert torch.all(run.u[1:n][touch_u] == run.obstacle_velocity[0])
    for f, axis in ((run.v, 1), (run.w, 2)):
        touch = solid.narrow(axis, 1, n - 1) | solid.narrow(axis, 0, n - 1)
        assert float(f.narrow(axis, 1, n - 1)[touch].abs().max()) == 0.0


def test_pvd_references_written_vti_files(run):
    assert [f.name for f in run.files] == ["plume_0002.vti", "plume_0004.vti", "plume_0006.vti"]
    tree = ET.parse(run.pvd)
    entries = tree.getroot().findall("./Collection/DataSet")
    assert [float(e.get("timestep")) for e in entries] == pytest.approx([2 * run.dt, 4 * run.dt, 6 * run.dt])
    for entry in entries:
        assert (run.pvd.parent / entry.get("file")).is_file()
    data = read_vtk(run.files[-1])
    cells = data["cell_data"]
    assert {"density", "pressure", "speed", "solid", "velocity"} <= set(cells)
    assert cells["velocity"].shape == (14, 14, 14, 3) and cells["density"].shape == (14, 14, 14)
    np.testing.assert_allclose(cells["density"], run.density.numpy(), rtol=1e-6)


def test_custom_pressure_solve_called_once_per_step():
    calls = []

    def solve(A, b):
        assert isinstance(A, PoissonStencil) and b.shape == (12 ** 3,) and b.dtype == torch.float64
        assert torch.all(b[A.solid.reshape(-1)] == 0)
        calls.append(A.grid)
        return cg(A, b, rtol=1e-8)

    result = simulate_plume(12, 3, pressure_solve=solve)
    assert calls == [(12, 12, 12)] * 3
    assert len(result.iterations) == 3 and max(result.residuals) <= 1e-8


def test_deterministic():
    first, second = (simulate_plume(12, 3) for _ in range(2))
    for name in ("u", "v", "w", "density", "pressure"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert first.iterations == second.iterations


def test_sealed_pocket_becomes_solid_and_masks_iterable():
    n = 12
    shell = np.zeros((n, n, n), bool)
    shell[2:6, 2:6, 5:9] = True
    shell[3:5, 3:5, 6:8] = False                    # a hollow box: its inside is sealed fluid
    result = simulate_plume(n, 2, obstacle=[shell, torch.as_tensor(shell)])
    assert bool(result.solid[3:5, 3:5, 6:8].all()) and result.obstacle_velocity == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="ran out at step 1"):
        simulate_plume(n, 2, obstacle=[shell])
    with pytest.raises(ValueError, match="bool array of shape"):
        simulate_plume(n, 1, obstacle=[shell.astype(float)])


def test_moving_sphere_crosses_the_box():
    obstacle = moving_sphere_obstacle(16, 10)
    (first, velocity), (last, _) = obstacle(0), obstacle(10)
    x = (np.arange(16) + 0.5) / 16

    def centre(m):
        return float((m.sum(axis=(1, 2)) * x).sum() / m.sum())
    assert centre(first) == pytest.approx(0.2, abs=0.02) and centre(last) == pytest.approx(0.8, abs=0.02)
    assert velocity == pytest.approx((0.6 / (10 / 16), 0.0, 0.0))


def test_example_script_runs(tmp_path, capsys):
    module = runpy.run_path(str(ROOT / "examples" / "smoke_plume.py"))
    result = module["main"](["--n", "12", "--steps", "2", "--out", str(tmp_path), "--solver", "cg"])
    assert result.pvd.is_file() and len(result.files) == 2
    assert "summary: 2/2 solves converged" in capsys.readouterr().out
