"""Test fields, metrics, the Euclidean GP peer, ParaView export, the bench and the demo."""
import numpy as np
import pytest
import torch

from solvers.rvgp import fields
from solvers.rvgp.baseline import EuclideanGP
from solvers.rvgp.metrics import (
    cosine_similarity,
    relative_l2,
    ring_indices,
    winding_number,
)


@pytest.mark.parametrize("field", [fields.sphere_vortex, fields.sphere_source])
def test_sphere_fields_tangent_with_index_one_at_poles(field):
    x = fields.sample_sphere(3000, seed=1)
    v = field(x)
    assert np.abs(np.einsum("na,na->n", v, x)).max() < 1e-12
    for pole in ([0, 0, 1.0], [0, 0, -1.0]):
        ring = ring_indices(x, pole, 0.3, 0.1)
        assert round(winding_number(x[ring], v[ring], pole, pole)) == 1


def test_winding_of_constant_field_is_zero():
    x = fields.sample_sphere(3000, seed=1)
    pole = [0, 0, 1.0]
    ring = ring_indices(x, pole, 0.3, 0.1)
    v = np.tile([1.0, 0.0, 0.0], (len(ring), 1))
    assert abs(winding_number(x[ring], v, pole, pole)) < 1e-12


def test_torus_and_flat_fields_tangent():
    x, ang = fields.sample_torus(500, minor=0.5)
    centre = np.stack([np.cos(ang[:, 0]), np.sin(ang[:, 0]), 0 * ang[:, 0]], axis=1)
    normal = x - centre
    assert np.abs(np.einsum("na,na->n", fields.torus_field(ang, wave=2), normal)).max() < 1e-12
    p, v = fields.flat_torus(500)
    assert np.allclose(np.linalg.norm(p, axis=1), 1.0)
    assert np.abs(np.einsum("na,na->n", p, v)).max() < 1e-12
    p, v, s = fields.tight_roll(500)
    assert p.shape == v.shape == (500, 3) and (np.diff(np.sort(s)) >= 0).all()
    p, v, s = fields.folded_sheet(300)
    assert np.allclose(p[s < 1.0][:, 1], 0) and (v[s < 1.0][:, 0] > 0).all()
    p, v = fields.swiss_roll(300)
    assert np.allclose(np.linalg.norm(v, axis=1), 1)


def test_metrics():
    a = np.array([[1.0, 0, 0], [0, 2.0, 0]])
    assert cosine_similarity(a, 3 * a) == pytest.approx(1.0)
    assert cosine_similarity(-a, a) == pytest.approx(-1.0)
    assert relative_l2(a, a) == 0 and relative_l2(0 * a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        cosine_similarity(a, a[:1])


def test_euclidean_gp_fits_smooth_field():
    x = fields.sample_sphere(300, seed=2)
    v = fields.sphere_vortex(x)
    gp = EuclideanGP(max_iter=20).fit(x[:150], v[:150])
    mean, var = gp.predict(x[150:])
    assert relative_l2(mean, v[150:]) < 0.01 and (var >= 0).all()
    assert len(gp.hyperparameters()["lengthscale"]) == 3


def test_write_prediction_vtp(tmp_path):
    pv = pytest.importorskip("pyvista")
    from solvers.rvgp.export import write_prediction
    from solvers.rvgp.model import Prediction
    x = fields.sample_sphere(50)
    v = torch.as_tensor(fields.sphere_vortex(x))
    pred = Prediction(v, torch.ones(50, dtype=torch.float64), v[:, :2], torch.ones(50, 2, dtype=torch.float64))
    path = write_prediction(tmp_path / "f.vtp", x, pred, np.arange(10), v[:10].numpy(), truth=v)
    mesh = pv.read(path)
    assert mesh.n_points == 50
    assert {"prediction", "variance", "std", "train", "observed", "truth"} <= set(mesh.point_data.keys())
    assert np.allclose(mesh.point_data["prediction"], v.numpy()) and mesh.point_data["train"].sum() == 10
    with pytest.raises(ValueError, match="3-D"):
        write_prediction(tmp_path / "g.vtp", np.zeros((5, 4)), pred, [0], v[:1])


def test_bench_spectrum_section_small():
    from solvers.rvgp.bench import run
    out = run(["--sections", "spectrum", "--spectrum-n", "2500", "--flat-n", "1500"])
    flat = next(r for r in out["spectrum"] if r["case"] == "flat-torus")
    assert flat["near_zero"] == 2 and flat["symmetry_max_abs"] <= 1e-12 and flat["psd"]
    assert out["spectrum"][0]["multiplicities"][0] == 6
    assert "targets" in out and "table" in out


@pytest.mark.slow
def test_demo_writes_files(tmp_path):
    from solvers.rvgp.demo import demo
    rows = demo(tmp_path, "cpu")
    assert (tmp_path / "rvgp_sphere.vtp").exists() and (tmp_path / "rvgp_sphere.png").exists()
    assert round(rows[0].value) == 1


@pytest.mark.parametrize("name", ["hairpin", "hairpin-wide"])
def test_hairpin_has_no_edge_across_the_gap_and_opposite_arms(name):
    from geometry.manifold import ManifoldGraph
    from solvers.rvgp.experiments import make_case
    x, v, extra = make_case(name, 1500)
    s, arm, bend = extra["s"], extra["arm"], extra["bend"]
    lower, upper = s < arm, s > arm + bend
    e = ManifoldGraph.from_points(x, dim=2).edges
    assert not ((lower[e[:, 0]] & upper[e[:, 1]]) | (upper[e[:, 0]] & lower[e[:, 1]])).any()
    assert (v[lower, 0] > 0).all() and (v[upper, 0] < 0).all()
    assert np.allclose(x[upper, 1], extra["gap"])


def test_hairpin_fold_hole_small():
    """A small version of the large-hole benchmark: the fold is fixed by transport along the surface."""
    from solvers.rvgp.experiments import hairpin_inpainting
    (row,) = hairpin_inpainting("fold", n=500, rank=40, noises=(0.0,), frames=("jet",),
                                euclid_kwargs={"max_iter": 10, "lengthscales": [0.3]})
    assert row["cross_gap_edges"] == 0
    assert row["rvgp_rel_l2"] < 0.1 and row["rvgp_cosine"] > 0.99
    assert row["euclid_rel_l2"] > 0.3 and row["rvgp_better"]
    with pytest.raises(ValueError, match="hairpin hole"):
        hairpin_inpainting("slit")
