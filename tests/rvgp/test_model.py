"""RVGP fitting and prediction: accuracy on analytic fields, tangency, variance, devices, SVI."""
import numpy as np
import pytest
import torch

from geometry.manifold import ManifoldGraph
from solvers.rvgp import fields
from solvers.rvgp.metrics import (
    cosine_similarity,
    relative_l2,
    ring_indices,
    winding_number,
)
from solvers.rvgp.model import RVGP
from solvers.rvgp.spectrum import connection_eigenpairs
from solvers.rvgp.variational import VariationalRVGP


@pytest.fixture(scope="module")
def sphere_setup():
    x = fields.sample_sphere(1000, seed=0)
    graph = ManifoldGraph.from_points(x, dim=2)
    return x, graph, connection_eigenpairs(graph, 60)


def split(n, seed=0):
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


def test_superresolution_small_sphere(sphere_setup):
    """Small version of the benchmark (10^3 points, rank 60): cosine >= 0.99, rel. L2 <= 0.07."""
    x, graph, pairs = sphere_setup
    v = fields.sphere_vortex(x)
    train, test = split(len(x))
    gp = RVGP(graph, eigenpairs=pairs).fit(train, v[train])
    pred = gp.predict(test)
    assert cosine_similarity(pred.mean, v[test]) >= 0.99
    assert relative_l2(pred.mean, v[test]) <= 0.07
    # tangent to the frames to round-off
    mean = pred.mean.numpy()
    normal = np.cross(graph.frames[test, :, 0], graph.frames[test, :, 1])
    assert np.abs(np.einsum("na,na->n", mean, normal)).max() <= 1e-10 * np.abs(mean).max()
    assert torch.allclose(torch.einsum("nad,nd->na", torch.as_tensor(graph.frames[test]), pred.frame_mean), pred.mean)


def test_fit_improves_marginal_likelihood(sphere_setup):
    x, graph, pairs = sphere_setup
    v = fields.sphere_source(x)
    train, _ = split(len(x), 1)
    gp = RVGP(graph, eigenpairs=pairs).set_data(train, v[train])
    before = float(gp.negative_log_marginal_likelihood().detach())
    gp.fit(train, v[train])
    assert float(gp.negative_log_marginal_likelihood().detach()) < before


def test_variance_larger_in_hole(sphere_setup):
    x, graph, pairs = sphere_setup
    v = fields.sphere_source(x)
    hole = fields.cap_mask(x, [0, 0, 1], 0.5)
    train = np.flatnonzero(~hole)[::2]
    gp = RVGP(graph, eigenpairs=pairs).fit(train, v[train])
    pred = gp.predict()
    assert (pred.variance >= 0).all()
    assert pred.variance[torch.as_tensor(hole)].mean() > 2 * pred.variance[torch.as_tensor(train)].mean()


def test_inpainting_keeps_index():
    x = fields.sample_sphere(2000, seed=0)
    v = fields.sphere_source(x)
    pole = np.array([0.0, 0.0, 1.0])
    hole = fields.cap_mask(x, pole, 0.35)
    train = np.flatnonzero(~hole)[::2]
    gp = RVGP.from_points(x, dim=2, n_eigenpairs=60).fit(train, v[train])
    ring = ring_indices(x, pole, 0.2, 0.08)
    assert round(winding_number(x[ring], gp.predict(ring).mean, pole, pole)) == 1


def test_device_and_dtype_follow(device, sphere_setup):
    x, graph, pairs = sphere_setup
    v = fields.sphere_vortex(x)
    train, test = split(len(x))
    gp = RVGP(graph, eigenpairs=pairs, device=device, dtype=torch.float64).fit(train, torch.as_tensor(v[train]))
    pred = gp.predict(test)
    assert pred.mean.device.type == torch.device(device).type and pred.mean.dtype == torch.float64
    assert relative_l2(pred.mean, v[test]) <= 0.07


def test_variational_matches_exact(sphere_setup):
    x, graph, pairs = sphere_setup
    v = fields.sphere_vortex(x)
    train, test = split(len(x))
    exact = RVGP(graph, eigenpairs=pairs).fit(train, v[train])
    frozen = RVGP(graph, eigenpairs=pairs, kappa=float(exact.kernel.kappa), nu=float(exact.kernel.nu),
                  outputscale=float(exact.kernel.outputscale), noise=float(exact.likelihood.noise))
    svi = VariationalRVGP(frozen).fit(train, v[train], steps=400, batch_size=10_000, lr=0.05,
                                      learn_hyperparameters=False)
    a, b = exact.predict(test).mean, svi.predict(test).mean
    assert relative_l2(b, a) < 0.05
    assert relative_l2(b, v[test]) < 0.08


def test_mesh_input():
    trimesh = pytest.importorskip("trimesh")
    mesh = trimesh.creation.icosphere(subdivisions=3)
    x = np.asarray(mesh.vertices)
    v = fields.sphere_vortex(x / np.linalg.norm(x, axis=1, keepdims=True))
    train, test = split(len(x))
    gp = RVGP.from_mesh(mesh, n_eigenpairs=40).fit(train, v[train])
    assert cosine_similarity(gp.predict(test).mean, v[test]) > 0.99


def test_errors(sphere_setup):
    x, graph, pairs = sphere_setup
    gp = RVGP(graph, eigenpairs=pairs)
    with pytest.raises(RuntimeError, match="fit"):
        gp.predict()
    with pytest.raises(ValueError, match="repeated"):
        gp.fit([0, 0], np.ones((2, 3)))
    with pytest.raises(ValueError, match="must be"):
        gp.fit([0, 1], np.ones((2, 2)))
    with pytest.raises(ValueError, match="zero"):
        gp.fit([0, 1], np.zeros((2, 3)))
    with pytest.raises(ValueError, match="n_eigenpairs"):
        connection_eigenpairs(ManifoldGraph.from_points(x[:20], dim=2, k=5, k_pca=8), 40)
