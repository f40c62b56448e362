"""Reference Bayesian inverse for two-phase Darcy: pCN MCMC on the exact level-set prior, no network.

The prior is the distribution the two-phase coefficients are drawn from, ``a = high`` where
``g >= 0`` else ``low``, with ``g`` the Gaussian random field of
:func:`~solvers.dgno.darcy.gaussian_random_field` (``g = cos^T (lam * xi) cos``, ``xi ~ N(0, I)``);
the forward model is a finite-element solve (:class:`~solvers.dgno.darcy.DarcyFEM`). The
preconditioned Crank-Nicolson proposal (Cotter, Roberts, Stuart & White, 2013)

    xi' = sqrt(1 - b^2) xi + b eta,    eta ~ N(0, I),

leaves the Gaussian prior invariant, so a move is accepted with probability
``min(1, exp(Phi(xi) - Phi(xi')))``, ``Phi = |u(a(xi))[obs] - y|^2 / (2 sigma^2)``. During burn-in
``b`` is adapted every 100 steps towards 25 % acceptance, then frozen.

What it is for: with enough chains and steps, the pooled sample mean approximates the
Bayes-optimal (posterior-mean) estimate of ``a`` from the observations: no inverse method has a
smaller mean-square error on average over such data. It is the reference for :func:`~solvers.dgno.inverse.solve_inverse`
in ``sciml bench dgno --mcmc-chains N``. It costs one FEM solve per step (about 9 ms at
``refine=1`` on one core), thousands per target, where DGNO's latent solve takes seconds.
"""
from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from solvers.dgno.darcy import DarcyFEM, grf_expansion

__all__ = ["MCMCResult", "pcn_two_phase"]

ADAPT_EVERY = 100
TARGET_ACCEPTANCE = 0.25


@dataclass
class MCMCResult:
    """Pooled posterior summary of :func:`pcn_two_phase`.

    Attributes
    ----------
    a_mean, a_std : (P, P) arrays
        Mean and standard deviation of ``a`` over the kept samples of all chains.
    chain_means : (C, P, P) array
        Each chain's mean; their disagreement (:attr:`chain_spread`) shows how far the chains are
        from mixing.
    acceptance : (C,) array
        Acceptance rate after burn-in.
    step : (C,) array
        The pCN step ``b`` each chain settled on.
    misfit : (C,) array
        Mean data misfit ``Phi`` after burn-in (about ``n_obs / 2`` when the model fits the data
        to the noise level).
    seconds : float
    """

    a_mean: np.ndarray
    a_std: np.ndarray
    chain_means: np.ndarray
    acceptance: np.ndarray
    step: np.ndarray
    misfit: np.ndarray
    seconds: float

    @property
    def chain_spread(self) -> float:
        """RMS distance of the chain means from the pooled mean, relative to ``|a_mean|``."""
        d = np.linalg.norm((self.chain_means - self.a_mean).reshape(len(self.chain_means), -1), axis=1)
        return float(np.sqrt(np.mean(d ** 2)) / np.linalg.norm(self.a_mean))


def _chain(task: dict) -> dict:
    """One pCN chain (a module-level function so that worker processes can run it)."""
    n_pix, low, high = task["n_pix"], task["low"], task["high"]
    cos, lam = grf_expansion(n_pix, task["tau"], task["alpha"])
    fem = DarcyFEM(n_pix, task["refine"])
    index, y, sigma = task["index"], task["y"], task["sigma"]
    rng = np.random.default_rng(task["seed"])

    def coefficient(xi):
        return np.where(cos.T @ (lam * xi) @ cos >= 0.0, high, low)

    def misfit(a):
        return 0.5 * float(np.sum((fem.solve(a).reshape(-1)[index] - y) ** 2)) / sigma ** 2

    xi = rng.standard_normal(lam.shape)
    a = coefficient(xi)
    phi = misfit(a)
    b, accepted_window = task["step"], 0
    total, total_sq = np.zeros((n_pix, n_pix)), np.zeros((n_pix, n_pix))
    kept = accepted = 0
    phi_sum = 0.0
    for s in range(task["steps"]):
        proposal = np.sqrt(1.0 - b ** 2) * xi + b * rng.standard_normal(lam.shape)
        a_prop = coefficient(proposal)
        phi_prop = misfit(a_prop)
        if np.log(rng.random()) < phi - phi_prop:
            xi, a, phi = proposal, a_prop, phi_prop
            accepted_window += 1
            accepted += s >= task["burn"]
        if s < task["burn"]:
            if (s + 1) % ADAPT_EVERY == 0:
                b = float(np.clip(b * np.exp(accepted_window / ADAPT_EVERY - TARGET_ACCEPTANCE), 1e-4, 1.0))
                accepted_window = 0
            continue
        total += a
        total_sq += a * a
        phi_sum += phi
        kept += 1
    return {"sum": total, "sum_sq": total_sq, "kept": kept, "acceptance": accepted / kept, "step": b,
            "misfit": phi_sum / kept}


def pcn_two_phase(obs, *, n_pix: int = 29, refine: int = 1, chains: int = 4, steps: int = 20000, burn: int = 5000,
                  seed: int = 0, workers: int = 1, step: float = 0.05, low: float = 5.0, high: float = 10.0,
                  tau: float = 3.0, alpha: float = 2.0) -> MCMCResult:
    """Sample the posterior of a two-phase coefficient given point observations of ``u``.

    Parameters
    ----------
    obs : solvers.dgno.inverse.Observations
        ``obs.index`` are flat indices into the ``n_pix x n_pix`` grid, ``obs.u`` the noisy values,
        ``obs.sigma`` the noise level.
    n_pix, refine : int
        Coefficient grid and FEM refinement (``refine=1``: 57 x 57 nodes for ``n_pix=29``, about
        3e-3 from the converged solution, well under 25 dB noise).
    chains, steps, burn : int
        Independent chains, each started from a prior draw, of ``steps`` proposals of which the
        first ``burn`` adapt the step and are discarded.
    seed : int
        Chain ``c`` uses ``numpy.random.default_rng([seed, c])``: results do not depend on ``workers``.
    workers : int
        Processes running chains in parallel (``1``: in this process).
    step : float
        Initial pCN step ``b``.
    low, high, tau, alpha : float
        The prior: phase values and the field's spectrum (the data generator's defaults).

    Returns
    -------
    MCMCResult
    """
    if chains < 1 or workers < 1:
        raise ValueError(f"chains={chains} and workers={workers} must be >= 1")
    if not 0 <= burn < steps:
        raise ValueError(f"need 0 <= burn < steps, got burn={burn}, steps={steps}")
    index = np.asarray(obs.index)
    if index.max() >= n_pix ** 2:
        raise ValueError(f"observation index {index.max()} is outside the {n_pix} x {n_pix} grid; pass its n_pix")
    started = time.perf_counter()
    common = {"n_pix": n_pix, "refine": refine, "steps": steps, "burn": burn, "step": step, "low": low,
              "high": high, "tau": tau, "alpha": alpha, "index": index, "y": np.asarray(obs.u, dtype=np.float64),
              "sigma": float(obs.sigma)}
    tasks = [{**common, "seed": [seed, c]} for c in range(chains)]
    if workers == 1:
        runs = [_chain(t) for t in tasks]
    else:
        with ProcessPoolExecutor(min(workers, chains)) as pool:
            runs = list(pool.map(_chain, tasks))
    kept = sum(r["kept"] for r in runs)
    mean = sum(r["sum"] for r in runs) / kept
    var = np.maximum(sum(r["sum_sq"] for r in runs) / kept - mean ** 2, 0.0)
    return MCMCResult(a_mean=mean, a_std=np.sqrt(var), chain_means=np.stack([r["sum"] / r["kept"] for r in runs]),
                      acceptance=np.array([r["acceptance"] for r in runs]), step=np.array([r["step"] for r in runs]),
                      misfit=np.array([r["misfit"] for r in runs]), seconds=time.perf_counter() - started)
