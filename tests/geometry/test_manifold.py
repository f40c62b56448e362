"""Sparse manifold geometry: kNN graph, PCA frames, Procrustes transport, connection Laplacian."""
import numpy as np
import pytest
import scipy.sparse as sp

from geometry.connection_laplacian import connection_laplacian, procrustes_transport
from geometry.knn import farthest_point_sampling, graph_laplacian, knn, knn_edges
from geometry.manifold import ManifoldGraph
from geometry.tangent import (
    estimate_dimension,
    frames_from_normals,
    jet_refine,
    local_pca,
    tangent_frames,
)


def sphere(n, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def flat_torus(n, seed=0):
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n)
    return np.stack([np.cos(u), np.sin(u), np.cos(v), np.sin(v)], axis=1) / np.sqrt(2)


def test_knn_edges_match_brute_force():
    x = np.random.default_rng(1).normal(size=(60, 3))
    edges = knn_edges(x, 4)
    dist = np.linalg.norm(x[:, None] - x[None], axis=2)
    np.fill_diagonal(dist, np.inf)
    near = np.argsort(dist, axis=1)[:, :4]
    expected = {(min(i, j), max(i, j)) for i in range(60) for j in near[i]}
    assert set(map(tuple, edges.tolist())) == expected
    assert (edges[:, 0] < edges[:, 1]).all()
    idx, d = knn(x, 4)
    assert (idx != np.arange(60)[:, None]).all() and (np.diff(d, axis=1) >= 0).all()


def test_graph_laplacian_symmetric_zero_row_sums():
    x = sphere(200)
    lap = graph_laplacian(knn_edges(x, 6), 200)
    assert abs(lap - lap.T).max() == 0
    assert np.allclose(np.asarray(lap.sum(axis=1)).ravel(), 0)


def test_frames_orthonormal_and_tangent_on_sphere():
    x = sphere(1500)
    frames = tangent_frames(x, k=15)
    assert frames.shape == (1500, 3, 2)          # dimension estimated
    gram = np.einsum("nai,naj->nij", frames, frames)
    assert np.allclose(gram, np.eye(2), atol=1e-12)
    tilt = np.abs(np.einsum("nad,na->nd", frames, x))            # normal = x on the unit sphere
    assert np.median(tilt) < 0.03 and tilt.max() < 0.2


def test_jet_frames_an_order_more_accurate_than_pca():
    x = sphere(1500)
    pca = tangent_frames(x, dim=2, k=15)
    jet = tangent_frames(x, dim=2, k=15, method="jet")
    assert np.allclose(np.einsum("nai,naj->nij", jet, jet), np.eye(2), atol=1e-12)
    tilt_pca = np.abs(np.einsum("nad,na->nd", pca, x)).max(axis=1)       # normal = x on the unit sphere
    tilt_jet = np.abs(np.einsum("nad,na->nd", jet, x)).max(axis=1)
    assert np.median(tilt_jet) < 1e-3 and np.median(tilt_jet) < 0.05 * np.median(tilt_pca)
    # flat torus in R^4: the frame must contain d/du and d/dv
    rng = np.random.default_rng(3)
    u, v = rng.uniform(0, 2 * np.pi, 2000), rng.uniform(0, 2 * np.pi, 2000)
    pts = np.stack([np.cos(u), np.sin(u), np.cos(v), np.sin(v)], axis=1) / np.sqrt(2)
    du = np.stack([-np.sin(u), np.cos(u), 0 * u, 0 * u], axis=1)
    frames = tangent_frames(pts, dim=2, method="jet")
    lost = du - np.einsum("nad,nd->na", frames, np.einsum("nad,na->nd", frames, du))
    assert np.median(np.linalg.norm(lost, axis=1)) < 1e-3
    # refining exact frames keeps them (a plane is its own quadratic fit)
    plane = np.concatenate([rng.uniform(size=(300, 2)), np.zeros((300, 1))], axis=1)
    refined = jet_refine(plane, tangent_frames(plane, dim=2), k=10)
    assert np.abs(refined[:, 2, :]).max() < 1e-10
    with pytest.raises(ValueError, match="raise k"):
        jet_refine(plane, refined, k=5)
    with pytest.raises(ValueError, match="frame method"):
        tangent_frames(plane, dim=2, method="mls")
    graph = ManifoldGraph.from_points(x, dim=2, frames="jet")
    assert np.allclose(graph.frames, jet)


def test_dimension_estimate():
    t = np.random.default_rng(0).uniform(0, 2 * np.pi, 500)
    circle = np.stack([np.cos(t), np.sin(t), 0.01 * np.cos(3 * t)], axis=1)
    assert estimate_dimension(local_pca(circle, 15)[1]) == 1
    assert estimate_dimension(local_pca(sphere(800), 15)[1]) == 2
    assert estimate_dimension(local_pca(np.random.default_rng(0).normal(size=(800, 3)), 15)[1], 0.95) == 3


def test_procrustes_is_orthogonal_and_identity_for_equal_frames():
    x = sphere(300)
    frames = tangent_frames(x, dim=2)
    edges = knn_edges(x, 8)
    o = procrustes_transport(frames, edges)
    assert np.allclose(np.einsum("eij,eik->ejk", o, o), np.eye(2), atol=1e-12)
    same = procrustes_transport(np.repeat(frames[:1], 2, axis=0), np.array([[0, 1]]))
    assert np.allclose(same[0], np.eye(2), atol=1e-12)


def test_connection_laplacian_symmetric_psd_and_quadratic_form():
    g = ManifoldGraph.from_points(sphere(400), dim=2)
    lc = g.connection_laplacian()
    assert lc.shape == (800, 800)
    assert abs(lc - lc.T).max() <= 1e-12
    assert np.linalg.eigvalsh(lc.toarray()).min() > -1e-10
    coords = np.random.default_rng(0).normal(size=(400, 2))
    i, j = g.edges[:, 0], g.edges[:, 1]
    energy = np.sum(np.sum((coords[i] - np.einsum("eab,eb->ea", g.transport, coords[j])) ** 2, axis=1))
    assert np.isclose(coords.ravel() @ (lc @ coords.ravel()), energy, rtol=1e-12)
    sym = g.connection_laplacian("sym")
    assert abs(sym - sym.T).max() <= 1e-12 and np.linalg.eigvalsh(sym.toarray()).max() <= 2 + 1e-10


def test_transport_carries_smooth_field():
    x = sphere(2000)
    g = ManifoldGraph.from_points(x, dim=2)
    coords = g.to_frame(np.cross([0.0, 0.0, 1.0], x))          # a tangent field in frame coordinates
    i, j = g.edges[:, 0], g.edges[:, 1]
    moved = np.einsum("eab,eb->ea", g.transport, coords[j])
    size = np.median(np.linalg.norm(coords, axis=1))
    assert np.median(np.linalg.norm(moved - coords[i], axis=1)) < 0.1 * size           # O(edge length)
    assert np.median(np.linalg.norm(coords[j] - coords[i], axis=1)) > 0.5 * size       # frames are not aligned


def test_sphere_spectrum_small():
    """A fast version of the 10^4-point check: 6 / 10 / 14 clusters at ratios ~5 and ~11."""
    from sciml.linalg import eigsh
    lc = ManifoldGraph.from_points(sphere(2500), dim=2).connection_laplacian()
    lam = eigsh(lc, 31)[0].numpy()
    r = lam / lam[:6].mean()
    assert r[:6].max() < 1.5
    assert 4.3 <= r[6:16].min() and r[6:16].max() <= 5.7
    assert 9.0 <= r[16:30].min() and r[16:30].max() <= 13.0 and r[30] > 14


@pytest.mark.slow
def test_sphere_spectrum_1e4():
    from sciml.linalg import eigsh
    lc = ManifoldGraph.from_points(sphere(10_000), dim=2).connection_laplacian()
    lam = eigsh(lc, 31)[0].numpy()
    r = lam / lam[:6].mean()
    assert r[:6].max() < 2
    assert 4.5 <= r[6:16].min() and r[6:16].max() <= 5.5
    assert 10 <= r[16:30].min() and r[16:30].max() <= 12.5 and r[30] > 12.5


def test_flat_torus_has_two_zero_modes():
    from sciml.linalg import eigsh
    lc = ManifoldGraph.from_points(flat_torus(1500), dim=2).connection_laplacian()
    lam = eigsh(lc, 6)[0].numpy()
    assert np.sum(lam < 1e-3 * lam[2]) == 2


def test_sphere_has_no_zero_mode():
    from sciml.linalg import eigsh
    lam = eigsh(ManifoldGraph.from_points(sphere(1500), dim=2).connection_laplacian(), 3)[0].numpy()
    assert lam[0] > 1e-3 * lam[2]


def test_from_mesh_uses_normals():
    trimesh = pytest.importorskip("trimesh")
    mesh = trimesh.creation.icosphere(subdivisions=3)
    g = ManifoldGraph.from_mesh(mesh)
    assert g.dim == 2 and len(g.edges) == len(mesh.edges_unique)
    assert np.abs(np.einsum("nad,na->nd", g.frames, np.asarray(mesh.vertex_normals))).max() < 1e-12
    lc = g.connection_laplacian()
    assert abs(lc - lc.T).max() <= 1e-12
    assert sp.issparse(lc) and np.linalg.eigvalsh(lc.toarray()).min() > -1e-10


def test_frames_from_normals_orthonormal():
    n = np.random.default_rng(0).normal(size=(50, 3))
    f = frames_from_normals(n)
    assert np.allclose(np.einsum("nai,naj->nij", f, f), np.eye(2))
    assert np.abs(np.einsum("nad,na->nd", f, n)).max() < 1e-12
    with pytest.raises(ValueError, match="zero"):
        frames_from_normals(np.zeros((2, 3)))


def test_farthest_point_sampling_spreads():
    x = sphere(500)
    idx = farthest_point_sampling(x, 20)
    assert len(set(idx.tolist())) == 20
    d = np.linalg.norm(x[idx][:, None] - x[idx][None], axis=2) + np.eye(20) * 10
    assert d.min() > 0.3


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="shape"):
        knn_edges(np.zeros(5), 2)
    with pytest.raises(ValueError, match="k must be"):
        knn_edges(sphere(5), 10)
    with pytest.raises(ValueError, match="NaN"):
        knn_edges(np.full((5, 3), np.nan), 2)
    with pytest.raises(ValueError, match="dim"):
        tangent_frames(sphere(50), dim=4)
    with pytest.raises(ValueError, match="normalization"):
        connection_laplacian(np.zeros((1, 2, 2)), np.array([[0, 1]]), 2, normalization="rw")
