import numpy as np
import pytest

from solvers.dgno.darcy import DarcyFEM, sample_coefficient
from solvers.dgno.inverse import observe
from solvers.dgno.mcmc import pcn_two_phase

P = 9


@pytest.fixture(scope="module")
def truth():
    a = sample_coefficient("two_phase", 3, 0, P)
    return a, DarcyFEM(P, 1).solve(a)


def test_pcn_posterior_mean_beats_the_prior_and_is_reproducible(truth):
    a, u = truth
    obs = observe(u, 40, snr_db=40.0, seed=0)
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


def test_pcn_bad_arguments(truth):
    obs = observe(truth[1], 5, seed=0)
    with pytest.raises(ValueError, match="burn"):
        pcn_two_phase(obs, n_pix=P, steps=10, burn=10)
    with pytest.raises(ValueError, match="chains"):
        pcn_two_phase(obs, n_pix=P, chains=0)
    with pytest.raises(ValueError, match="n_pix"):
        pcn_two_phase(obs, n_pix=3, steps=10, burn=0)


def test_bench_mcmc_reference_row(truth):
    from solvers.dgno.bench import _parser, mcmc_reference
    a, u = truth
    args = _parser().parse_args(["--mcmc-chains", "2", "--mcmc-steps", "60", "--mcmc-burn", "20"])
    row = mcmc_reference(args, observe(u, 20, seed=0), a, seed=0)
    assert 0 < row["rel_l2_a_mcmc"] < 1 and len(row["mcmc_chain_errors"]) == 2 and row["mcmc_seconds"] > 0
    from solvers.dgno.bench import run
    with pytest.raises(ValueError, match="two_phase"):
        run(["--kind", "lognormal", "--mcmc-chains", "1"])
    with pytest.raises(ValueError, match="--n-test"):
        run(["--first-target", "198", "--targets", "5"])
