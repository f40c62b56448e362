"""DCDM: networks, loss, Ritz data, solver with fallback, shipped weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sciml.linalg import cg, eigsh
from solvers.dcdm.data import SPECTRUM_BIAS, merged, prolonged_modes, ritz_basis
from solvers.dcdm.network import PaperDCDMNet, RecursiveUNetDCDMNet, UNetDCDMNet, build_network, flops_per_voxel
from solvers.dcdm.scenes import get_scene, heldout_scenes
from sciml.pretrained import data_dir
from solvers.dcdm.solver import DCDMSolver
from solvers.dcdm.training import DCDMTrainingSetup, dcdm_loss
from sciml.train import TrainConfig


class Identity(nn.Module):
    """A 'network' that returns its input: DCDM with it is CG."""

    config = {"arch": "identity"}

    def forward(self, r):
        return r


class Scaled(nn.Module):
    def __init__(self, inner, scale):
        super().__init__()
        self.inner, self.scale = inner, scale

    def forward(self, r):
        return self.scale * self.inner(r)


def test_paper_network_has_the_papers_size_and_runs_at_any_size():
    net = PaperDCDMNet()
    assert sum(p.numel() for p in net.parameters()) == 97_457
    for shape in [(8, 8, 8), (9, 12, 7), (16, 16, 16)]:
        assert net(torch.randn(2, 1, *shape)).shape == (2, 1, *shape)


def test_unet_is_cheaper_per_voxel_and_runs_at_odd_sizes():
    unet = UNetDCDMNet()
    assert flops_per_voxel(unet) < flops_per_voxel(PaperDCDMNet()) / 4
    assert unet(torch.randn(1, 1, 13, 10, 17)).shape == (1, 1, 13, 10, 17)
    rebuilt = build_network(unet.config)
    assert isinstance(rebuilt, UNetDCDMNet) and rebuilt.config == unet.config
    with pytest.raises(ValueError, match="architecture"):
        build_network({"arch": "resnet"})


def test_recursive_unet_deepens_with_the_grid_and_is_homogeneous():
    torch.manual_seed(0)
    net = RecursiveUNetDCDMNet(4, 6, coarsest=4).double()
    assert [net.depth(s) for s in [(8, 8, 8), (16, 9, 5), (32, 32, 32), (64, 64, 64), (65, 8, 8)]] == [1, 2, 3, 4, 5]
    calls = []
    net.down.register_forward_hook(lambda *_: calls.append(1))
    for shape in [(8, 8, 8), (13, 10, 17), (32, 32, 32)]:
        calls.clear()
        r = torch.randn(2, 1, *shape, dtype=torch.float64)
        assert net(r).shape == r.shape
        assert len(calls) == net.depth(shape)  # the shared block runs once per coarse level
        torch.testing.assert_close(net(3.0 * r), 3.0 * net(r))  # bias-free: f(c r) = c f(r), c > 0
    rebuilt = build_network(net.config)
    assert isinstance(rebuilt, RecursiveUNetDCDMNet) and rebuilt.config == net.config


def test_recursive_unet_max_depth_caps_the_poolings():
    torch.manual_seed(0)
    net = RecursiveUNetDCDMNet(4, 6, coarsest=4, max_depth=3)
    assert [net.depth(s) for s in [(8, 8, 8), (32, 32, 32), (64, 64, 64), (128, 20, 20)]] == [1, 3, 3, 3]
    calls = []
    net.down.register_forward_hook(lambda *_: calls.append(1))
    r = torch.randn(1, 1, 64, 64, 64)
    assert net(r).shape == r.shape and len(calls) == 3  # coarsest grid 8^3, not 4^3
    assert build_network(net.config).max_depth == 3
    assert build_network({"arch": "recursive"}).max_depth is None  # configs saved before the option
    with pytest.raises(ValueError, match="max_depth"):
        RecursiveUNetDCDMNet(max_depth=0)


@pytest.mark.parametrize("net", [PaperDCDMNet(4, (1, 1, 1)), UNetDCDMNet((4, 8)), RecursiveUNetDCDMNet(4, 6)])
def test_networks_run_in_bfloat16_on_any_device(net):
    net = net.to(torch.bfloat16)
    r = torch.randn(1, 1, 12, 12, 12)
    q = net(r.to(torch.bfloat16))
    assert q.dtype == torch.bfloat16 and q.shape == r.shape
    reference = net.float()(r)
    assert torch.linalg.norm(q.float() - reference) <= 0.05 * torch.linalg.norm(reference)


def test_loss_is_scale_invariant_and_zero_for_the_exact_inverse():
    A = get_scene("sphere").at(8).stencil(dtype=torch.float64)
    b = get_scene("sphere").at(8).rhs(seed=1).reshape(1, -1)
    net = PaperDCDMNet().double()
    base = dcdm_loss(net, A, b)
    for c in (3.0, -0.5):
        assert torch.allclose(dcdm_loss(Scaled(net, c), A, b), base, rtol=1e-10)
    fluid = A.fluid.reshape(-1)
    dense = A.to_dense()[fluid][:, fluid]
    inverse = torch.zeros(A.shape, dtype=torch.float64)
    inverse[np.ix_(fluid.numpy(), fluid.numpy())] = torch.linalg.inv(dense)

    class ExactInverse(nn.Module):
        def forward(self, r):
            return (inverse @ r.reshape(-1)).reshape(r.shape)
    assert float(dcdm_loss(ExactInverse(), A, b)) < 1e-20


def test_ritz_values_match_eigsh_and_the_spectrum_bias_is_nine():
    A = get_scene("sphere").at(16).stencil(dtype=torch.float64)
    basis = ritz_basis(A, 400, seed=0)
    fluid = A.fluid.reshape(-1).numpy()
    exact, _ = eigsh(A.to_csr().to_scipy()[fluid][:, fluid], 5)
    assert torch.allclose(basis.values[:5], exact, rtol=1e-6)
    scale = basis.coefficient_scale()
    assert basis.low_modes == 400 // 2 + 400 // 20
    assert torch.all(scale[: basis.low_modes] == SPECTRUM_BIAS) and torch.all(scale[basis.low_modes:] == 1)
    b = basis.sample(4, torch.Generator().manual_seed(0))
    assert torch.allclose(torch.linalg.vector_norm(b, dim=1), torch.ones(4))
    assert b[:, ~torch.as_tensor(fluid)].abs().max() < 1e-6


def test_identity_network_reproduces_cg():
    scene = get_scene("two_spheres").at(16)
    A, b = scene.stencil(), scene.rhs(seed=0)
    result = DCDMSolver(Identity(), network_dtype=torch.float64, fallback=None, stagnation_window=None).solve(
        A, b, tol=1e-6, maxiter=500)
    assert result.converged
    assert abs(result.iterations - cg(A, b, rtol=1e-6).iterations) <= 2


def test_poor_network_falls_back_and_never_fails_silently():
    scene = get_scene("torus").at(12)
    A, b = scene.stencil(), scene.rhs(seed=0)
    torch.manual_seed(0)
    solver = DCDMSolver(PaperDCDMNet(), stagnation_window=5)
    result = solver.solve(A, b, tol=1e-6, maxiter=10)
    assert result.converged and result.residual <= 1e-6
    assert result.info["fallback"] == "mgpcg" and "mgpcg" in result.status
    alone = DCDMSolver(PaperDCDMNet(), fallback=None).solve(A, b, tol=1e-6, maxiter=3)
    assert not alone.converged and "fall back" in alone.status


class _RecordTF32(nn.Module):
    """The identity, recording cuDNN's TF32 switch at each call."""

    def __init__(self):
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, r):
        self.seen.append(torch.backends.cudnn.allow_tf32)
        return r


@pytest.mark.parametrize("tf32", [False, True])
def test_network_runs_with_the_chosen_tf32_switch_and_restores_it(tf32):
    scene = get_scene("sphere").at(8)
    A, b = scene.stencil(), scene.rhs(seed=0)
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = not tf32
    try:
        model = _RecordTF32()
        DCDMSolver(model, tf32=tf32, fallback=None).solve(A, b, tol=1e-3, maxiter=3)
        assert model.seen and set(model.seen) == {tf32}
        assert torch.backends.cudnn.allow_tf32 is (not tf32)
    finally:
        torch.backends.cudnn.allow_tf32 = before


def test_solve_accepts_scipy_and_numpy_and_asks_for_the_grid():
    scene = get_scene("sphere").at(10)
    A = scene.stencil().to_csr().to_scipy()
    b = scene.rhs(seed=2).numpy()
    solver = DCDMSolver(Identity(), network_dtype=torch.float64, stagnation_window=None)
    result = solver.solve(A, b.reshape(10, 10, 10), tol=1e-8, maxiter=300)
    assert result.converged and np.linalg.norm(b - A @ result.x.numpy()) <= 1e-8 * np.linalg.norm(b) * 1.001
    with pytest.raises(ValueError, match="grid"):
        solver.solve(A, b)


def test_save_and_from_pretrained_round_trip(tmp_path):
    solver = DCDMSolver(UNetDCDMNet((4, 8)))
    path = solver.save(tmp_path / "tiny.safetensors", note="test")
    loaded = DCDMSolver.from_pretrained(path)
    r = torch.randn(1, 1, 8, 8, 8)
    assert torch.equal(loaded.model(r), solver.model(r))
    assert loaded.config["note"] == "test" and (tmp_path / "tiny.json").exists()
    with pytest.raises(FileNotFoundError, match="sciml train dcdm"):
        DCDMSolver.from_pretrained("dcdm-nonexistent")


def test_short_training_lowers_the_loss():
    setup = DCDMTrainingSetup.build(["sphere", "box_plate"], [8], lanczos_steps=60)
    torch.manual_seed(0)
    model = UNetDCDMNet((4, 8))
    from solvers.dcdm.training import train_dcdm
    result = train_dcdm(model, setup, TrainConfig(steps=60, lr=3e-3, batch_size=4, device="cpu"))
    assert np.mean(result.losses[-10:]) < 0.7 * np.mean(result.losses[:5])


def test_lanczos_steps_per_size():
    setup = DCDMTrainingSetup.build(["sphere"], [8, 12], lanczos_steps=[30, 50])
    assert setup.bases[0].values.numel() <= 30 < setup.bases[1].values.numel() <= 50
    with pytest.raises(ValueError, match="one per size"):
        DCDMTrainingSetup.build(["sphere"], [8, 12], lanczos_steps=[30, 50, 70])


def test_prolonged_modes_are_the_fine_grids_low_modes():
    coarse_A, A = get_scene("sphere").at(16).stencil(), get_scene("sphere").at(32).stencil()
    coarse = ritz_basis(coarse_A, 300)
    fluid = A.fluid.reshape(-1)
    low = prolonged_modes(coarse, coarse_A.fluid.reshape(-1), 4, A.grid, fluid)
    v = low.vectors.double()
    assert v.shape == (32 ** 3, 4) and low.low_modes == 4
    assert torch.allclose(v.norm(dim=0), torch.ones(4, dtype=v.dtype)) and v[~fluid].abs().max() == 0
    rayleigh = (v * A.matvec(v)).sum(0)
    exact, _ = eigsh(A.to_csr().to_scipy()[fluid.numpy()][:, fluid.numpy()], 1)
    lowest = float(exact[0])
    assert abs(float(rayleigh[0]) / lowest - 1) < 0.1  # a masked interpolation without the fluid weights: 2.4x
    with pytest.raises(ValueError, match="integer factor"):
        prolonged_modes(coarse, coarse_A.fluid.reshape(-1), 4, (24, 24, 24), fluid)
    both = merged(low, ritz_basis(A, 40))
    assert both.values.numel() == 44 and bool((both.values.diff() >= 0).all())
    assert both.low_modes == 4 + 40 // 2 + 2


def test_training_bases_from_coarser_modes_alone():
    setup = DCDMTrainingSetup.build(["sphere"], [8, 16], lanczos_steps=[60, 0], prolong=10)
    assert setup.bases[1].vectors.shape == (16 ** 3, 10) and setup.bases[1].grid == (16, 16, 16)
    with pytest.raises(ValueError, match="no training vectors"):
        DCDMTrainingSetup.build(["sphere"], [8, 16], lanczos_steps=[60, 0])
    for sizes in ([16], [16, 8]):
        with pytest.raises(ValueError, match="at least two sizes in ascending order"):
            DCDMTrainingSetup.build(["sphere"], sizes, lanczos_steps=60, prolong=10)


# where each solves alone
@pytest.mark.parametrize("name, n", [("dcdm-unet", 16), ("dcdm-recursive", 32), ("dcdm-recursive-gpu", 32)])
def test_shipped_model_beats_cg_on_a_heldout_scene(name, n):
    if not (data_dir() / f"{name}.safetensors").exists():
        pytest.skip("shipped weights not present")
    scene = heldout_scenes()[0].at(n)
    A, b = scene.stencil(), scene.rhs(seed=0)
    result = DCDMSolver.from_pretrained(name).solve(A, b, tol=1e-6)
    assert result.converged and result.info["fallback"] is None
    assert result.iterations < cg(A, b, rtol=1e-6).iterations


def test_more_orthogonalisation_saves_iterations_of_the_shipped_network():
    """The default n_orth=32 against the paper's 2, on a held-out scene at 32^3 (29 -> 20 iterations)."""
    scene = get_scene("torus").at(32)
    A, b = scene.stencil(), scene.rhs(seed=0)
    paper, default = (DCDMSolver.from_pretrained(n_orth=k, fallback=None).solve(A, b, tol=1e-6, maxiter=200)
                      for k in (2, 32))
    assert DCDMSolver.from_pretrained().n_orth == 32
    assert paper.converged and default.converged
    assert default.iterations <= 0.8 * paper.iterations


def test_bench_rows_and_summary_on_a_tiny_scene():
    from solvers.dcdm.bench import COLUMNS, bench_scene, summarise
    from sciml.benchmarks.table import format_table
    solvers = {"identity": DCDMSolver(Identity(), network_dtype=torch.float64, stagnation_window=None)}
    rows = bench_scene("torus", 10, "cpu", solvers, tol=1e-6, repeats=1, maxiter=500)
    methods = [r["method"] for r in rows]
    assert methods[:3] == ["identity", "sciml cg", "sciml mg-pcg"] and "scipy cg" in methods
    assert all(r["true_residual"] <= 1e-6 * 1.001 for r in rows)
    cg_row = rows[1]
    assert abs(rows[0]["iterations"] - cg_row["iterations"]) <= 2 and cg_row["iterations_vs_cg"] == 1.0
    summary = summarise(rows, ["identity"], 1e-6)["identity"]
    assert summary["failures"] == 0 and summary["solved_by_dcdm"] == {10: "1/1"}
    assert summary["median_residual_at_fallback"] == {10: None}
    assert "net/mv/orth" in format_table(rows, COLUMNS)


def test_unrolled_loss_with_one_step_is_the_papers_loss_and_decreases_over_steps():
    from solvers.dcdm.training import dcdm_unrolled_loss
    scene = get_scene("sphere").at(8)
    A, b = scene.stencil(), torch.stack([scene.rhs(seed=i) for i in range(3)])
    net = UNetDCDMNet((4, 8)).double()
    assert torch.allclose(dcdm_unrolled_loss(net, A, b, 1), dcdm_loss(net, A, b), rtol=1e-12)
    identity = Identity()
    # with the identity the unrolled iterations are CG's: each step's ratio is < 1
    assert float(dcdm_unrolled_loss(identity, A, b, 4)) < 1.0


def test_demo_writes_files_and_reports_the_fallback_split(tmp_path):
    from solvers.dcdm.demo import demo
    rows = demo(tmp_path, n=16, plume_n=12, plume_steps=2)
    assert [r.solver for r in rows] == ["dcdm", "dcdm"]
    assert "DCDM +" in rows[0].problem and rows[0].value < rows[0].baseline_value
    assert (tmp_path / "solution.vti").exists() and (tmp_path / "convergence.png").exists()
    assert rows[1].files[0].exists() and rows[1].files[0].suffix == ".pvd"


def test_on_policy_samples_are_the_networks_own_residuals():
    from solvers.dcdm.training import _with_own_residuals
    scene = get_scene("sphere").at(8)
    A, b = scene.stencil(), torch.stack([scene.rhs(seed=i) for i in range(4)])
    net = UNetDCDMNet((4, 8)).double()
    mixed = _with_own_residuals(net, A, b, 0.5)
    assert torch.equal(mixed[2:], b[2:])
    assert torch.allclose(torch.linalg.vector_norm(mixed, dim=1), torch.ones(4, dtype=torch.float64))
    with torch.no_grad():
        q = net(b[:2].reshape(2, 1, 8, 8, 8)).reshape(2, -1) * A.fluid.reshape(1, -1)
    # an exact line search leaves a residual orthogonal to the search direction
    assert torch.allclose((mixed[:2] * q).sum(1), torch.zeros(2, dtype=torch.float64), atol=1e-10)
