"""The RVGP kernel as a gpytorch kernel, and exact Woodbury inference against gpytorch's ExactGP."""
import gpytorch
import numpy as np
import pytest
import torch

from geometry.manifold import ManifoldGraph
from solvers.rvgp.fields import sample_sphere, sphere_source
from solvers.rvgp.kernel import RVGPKernel, spectral_filter
from solvers.rvgp.model import RVGP


@pytest.fixture(scope="module")
def small_gp():
    x = sample_sphere(300, seed=3)
    return RVGP(ManifoldGraph.from_points(x, dim=2), n_eigenpairs=24, kappa=2.0, noise=0.05), x


def test_spectral_filters():
    lam = torch.tensor([0.0, 1.0, 4.0], dtype=torch.float64)
    kappa, nu = torch.tensor(2.0, dtype=torch.float64), torch.tensor(1.5, dtype=torch.float64)
    assert torch.allclose(spectral_filter(lam, "matern", kappa, nu).exp(), (2 * 1.5 / 4 + lam) ** -1.5)
    assert torch.allclose(spectral_filter(lam, "matern", kappa, nu, dim=2, variant="geometric").exp(),
                          (2 * 1.5 / 4 + lam) ** -2.5)
    assert torch.allclose(spectral_filter(lam, "se", kappa).exp(), torch.exp(-2 * lam))
    with pytest.raises(ValueError, match="filter"):
        spectral_filter(lam, "rbf", kappa)


def test_kernel_matrix_is_low_rank_psd_and_normalised(small_gp):
    gp, _ = small_gp
    k = gp.kernel
    rows = gp.rows(np.arange(300))
    dense = k(rows).to_dense().detach()
    assert torch.allclose(dense, dense.T, atol=1e-12)
    eig = torch.linalg.eigvalsh(dense)
    assert eig.min() > -1e-10 and int((eig > 1e-8 * eig.max()).sum()) <= 24
    # the prior variance per tangent direction averages outputscale
    assert torch.isclose(torch.diagonal(dense).sum() / (300 * 2), k.outputscale.detach(), rtol=1e-10)
    assert torch.allclose(k(rows, diag=True).detach(), torch.diagonal(dense), atol=1e-12)
    cross = k(rows[:30], rows[30:90]).to_dense().detach()
    assert torch.allclose(cross, dense[:30, 30:90], atol=1e-12)


def test_kernel_rows_are_tangent(small_gp):
    gp, _ = small_gp
    feats = gp.kernel.features(gp.rows(np.arange(300))[:, 0].long()).reshape(300, 3, -1)
    normal = torch.as_tensor(np.cross(gp.manifold.frames[:, :, 0], gp.manifold.frames[:, :, 1]))
    assert torch.einsum("nak,na->nk", feats, normal).abs().max() < 1e-12


def test_woodbury_matches_gpytorch_exact_gp(small_gp):
    gp, x = small_gp
    y = sphere_source(x)
    train, test = np.arange(0, 300, 2), np.arange(1, 300, 2)
    gp.set_data(train, y[train])
    scale = gp._data["scale"]
    train_x, train_y = gp.rows(train), torch.as_tensor(y[train] / scale).reshape(-1)

    class Exact(gpytorch.models.ExactGP):
        def __init__(self):
            super().__init__(train_x, train_y, gp.likelihood)
            self.mean_module, self.covar_module = gpytorch.means.ZeroMean(), gp.kernel

        def forward(self, inp):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(inp), self.covar_module(inp))

    model = Exact()
    model.train()
    with gpytorch.settings.max_cholesky_size(10_000):
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(gp.likelihood, model)(model(train_x), train_y)
        assert torch.isclose(-mll, gp.negative_log_marginal_likelihood(), rtol=1e-8)
        model.eval()
        with torch.no_grad():
            out = model(gp.rows(test))
    mine = gp.predict(test)
    assert torch.allclose(out.mean.reshape(-1, 3) * scale, mine.mean, atol=1e-8)
    assert torch.allclose(out.variance.reshape(-1, 3).sum(1) * scale**2, mine.variance, rtol=1e-6, atol=1e-10)
    model.train()


def test_kernel_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="do not match"):
        RVGPKernel(torch.ones(3, dtype=torch.float64), torch.ones(10, 3, dtype=torch.float64),
                   torch.ones(4, 3, 2, dtype=torch.float64))
    k = RVGPKernel(torch.ones(3, dtype=torch.float64), torch.ones(8, 3, dtype=torch.float64),
                   torch.ones(4, 3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="row indices"):
        k(torch.zeros(5, 2, dtype=torch.float64)).to_dense()
