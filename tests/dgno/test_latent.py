import numpy as np
import pytest
import torch

from solvers.dgno.darcy import sample_coefficient
from solvers.dgno.latent import FrozenDecoders, LatentPrior
from solvers.dgno.model import DGNO, DGNOConfig
from solvers.dgno.operators import DeepONet, MultiONet

SMALL = {"n_pix": 9, "latent": 8, "encoder_hidden": (16,), "width": 12, "depth": 3, "n_centres": 6, "radius": 0.1}


def _model(form="mixed", kind="two_phase"):
    torch.manual_seed(0)
    model = DGNO(DGNOConfig(kind=kind, form=form, **SMALL), dtype=torch.float64)
    with torch.no_grad():  # untrained MultiONets have zero layer weights: make every output depend on beta
        for m in model.modules():
            if isinstance(m, MultiONet):
                m.layer_weights.normal_()
    return model


@pytest.mark.parametrize("net", [DeepONet(5, 2, width=8, depth=3, dtype=torch.float64),
                                 MultiONet(5, 2, width=8, depth=3, sum_layers=2, weight_init=0.7,
                                           dtype=torch.float64)])
def test_cached_trunk_features_match_forward(net):
    beta, x = torch.randn(3, 5, dtype=torch.float64), torch.rand(11, 2, dtype=torch.float64)
    out, grad = net.forward_features(beta, *net.trunk_features(x, grad=True))
    torch.testing.assert_close(out, net(beta, x), rtol=0, atol=1e-13)
    xg = x.clone().requires_grad_(True)
    ref = torch.stack([torch.autograd.grad(net(beta[i:i + 1], xg).sum(), xg)[0] for i in range(3)])
    torch.testing.assert_close(grad, ref, rtol=1e-10, atol=1e-12)
    assert net.forward_features(beta, net.trunk_features(x)[0])[1] is None


@pytest.mark.parametrize("kind,form", [("two_phase", "mixed"), ("two_phase", "primal"), ("lognormal", "mixed")])
def test_frozen_decoders_match_the_model(kind, form):
    model = _model(form, kind)
    gen = torch.Generator().manual_seed(0)
    pool = model.tests.sample_centres(12, gen, dtype=torch.float64)
    x_obs = torch.rand(7, 2, dtype=torch.float64, generator=gen)
    frozen = FrozenDecoders(model, x_obs, pool)
    beta = torch.tanh(torch.randn(3, 8, dtype=torch.float64, generator=gen))
    torch.testing.assert_close(frozen.u_obs(beta), model.u(beta, x_obs), rtol=0, atol=1e-13)
    for idx in (torch.tensor([3, 0, 11, 5]), slice(4, 9)):
        ref = model.physics_loss(beta, None, pool[idx])
        torch.testing.assert_close(frozen.physics_loss(beta, idx), ref, rtol=1e-12, atol=1e-12)


def test_latent_prior_fits_the_encodings_and_is_saved(tmp_path):
    model = _model()
    a = torch.tensor(np.stack([sample_coefficient("two_phase", 0, i, 9) for i in range(200)]))
    prior = LatentPrior.fit(model, a, jitter=0.0)
    with torch.no_grad():
        z = model.encode_z(a)
    torch.testing.assert_close(prior.mean, z.mean(0))
    torch.testing.assert_close(prior.chol @ prior.chol.T, torch.cov(z.T))
    assert torch.all(prior.energy(prior.mean[None]) == 0)
    # energy is the Mahalanobis form: 0.5 (z - mu)^T C^{-1} (z - mu)
    d = z[:3] - prior.mean
    ref = 0.5 * torch.einsum("bi,ij,bj->b", d, torch.linalg.inv(torch.cov(z.T)), d)
    torch.testing.assert_close(prior.energy(z[:3]), ref, rtol=1e-8, atol=1e-10)
    draws = prior.sample(4000, torch.Generator().manual_seed(0))
    assert torch.allclose(draws.mean(0), prior.mean, atol=0.1 * float(z.std(0).max()))
    assert model.latent_prior() is None
    model.set_latent_prior(prior)
    path = model.save(tmp_path / "m.safetensors")
    loaded = DGNO.load(path).latent_prior()
    torch.testing.assert_close(loaded.chol, prior.chol)
    # files written before the prior existed still load (without a prior)
    from sciml.io import load_checkpoint, save_checkpoint
    tensors, meta = load_checkpoint(path)
    old = save_checkpoint(tmp_path / "old.safetensors",
                          {k: v for k, v in tensors.items() if not k.startswith("prior_")}, meta)
    assert DGNO.load(old).latent_prior() is None
    with pytest.raises(ValueError, match="at least 2"):
        LatentPrior.fit(model, a[:1])


def test_refine_latent_changes_only_encoder_and_a_decoder():
    from sciml.train import TrainConfig
    from solvers.dgno.refine import refine_latent
    model = _model()
    a = np.stack([sample_coefficient("two_phase", 0, i, 9) for i in range(64)])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.tensor(np.stack(np.meshgrid(np.linspace(0, 1, 9), np.linspace(0, 1, 9), indexing="ij"), -1)
                     ).reshape(-1, 2)
    at = torch.tensor(a)
    with torch.no_grad():
        u0 = model.u(model.encode(at), x)
        bce0 = float(model.data_loss(model.encode(at), at))
    model, _ = refine_latent(model, a, TrainConfig(steps=40, batch_size=16, lr=1e-2, seed=0), w_u=100.0)
    after = model.state_dict()
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"encoder", "a_decoder"}
    assert all(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        u1 = model.u(model.encode(at), x)
        bce1 = float(model.data_loss(model.encode(at), at))
    assert bce1 < bce0
    assert float(((u1 - u0) ** 2).mean() / (u0 ** 2).mean()) < 0.05
