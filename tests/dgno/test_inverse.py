import numpy as np
import pytest
import torch

from solvers.dgno.darcy import DarcyFEM, sample_coefficient
from solvers.dgno.inverse import observe, solve_inverse
from solvers.dgno.model import DGNO, DGNOConfig

SMALL = {"n_pix": 9, "latent": 8, "encoder_hidden": (16,), "width": 12, "depth": 3, "n_centres": 6, "radius": 0.1}


@pytest.fixture(scope="module")
def u_true():
    a = sample_coefficient("two_phase", 0, 0, 9)
    return DarcyFEM(9, refine=1).solve(a)


def test_observe_snr_and_points(u_true):
    obs = observe(u_true, 25, snr_db=25.0, seed=1)
    assert len(set(obs.index.tolist())) == 25
    P = 9
    i, j = np.divmod(obs.index, P)
    assert i.min() >= 1 and i.max() <= P - 2 and j.min() >= 1 and j.max() <= P - 2
    clean = u_true.reshape(-1)[obs.index]
    assert obs.sigma == pytest.approx(np.sqrt(np.mean(clean ** 2) / 10 ** 2.5))
    np.testing.assert_allclose(obs.x.numpy(), np.stack([i, j], 1) / (P - 1))
    again = observe(u_true, 25, seed=1)
    assert torch.equal(again.u, obs.u)
    with pytest.raises(ValueError, match="n_obs"):
        observe(u_true, 1000)


def test_inverse_keeps_decoders_frozen_and_fits_data(u_true):
    torch.manual_seed(0)
    model = DGNO(DGNOConfig(**SMALL), dtype=torch.float64)
    with torch.no_grad():  # untrained MultiONets start with zero layer weights: make u depend on beta
        model.u_decoder.layer_weights.fill_(1.0)
        model.a_decoder.layer_weights.fill_(1.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    obs = observe(u_true, 20, seed=0)
    res = solve_inverse(model, obs, members=4, steps=60, lr=5e-2, n_centres=8)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in model.parameters())
    assert res.losses[-5:].mean() < res.losses[:5].mean()
    assert res.a_mean.shape == res.a_std.shape == res.u_mean.shape == (9, 9)
    assert res.a_members.shape == (4, 9, 9)
    assert np.all(res.a_std >= 0) and np.all((res.a_mean >= 5) & (res.a_mean <= 10))
    # the spread is at least the spread between members
    np.testing.assert_array_less(res.a_members.std(0) - 1e-9, res.a_std)


def _unit_weight_model() -> DGNO:
    """A small float64 DGNO (seed 0) whose MultiONet layer weights are all 1."""
    torch.manual_seed(0)
    model = DGNO(DGNOConfig(**SMALL), dtype=torch.float64)
    with torch.no_grad():
        model.u_decoder.layer_weights.fill_(1.0)
        model.a_decoder.layer_weights.fill_(1.0)
    return model


def test_inverse_with_latent_prior_options(u_true):
    from solvers.dgno.latent import LatentPrior
    model = _unit_weight_model()
    prior = LatentPrior(torch.full((8,), 0.3, dtype=torch.float64), 0.01 * torch.eye(8, dtype=torch.float64))
    obs = observe(u_true, 20, seed=0)
    res = solve_inverse(model, obs, members=3, steps=5, lr=1e-3, n_centres=4, pool=8, prior=prior, init="prior",
                        data_term="gaussian", w_obs=1.0, w_prior=1.0)
    # started at draws of a tight prior, a few small steps stay near its mean
    assert torch.allclose(torch.atanh(res.beta), prior.mean.expand(3, 8), atol=0.06)
    with pytest.raises(ValueError, match="init"):
        solve_inverse(model, obs, init="prior")
    with pytest.raises(ValueError, match="data_term"):
        solve_inverse(model, obs, data_term="l1")


def test_perturbed_prior_spreads_members_like_the_prior(u_true):
    """With no data and no physics, randomised maximum likelihood members are draws of the prior."""
    from solvers.dgno.latent import LatentPrior
    torch.manual_seed(0)
    model = DGNO(DGNOConfig(**SMALL), dtype=torch.float64)
    prior = LatentPrior(torch.full((8,), 0.3, dtype=torch.float64), 0.05 * torch.eye(8, dtype=torch.float64))
    obs = observe(u_true, 20, seed=0)
    kw = {"members": 64, "steps": 150, "lr": 1e-2, "n_centres": 4, "pool": 8, "prior": prior, "init": "prior",
          "data_term": "gaussian", "w_obs": 0.0, "w_physics": 0.0}
    fixed = torch.atanh(solve_inverse(model, obs, **kw).beta)
    rml = torch.atanh(solve_inverse(model, obs, perturb_prior=True, **kw).beta)
    assert float(fixed.std(0).max()) < 0.01          # all members collapse onto the prior mean
    assert 0.035 < float(rml.std(0).mean()) < 0.065  # each member sits at its own prior draw (std 0.05)
    assert abs(float(rml.mean()) - 0.3) < 0.02
    with pytest.raises(ValueError, match="perturb_prior"):
        solve_inverse(model, obs, perturb_prior=True)


def _linearised_setup(u_true):
    from solvers.dgno.latent import LatentPrior
    model = _unit_weight_model()
    prior = LatentPrior(torch.zeros(8, dtype=torch.float64), 0.3 * torch.eye(8, dtype=torch.float64))
    return model, prior, observe(u_true, 20, seed=0), torch.full((8,), 0.1, dtype=torch.float64)


def _fd_jacobian(f, z, h=1e-6):
    cols = [(f(z + h * e) - f(z - h * e)) / (2 * h) for e in torch.eye(len(z), dtype=z.dtype)]
    return torch.stack(cols, 1)


def test_linearised_spread_matches_finite_differences(u_true):
    from solvers.dgno.inverse import linearised_spread
    from solvers.dgno.model import grid_points
    model, prior, obs, z = _linearised_setup(u_true)
    res = linearised_spread(model, obs, prior, z)
    with torch.no_grad():
        j_u = _fd_jacobian(lambda v: model.u(torch.tanh(v)[None], obs.x)[0], z)
        j_a = _fd_jacobian(lambda v: model.a_field(torch.tanh(v)[None], grid_points(9, torch.float64))[0], z)
    cov = torch.linalg.inv(torch.eye(8, dtype=torch.float64) / 0.09 + j_u.T @ j_u / obs.sigma ** 2)
    torch.testing.assert_close(res.posterior_cov, cov, rtol=1e-5, atol=1e-10)
    assert res.posterior == pytest.approx(float(torch.sqrt(torch.trace(j_a @ cov @ j_a.T))), rel=1e-5)
    assert res.prior == pytest.approx(0.3 * float(j_a.norm()), rel=1e-5)


def test_linearised_spread_shrinks_with_information(u_true):
    from solvers.dgno.inverse import linearised_spread
    model, prior, obs, z = _linearised_setup(u_true)
    vague = linearised_spread(model, obs, prior, z, sigma=1e6)
    noisy = linearised_spread(model, obs, prior, z)
    exact = linearised_spread(model, obs, prior, z, sigma=obs.sigma / 100)
    assert vague.posterior == pytest.approx(vague.prior, rel=1e-6)  # no information: the prior spread
    assert exact.posterior < noisy.posterior < vague.posterior
    with pytest.raises(ValueError, match="one latent"):
        linearised_spread(model, obs, prior, z[None])
    with pytest.raises(ValueError, match="sigma"):
        linearised_spread(model, obs, prior, z, sigma=0.0)


def test_bench_inverse_limit_option(u_true):
    from solvers.dgno.bench import _parser, linearised_limit
    from solvers.dgno.darcy import sample_coefficient
    assert _parser().parse_args(["--inverse-limit"]).inverse_limit
    assert not _parser().parse_args([]).inverse_limit
    model, prior, obs, _ = _linearised_setup(u_true)
    row = linearised_limit(model, obs, prior, sample_coefficient("two_phase", 0, 0, 9), reencoded=0.1)
    assert row["rel_a_spread_linearised"] > 0
    assert row["rel_l2_a_linearised_limit"] == pytest.approx(np.hypot(0.1, row["rel_a_spread_linearised"]))
