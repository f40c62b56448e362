import numpy as np
import pytest
import torch

from solvers.dgno.darcy import DarcyFEM, sample_coefficient
from solvers.dgno.inverse import Observations
from solvers.dgno.mcmc import pcn_two_phase

P = 9


def _observations(a: np.ndarray, n_obs: int, rel_noise: float, seed: int = 0) -> Observations:
    u = DarcyFEM(P, 1).solve(a).reshape(-1)
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(np.arange(P * P), n_obs, replace=False))
    sigma = rel_noise * float(np.sqrt(np.mean(u[index] ** 2)))
    return Observations(torch.zeros(n_obs, 2), torch.tensor(u[index] + sigma * rng.standard_normal(n_obs)), sigma,
                        index)


def test_pcn_posterior_mean_beats_the_prior_and_is_reproducible():
    a = sample_coefficient("two_phase", 3, 0, P)
    obs = _observations(a, 40, 0.01)
    res = pcn_two_phase(obs, n_pix=P, chains=2, steps=1500, burn=500, seed=1)
    assert res.a_mean.shape == res.a_std.shape == (P, P) and res.chain_means.shape == (2, P, P)
    assert np.all((res.a_mean >= 5) & (res.a_mean <= 10)) and np.all(res.a_std >= 0)
    assert np.all((res.acceptance > 0.02) & (res.acceptance < 0.9))
    err = np.linalg.norm(res.a_mean - a) / np.linalg.norm(a)
    prior_mean_err = np.linalg.norm(7.5 - a) / np.linalg.norm(a)
    assert err < 0.6 * prior_mean_err
    assert np.all(res.misfit < 2 * len(obs.u))  # fits the data to about the noise level (n_obs / 2)
    again = pcn_two_phase(obs, n_pix=P, chains=2, steps=1500, burn=500, seed=1, workers=2)
    np.testing.assert_array_equal(again.a_mean, res.a_mean)  # same chains in worker processes
    assert 0 <= res.chain_spread < 1


def test_pcn_bad_arguments():
    obs = _observations(sample_coefficient("two_phase", 3, 0, P), 5, 0.05)
    with pytest.raises(ValueError, match="burn"):
        pcn_two_phase(obs, n_pix=P, steps=10, burn=10)
    with pytest.raises(ValueError, match="chains"):
        pcn_two_phase(obs, n_pix=P, chains=0)
    with pytest.raises(ValueError, match="n_pix"):
        pcn_two_phase(obs, n_pix=3, steps=10, burn=0)
