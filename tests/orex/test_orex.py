"""OReX: network, sampling, baseline, a tiny reconstruction, registry."""
import numpy as np
import pytest
import torch
import trimesh

from geometry.mesh_slicing import random_planes, slice_mesh
from solvers.orex.baseline import SliceDistanceInterpolation
from solvers.orex.metrics import genus, plane_iou, ripple, surface_distances, volume_iou
from solvers.orex.model import OReX, OReXConfig
from solvers.orex.network import LearnableFourierEncoding, OReXNet, iteration_embedding
from solvers.orex.sampling import hull_samples, level_dataset, sample_level


@pytest.fixture(scope="module")
def sphere_slices():
    mesh = trimesh.creation.icosphere(subdivisions=3)
    return mesh, slice_mesh(mesh, random_planes(6, radius=1.0, spread=0.5, seed=0))


def test_network_shapes_and_paper_widths():
    net = OReXNet()  # paper sizes
    assert net.encoding.out_features == 33
    assert net.mlp[0].in_features == 66 and net.mlp[-1].out_features == 33
    assert sum(isinstance(m, torch.nn.Linear) for m in net.mlp) == 8  # 7 hidden layers + output
    x = torch.rand(5, 3)
    assert net(x).shape == (10, 5)
    assert net(x, n_iterations=1).shape == (1, 5)
    torch.testing.assert_close(net.field(x), net(x)[-1])


def test_encoding_frequencies_are_learned_and_gradcheck():
    enc = LearnableFourierEncoding(3).double()
    x = torch.rand(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(enc, (x,))
    enc(x).sum().backward()
    assert enc.frequencies.grad is not None and enc.frequencies.grad.abs().sum() > 0


def test_refinement_loop_accumulates_logits():
    torch.manual_seed(0)
    net = OReXNet(n_frequencies=2, hidden_state=4, width=8, depth=2, n_iterations=4).double()
    x = torch.rand(3, 3, dtype=torch.float64)
    logits = net(x)
    # each step adds a delta to the previous logit: recompute the loop by hand
    pe = net.encoding(x)
    logit, hidden = net.initial_logit.expand(3, 1), net.initial_hidden.expand(3, 4)
    emb = iteration_embedding(4, 4, torch.float64)
    for i in range(4):
        out = net.mlp(torch.cat([pe, logit, hidden + emb[i]], 1))
        logit, hidden = logit + out[:, :1], out[:, 1:]
        torch.testing.assert_close(logits[i], logit[:, 0])


def test_samples_are_labelled_by_the_slices(sphere_slices):
    _, slices = sphere_slices
    rng = np.random.default_rng(0)
    level = sample_level(slices, 2.0 ** -5, 2, 200, rng)
    assert set(np.unique(level.labels)) <= {0.0, 0.5, 1.0}
    near = level.kind == 0
    for k, sec in enumerate(slices):
        on_plane = np.abs(sec.plane.signed_distance(level.points)) < 1e-9
        mask = near & on_plane
        np.testing.assert_array_equal(level.labels[mask] == 0, slices.inside(k, level.points[mask]))
    # offsets by +-r on both sides of every edge: about half inside, half outside
    assert 0.3 < (level.labels[near] == 0).mean() < 0.7
    hull = hull_samples(slices, 500, rng)
    assert np.all(hull.labels == 1) and np.linalg.norm(hull.points, axis=1).min() > 0.5
    data = level_dataset([level, hull, level], 2, reuse=2)
    assert len(data) == len(level) + len(hull)


def test_contour_spacing_resamples_rings_by_arc_length(sphere_slices):
    from geometry.polygon import pack_rings, signed_distance_2d
    from solvers.orex.sampling import _resample_ring
    t = np.linspace(0, 2 * np.pi, 500, endpoint=False)
    ring = np.stack([np.cos(t), 0.5 * np.sin(t)], 1)  # 500 edges
    pts = _resample_ring(ring, 0.1, np.random.default_rng(0))
    perimeter = np.linalg.norm(np.roll(ring, -1, 0) - ring, axis=1).sum()
    assert len(pts) == int(np.ceil(perimeter / 0.1))
    assert np.abs(signed_distance_2d(pts, *pack_rings([ring]))).max() < 1e-12  # on the ring
    gaps = np.linalg.norm(np.roll(pts, -1, 0) - pts, axis=1)
    assert gaps.max() < 0.1 + 1e-9 and gaps.min() > 0.09  # equally spaced in arc length
    _, slices = sphere_slices
    rng = np.random.default_rng(0)
    dense = sample_level(slices, 2.0 ** -5, 2, 0, rng)
    coarse = sample_level(slices, 2.0 ** -5, 2, 0, rng, spacing=0.5)
    assert 0 < len(coarse) < len(dense)
    near = coarse.kind == 0
    for k, sec in enumerate(slices):
        mask = near & (np.abs(sec.plane.signed_distance(coarse.points)) < 1e-9)
        np.testing.assert_array_equal(coarse.labels[mask] == 0, slices.inside(k, coarse.points[mask]))


def test_baseline_reproduces_the_slices(sphere_slices):
    mesh, slices = sphere_slices
    base = SliceDistanceInterpolation().fit(slices)
    assert plane_iou(slices, base.field, n=64).min() > 0.999
    assert volume_iou(mesh, base.field, resolution=32) > 0.8


def test_plane_iou_is_accurate_on_a_small_section():
    """A plane near the sphere's edge cuts a small section; a field whose sphere is 2 % larger
    contains it, so the 2-D IoU is the section's area over the larger disc's. The coarse grid
    alone counts few cells of the section."""
    from geometry.slices import Plane
    mesh = trimesh.creation.icosphere(subdivisions=5)
    plane = Plane(np.array([0.0, 0.3, 1.0]), -0.95)
    slices = slice_mesh(mesh, [plane])
    ring = slices[0].rings_2d()[0]
    area = 0.5 * abs(np.sum(ring[:, 0] * np.roll(ring[:, 1], -1) - np.roll(ring[:, 0], -1) * ring[:, 1]))
    exact = area / (np.pi * (1.02 ** 2 - plane.offset ** 2))

    def field(p):
        return np.linalg.norm(p, axis=1) - 1.02
    fine = plane_iou(slices, field, n=32)[0]
    coarse = plane_iou(slices, field, n=32, fine=None)[0]
    assert abs(fine - exact) < 2e-3 < abs(coarse - exact)


def test_tiny_reconstruction_fits_the_slices(sphere_slices):
    mesh, slices = sphere_slices
    rec = OReX(OReXConfig.tiny(seed=1)).fit(slices)
    assert rec.history[-1]["bce"] < rec.history[0]["bce"] + 0.05
    assert plane_iou(slices, rec.field, n=48).mean() > 0.8
    recon = rec.mesh(resolution=24)
    assert len(recon.faces) > 0 and recon.is_watertight
    assert volume_iou(mesh, rec.field, resolution=24) > 0.7  # about 0.8-0.9 over seeds
    assert surface_distances(mesh, recon, count=2000)["chamfer"] < 0.05
    assert genus(recon) is not None
    assert np.isfinite(ripple(recon, slices, band=0.1))


def test_fit_is_deterministic(sphere_slices):
    _, slices = sphere_slices
    cfg = OReXConfig.tiny(epochs=[1, 1], max_steps_per_level=3)
    pts = np.random.default_rng(0).uniform(-1, 1, (50, 3))
    a = OReX(cfg).fit(slices).field(pts)
    b = OReX(cfg).fit(slices).field(pts)
    np.testing.assert_array_equal(a, b)


def test_field_is_outside_beyond_the_normalised_cube():
    # a net that says "inside" everywhere: inside the cube the field keeps the logit, beyond it
    # (no training samples, no mesh) the field is positive and grows with the distance to the cube
    rec = OReX(OReXConfig.tiny())
    rec.net = OReXNet(2, 4, 8, 2, 2)
    with torch.no_grad():
        rec.net.mlp[-1].weight.zero_()
        rec.net.mlp[-1].bias.zero_()
        rec.net.initial_logit.fill_(-5.0)
    pts = np.array([[0.0, 0.0, 0.0], [0.99, -0.99, 0.5], [1.2, 0.0, 0.0], [0.0, -1.5, 0.3]])
    np.testing.assert_allclose(rec.logits_normalized(pts), [-5.0, -5.0, 0.2, 0.5], atol=1e-6)
    np.testing.assert_allclose(rec.logits_normalized(pts, clamp_domain=False), -5.0, atol=1e-6)
    rec.scale, rec.shift = 0.5, np.array([1.0, 0.0, 0.0])  # input coordinates: x_n = 0.5 (x + shift)
    assert rec.field(np.array([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0]])).tolist() == pytest.approx([-5.0, 0.25])


def test_hinge_gradient_norm_last_and_all_iterations():
    from solvers.orex.model import _grad_norm
    torch.manual_seed(0)
    net = OReXNet(n_iterations=3, width=16, depth=2, hidden_state=4, n_frequencies=2).double()
    x = torch.rand(7, 3, dtype=torch.float64) * 2 - 1
    per_iteration = []
    for t in range(3):
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(net(xg)[t].sum(), xg)
        per_iteration.append(g.norm(dim=1))
    per_iteration = torch.stack(per_iteration)
    last, every = _grad_norm(net, x, "last"), _grad_norm(net, x, "all")
    assert torch.allclose(last, per_iteration[-1]) and torch.allclose(every, per_iteration.max(0).values)
    every.sum().backward()  # differentiable in the weights (the hinge trains them)
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_capped_steps_shared_in_proportion_to_epochs(sphere_slices):
    _, slices = sphere_slices
    plans = {}
    for shares in ("equal", "epochs"):
        model = OReX(OReXConfig.cpu(cap_shares=shares, max_steps_per_level=10))
        model.scale, model.shift = slices.normalization()
        levels, epochs = model._levels(slices.transformed(model.scale, model.shift), np.random.default_rng(0))
        plans[shares] = model._plan(levels, epochs)
    assert plans["equal"] == [10] * 6
    assert plans["epochs"] == [round(60 * e / 38) for e in (4, 4, 6, 6, 8, 10)]  # finer levels get more
    with pytest.raises(ValueError, match="cap_shares"):
        OReXConfig(cap_shares="fine")


def test_configs():
    paper = OReXConfig.paper()
    assert paper.n_iterations == 10 and paper.epochs == [50, 50, 100, 100, 150, 200]
    with pytest.raises(ValueError, match="same non-zero length"):
        OReXConfig(epochs=[1, 2])
    assert paper.dtype == "float64" and paper.weight_decay == 1e-3 and paper.hinge_points is None
    assert OReXConfig.cpu().max_steps_per_level is not None
    assert paper.contour_spacing is None and OReXConfig.cpu().contour_spacing is not None  # paper: per edge
    assert paper.hull_enlarge == 0.05 and OReXConfig.cpu().hull_enlarge > paper.hull_enlarge
    assert paper.hinge_iterations == "last" and OReXConfig.cpu().hinge_iterations == "all"
    with pytest.raises(ValueError, match="hinge_iterations='first' is not one of"):
        OReXConfig(hinge_iterations="first")
    with pytest.raises(RuntimeError, match="not fitted"):
        OReX().field(np.zeros((1, 3)))


def test_registered():
    from sciml.registry import get
    entry = get("orex")
    assert entry.bench is not None and entry.demo is not None


@pytest.mark.gpu
def test_cuda_fit(sphere_slices):
    _, slices = sphere_slices
    rec = OReX(OReXConfig.tiny(epochs=[1, 1], max_steps_per_level=3), device="cuda").fit(slices)
    assert next(rec.net.parameters()).is_cuda
    assert np.isfinite(rec.field(np.zeros((4, 3)))).all()


@pytest.mark.slow
def test_bench_tiny_runs():
    from solvers.orex.bench import run
    out = run(["--shapes", "sphere:6", "--config", "tiny", "--resolution", "24"])
    methods = {r["method"] for r in out["rows"]}
    assert {"orex", "orex-1-loop", "slice-sdf-idw"} <= methods
    assert "plane_iou_min>=0.98" in out["summary"]


def test_bench_summary_runs_over_shapes_and_network_seeds():
    from solvers.orex.bench import run, summarise
    out = run(["--shapes", "sphere:6", "--config", "tiny", "--resolution", "20", "--network-seeds", "0", "1",
               "--methods", "orex", "orex-1-loop"])
    assert sorted((r["network_seed"], r["method"]) for r in out["rows"]) == [
        (0, "orex"), (0, "orex-1-loop"), (1, "orex"), (1, "orex-1-loop")]
    assert out["rows"][0]["iou"] != out["rows"][2]["iou"]  # the seed reached the network
    rows = out["rows"] + [{**r, "method": "slice-sdf-idw"} for r in out["rows"] if r["method"] == "orex"]
    summary = summarise(rows, ablations=False)
    assert set(summary["sphere_iou>=0.97"]["value"]) == {"sphere", "sphere@seed1"}
    loop = summary["orex_vs_orex-1-loop"]
    assert loop["cases"] == 2
    ious = [[r["iou"] for r in out["rows"] if r["method"] == m] for m in ("orex", "orex-1-loop")]
    assert loop["mean_over_shapes [full, ablated]"]["iou"] == pytest.approx([np.mean(ious[0]), np.mean(ious[1])])
    one_seed = summarise([{**r, "network_seed": 3} for r in rows if r["network_seed"] == 1], ablations=False)
    assert one_seed["sphere_iou>=0.97"]["value"] == rows[2]["iou"]  # a single case reports a plain number


def test_bench_merge_summarises_runs_together(tmp_path):
    import json

    from solvers.orex.bench import run, summarise
    row = {"shape": "sphere", "planes": 6, "iou": 0.9, "chamfer": 0.01, "hausdorff": 0.02, "plane_iou_min": 0.99,
           "ripple_deg": 2.0, "genus": 0, "fit_s": 1.0, "mesh_s": 0.1}
    runs = [[{**row, "network_seed": seed, "method": m, "iou": 0.9 + 0.01 * seed}
             for m in ("orex", "orex-1-loop", "slice-sdf-idw")] for seed in (0, 1)]
    paths = []
    for seed, rows in enumerate(runs):
        paths.append(tmp_path / f"seed{seed}.json")
        paths[-1].write_text(json.dumps({"rows": rows, "config_values": {"seed": seed}}))
    out = run(["--merge", *map(str, paths)])
    assert out["summary"] == summarise(runs[0] + runs[1], ablations=False)
    assert out["summary"]["sphere_iou>=0.97"]["value"] == {"sphere": 0.9, "sphere@seed1": 0.91}
    with pytest.raises(ValueError, match="repeat a"):
        run(["--merge", str(paths[0]), str(paths[0])])
    with pytest.raises(ValueError, match="missing .*orex-no-hinge"):
        run(["--ablations", "--merge", *map(str, paths)])


@pytest.mark.slow
def test_demo_writes_files(tmp_path):
    from solvers.orex.demo import demo
    rows = demo(tmp_path, config=OReXConfig.tiny(), resolution=32, n_planes=8)
    names = {p.name for p in rows[0].files}
    assert {"orex.vtp", "slices.vtp", "occupancy.vti", "orex.png", "slices.csl"} <= names


@pytest.mark.slow
def test_cpu_default_torus_keeps_genus_and_beats_baseline():
    from solvers.orex.shapes import make_shape, shape_planes
    mesh, true_genus = make_shape("torus")
    slices = slice_mesh(mesh, shape_planes(mesh, 15, seed=0))
    rec = OReX(OReXConfig.cpu()).fit(slices)
    recon = rec.mesh(resolution=64)
    assert genus(recon) == true_genus
    assert volume_iou(mesh, rec.field) > 0.88
    base = SliceDistanceInterpolation().fit(slices)
    from geometry.meshing import mesh_from_field
    base_mesh, _ = mesh_from_field(base.field, 64, (mesh.bounds[0] - 0.1, mesh.bounds[1] + 0.1))
    assert surface_distances(mesh, recon)["chamfer"] < surface_distances(mesh, base_mesh)["chamfer"]


def test_bench_config_overrides():
    from solvers.orex.bench import parse_overrides
    assert parse_overrides(["box_outside_count=8192", "contour_spacing=null", "dtype=float64"]) == {
        "box_outside_count": 8192, "contour_spacing": None, "dtype": "float64"}
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_overrides(["no_such_field=1"])


@pytest.mark.parametrize("name", ["torus", "capsule", "sphere"])
def test_analytic_shapes_slice_like_their_analytic_surface(name):
    """The benchmark's slices of a tessellated shape match the analytic sections: a smooth fit is
    scored against the polygons, and a grazing plane magnifies facet depth in the plane."""
    from solvers.orex.shapes import analytic_sdf, make_shape, shape_planes
    mesh, _ = make_shape(name)
    slices = slice_mesh(mesh, shape_planes(mesh, 15, seed=0))
    assert plane_iou(slices, analytic_sdf(name), n=64, fine=400).min() > 0.995
