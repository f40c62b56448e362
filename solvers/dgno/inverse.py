"""Inverse problem with a trained DGNO: recover ``a`` from sparse noisy observations of ``u``.

The decoders are frozen; only the latent ``beta = tanh(z)`` is optimised (the authors' setting),
with the loss per latent

    w_obs * ||u(beta; x_obs) - u_obs|| / ||u_obs|| + physics(beta),

where ``physics`` is :meth:`DGNO.physics_loss` (weak residuals, and in the mixed form the flux
mismatch ``|s - a grad u|^2``) with the *decoded* coefficient (Bernoulli mean) and new
Wendland centres each step. Instead of one point estimate we run an **ensemble** of
``members`` latents in one batch (randomise-then-optimise): each member starts from its own
random ``z`` and sees the data perturbed by its own draw of the observation noise. The
posterior mean of ``a`` is the ensemble mean of the decoded fields, and the spread combines
the variance between members with the Bernoulli variance ``(high-low)^2 p (1-p)`` of each member.

The defaults are the authors' loss and random start. This package adds (selectable):

* ``prior=LatentPrior`` -- a Gaussian on the pre-tanh latent fitted to the training encodings
  (:class:`~solvers.dgno.latent.LatentPrior`, stored with the shipped weights:
  ``model.latent_prior()``), adding ``w_prior * 0.5 |L^{-1}(z - mu)|^2``;
* ``init="prior"`` -- members start at draws of that prior instead of ``z ~ N(0, I)``, which lies
  far from the encodings (measured: the single largest gain);
* ``data_term="gaussian"`` -- the Gaussian log-likelihood ``|u - y|^2 / (2 sigma^2)`` with the known
  noise level instead of the relative misfit, so that data and prior are weighed as in a posterior;
* ``w_physics`` -- the weight of the physics loss (authors: 1). With the Gaussian likelihood a
  weight of 1 leaves the physics without effect; 1000 measured best (10000 too much).
* ``perturb_prior=True`` -- randomised maximum likelihood: each member also sees its own draw
  of the prior mean (``mu + L eta_k``), not only its own draw of the observation noise, so that
  for a linear-Gaussian model the members are exact posterior samples (without it the members
  are too close to each other). Measured on 10 validation targets (test samples 5-14, not the
  benchmark's 0-4), 16 members, shipped weights: rel. L2 of a 0.171 -> 0.167; 32 members: 0.165.

:data:`PRIOR_SETTINGS` collects these choices.

**Why the error stays near 0.18** (:func:`linearised_spread`, ``sciml bench dgno --inverse-limit``).
Linearise both decoders at the true encoding ``z*``: the Gaussian posterior of ``z`` given the
observations has covariance ``C = (J_u^T J_u / sigma^2 + Sigma_prior^-1)^-1``, and the expected
squared error of the posterior mean of ``a`` is ``|a_dec(z*) - a|^2 + trace(J_a C J_a^T)``: the
decoder's floor plus the spread that the data leave. Shipped weights, 100 observations at 25 dB,
``PRIOR_SETTINGS`` with 32 members: floor 0.110, spread 0.128, limit 0.170 against 0.165 measured
(validation targets 5-14); 0.118, 0.127, 0.174 against 0.182 (benchmark targets 0-4). With all
729 interior nodes and no noise the limit is 0.163 and the solver measured 0.163 (targets 5-9).
So the ensemble already sits at this limit: the data cannot remove a relative spread of
~0.13 in ``a``, and the floor adds the rest. Measured on targets 5-9 (0.184 for these settings),
none of these helped: member weights ``exp(-loss/T)`` or the best members only (>= 0.1835),
a tempered likelihood or an i.i.d. model-error term (0.19-0.23), an approximation-error
likelihood from the u-decoder's error on the 1000 labelled training pairs (0.183-0.189),
physics weight 3000 or 10000 (0.195, 0.222), 64 members (0.186), starting from the best-fitting
of 20000 encoded prior draws (0.191), a Gaussian-mixture latent prior (K=8: 0.194), or a prior
fitted to decoder projections instead of encodings (0.190). Without the physics (``w_physics=0``)
targets 5-14 give 0.169 and targets 0-4 give 0.198. The decoder can represent the targets to
0.09 (``argmin_z |a_dec(z) - a|``), below the encoder's 0.11-0.118. A 256-wide coefficient
decoder lowers the floor to 0.103 but widens the spread to 0.155, with the same error (0.181).

**What the data allow** (:func:`solvers.dgno.mcmc.pcn_two_phase`, ``--mcmc-chains``): pCN MCMC on
the exact level-set prior with FEM solves, no network, gives a posterior mean 0.158 from the
same observations of targets 0-4 (0.156 extrapolated to infinitely many chains), in 483 s per
target: the ensemble above is at 1.15x the exact Bayesian estimate, in 8 s.

The trunk features of the frozen decoders are computed once for the observation points and a
pool of ``pool`` Wendland centres (split into blocks of ``n_centres``, one block per step), see
:class:`~solvers.dgno.latent.FrozenDecoders`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from solvers.dgno.latent import FrozenDecoders, LatentPrior
from solvers.dgno.model import DGNO, grid_points

__all__ = ["PRIOR_SETTINGS", "InverseResult", "LinearisedSpread", "Observations", "linearised_spread", "observe",
           "solve_inverse"]

#: This package's inverse settings (with ``prior=model.latent_prior()``), measured best on the
#: shipped CPU-scale model (``docs/benchmarks/dgno-cpu-dgno-inverse.json``).
PRIOR_SETTINGS = {"init": "prior", "data_term": "gaussian", "w_obs": 1.0, "w_prior": 1.0, "w_physics": 1000.0,
                  "perturb_prior": True}


@dataclass
class Observations:
    """Noisy point observations: ``x : (n, 2)``, ``u : (n,)``, noise level ``sigma``, grid indices ``index``."""

    x: torch.Tensor
    u: torch.Tensor
    sigma: float
    index: np.ndarray


def observe(u_true: np.ndarray, n_obs: int, snr_db: float = 25.0, seed: int = 0) -> Observations:
    """``n_obs`` distinct interior grid points of ``u_true : (P, P)`` with Gaussian noise at ``snr_db``.

    ``sigma = sqrt(mean(u_obs^2) / 10^(snr_db / 10))`` (the authors' definition).
    """
    P = u_true.shape[-1]
    if not 1 <= n_obs <= (P - 2) ** 2:
        raise ValueError(f"n_obs={n_obs} must be between 1 and the {(P - 2) ** 2} interior grid points")
    rng = np.random.default_rng(seed)
    interior = np.array([i * P + j for i in range(1, P - 1) for j in range(1, P - 1)])
    index = np.sort(rng.choice(interior, n_obs, replace=False))
    clean = u_true.reshape(-1)[index]
    sigma = float(np.sqrt(np.mean(clean ** 2) / 10 ** (snr_db / 10)))
    x = grid_points(P, torch.float64).numpy()[index]
    noisy = clean + sigma * rng.standard_normal(n_obs)
    return Observations(torch.tensor(x), torch.tensor(noisy), sigma, index)


@dataclass
class LinearisedSpread:
    """Posterior spread of ``a`` for decoders linearised at one latent (see :func:`linearised_spread`).

    Attributes
    ----------
    prior, posterior : float
        ``sqrt(trace(J_a C J_a^T))`` on the coefficient grid (absolute, same units as ``|a|_2``) with
        ``C`` the prior covariance, or the Gaussian posterior covariance given the observations.
    posterior_cov : (m, m) tensor
        ``C`` of the posterior (float64).
    """

    prior: float
    posterior: float
    posterior_cov: torch.Tensor = field(repr=False)


def linearised_spread(model: DGNO, obs: Observations, prior: LatentPrior, z: torch.Tensor,
                      sigma: float | None = None) -> LinearisedSpread:
    """How much of ``a`` the observations leave undetermined, for decoders linearised at ``z``.

    With ``J_u = d u(tanh z; x_obs)/dz : (n_obs, m)``, ``J_a = d a(tanh z; grid)/dz : (P*P, m)`` and the
    prior covariance ``Sigma = L L^T``, the Gaussian posterior has ``C = (J_u^T J_u / sigma^2 + Sigma^-1)^-1``.
    Evaluated at the true encoding, ``|a_dec(z) - a|^2 + posterior^2`` is the expected squared error
    of an exact posterior-mean estimator. The physics term is left out (it matters little: without
    it :func:`solve_inverse` measured 0.169 instead of 0.165 on validation targets).

    Parameters
    ----------
    model : DGNO
    obs : Observations
    prior : LatentPrior
    z : (m,) tensor
        Pre-tanh latent to linearise at (e.g. ``model.encode_z(a[None])[0]``).
    sigma : float, optional
        Noise level of the likelihood (default ``obs.sigma``).

    Returns
    -------
    LinearisedSpread
    """
    from torch.autograd.functional import jacobian
    if z.dim() != 1 or z.shape[0] != prior.mean.shape[0]:
        raise ValueError(f"z must be one latent of shape ({prior.mean.shape[0]},), got {tuple(z.shape)}")
    sigma = obs.sigma if sigma is None else sigma
    if not sigma > 0:
        raise ValueError(f"sigma={sigma} must be positive")
    p = next(model.parameters())
    z = z.detach().to(dtype=p.dtype, device=p.device)
    x_obs = obs.x.to(dtype=p.dtype, device=p.device)
    x = grid_points(model.config.n_pix, p.dtype, p.device)
    j_a = jacobian(lambda v: model.a_field(torch.tanh(v)[None], x)[0], z).double()          # (P*P, m)
    j_u = jacobian(lambda v: model.u(torch.tanh(v)[None], x_obs)[0], z).double()            # (n_obs, m)
    chol = prior.chol.to(device=p.device).double()
    prior_cov = chol @ chol.T
    precision = torch.cholesky_inverse(chol) + j_u.T @ j_u / sigma ** 2
    cov = torch.linalg.inv(precision)
    cov = 0.5 * (cov + cov.T)

    def spread(c: torch.Tensor) -> float:
        return float(torch.sqrt(torch.clamp(torch.einsum("ij,jk,ik->", j_a, c, j_a), min=0.0)))
    return LinearisedSpread(prior=spread(prior_cov), posterior=spread(cov), posterior_cov=cov)


@dataclass
class InverseResult:
    """Posterior summary on the coefficient grid.

    Attributes
    ----------
    a_mean, a_std : (P, P) arrays
        Ensemble posterior mean and spread of ``a``.
    u_mean : (P, P) array
    a_members : (K, P, P) array
        Decoded (Bernoulli-mean) coefficient of each member.
    beta : (K, latent) tensor
        The members' latents (evaluate ``model.u(beta, x)`` / ``model.a_field(beta, x)`` anywhere).
    losses : (steps,) array of the ensemble-mean loss
    seconds : float
    """

    a_mean: np.ndarray
    a_std: np.ndarray
    u_mean: np.ndarray
    a_members: np.ndarray
    beta: torch.Tensor = field(repr=False)
    losses: np.ndarray = field(repr=False)
    seconds: float = 0.0


def solve_inverse(model: DGNO, obs: Observations, *, members: int = 16, steps: int = 500, lr: float = 1e-2,
                  w_obs: float = 25.0, n_centres: int = 100, seed: int = 0, prior: LatentPrior | None = None,
                  w_prior: float = 1.0, init: str = "random", data_term: str = "relative", pool: int = 512,
                  w_physics: float = 1.0, perturb_prior: bool = False) -> InverseResult:
    """Latent-space inverse solve with frozen decoders (see the module docstring).

    Parameters
    ----------
    model : DGNO
        Trained; its parameters are not changed.
    obs : Observations
    members : int
        Ensemble size (1 gives the authors' point estimate).
    steps, lr : int, float
        Adam iterations and step size (authors: 500, 1e-2).
    w_obs : float
        Weight of the data misfit (authors: 25 with ``data_term="relative"``).
    n_centres : int
        Wendland test functions per step, drawn from a pool of ``pool`` centres whose trunk
        features are computed once (see :class:`~solvers.dgno.latent.FrozenDecoders`).
    prior : LatentPrior, optional
        Gaussian prior on the pre-tanh latent; adds ``w_prior * energy(z)`` (authors: none).
    init : {"random", "prior"}
        Members start from ``z ~ N(0, I)`` (authors) or from draws of ``prior``.
    data_term : {"relative", "gaussian"}
        ``||u - y|| / ||y||`` (authors) or the Gaussian log-likelihood ``|u - y|^2 / (2 sigma^2)``.
    w_physics : float
        Weight of the physics loss (weak residuals and flux mismatch).
    perturb_prior : bool
        Give every member its own draw of the prior mean (randomised maximum likelihood; needs
        ``prior`` and ``members > 1``), see the module docstring.
    """
    if init not in ("random", "prior") or (init == "prior" and prior is None):
        raise ValueError(f"init={init!r}: use 'random', or 'prior' together with a LatentPrior")
    if data_term not in ("relative", "gaussian"):
        raise ValueError(f"data_term={data_term!r}; use 'relative' (the authors') or 'gaussian'")
    if perturb_prior and prior is None:
        raise ValueError("perturb_prior=True needs a LatentPrior (prior=model.latent_prior())")
    started = time.perf_counter()
    p = next(model.parameters())
    dtype, device = p.dtype, p.device
    c = model.config
    gen = torch.Generator().manual_seed(seed)
    if prior is not None:
        prior = LatentPrior(prior.mean.to(dtype=dtype, device=device), prior.chol.to(dtype=dtype, device=device))
    z0 = prior.sample(members, gen) if init == "prior" else torch.randn(members, c.latent, generator=gen, dtype=dtype)
    z = z0.to(device).detach().requires_grad_(True)
    x_obs = obs.x.to(dtype=dtype, device=device)
    u_obs = obs.u.to(dtype=dtype, device=device)
    noise = obs.sigma * torch.randn(members, len(u_obs), generator=gen, dtype=dtype).to(device)
    if members > 1:  # randomise-then-optimise: each member sees its own perturbed data
        targets = u_obs + noise
    else:
        targets = u_obs[None]
    shift = None
    if perturb_prior and members > 1:  # each member's own prior mean mu + L eta_k
        shift = (prior.sample(members, gen) - prior.mean).detach()
    n_blocks = max(pool // n_centres, 1)  # each step uses one block of n_centres pre-drawn centres
    centres = torch.cat([model.tests.sample_centres(n_centres, gen, dtype=dtype) for _ in range(n_blocks)]).to(device)
    frozen = FrozenDecoders(model, x_obs, centres)
    requires = [q.requires_grad for q in model.parameters()]
    for q in model.parameters():
        q.requires_grad_(False)
    optimizer = torch.optim.Adam([z], lr=lr)
    losses = np.empty(steps)
    try:
        for step in range(steps):
            block = int(torch.randint(n_blocks, (1,), generator=gen))
            idx = slice(block * n_centres, (block + 1) * n_centres)
            beta = torch.tanh(z)
            diff = frozen.u_obs(beta) - targets
            if data_term == "relative":
                misfit = diff.norm(dim=1) / targets.norm(dim=1)
            else:
                misfit = 0.5 * (diff ** 2).sum(1) / obs.sigma ** 2
            loss = w_obs * misfit + w_physics * frozen.physics_loss(beta, idx)
            if prior is not None:
                loss = loss + w_prior * prior.energy(z if shift is None else z - shift)
            loss = loss.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses[step] = float(loss.detach()) / members
    finally:
        for q, flag in zip(model.parameters(), requires):
            q.requires_grad_(flag)
    with torch.no_grad():
        beta = torch.tanh(z)
        x = grid_points(c.n_pix, dtype, device)
        a_k = model.a_field(beta, x)                                   # (K, P*P)
        var = a_k.var(dim=0, unbiased=False)
        if c.kind == "two_phase":
            prob = torch.sigmoid(model.a_raw(beta, x))
            var = var + ((c.high - c.low) ** 2 * prob * (1 - prob)).mean(0)
        u_k = model.u(beta, x)
    P = c.n_pix
    return InverseResult(a_mean=a_k.mean(0).reshape(P, P).cpu().numpy(), a_std=var.sqrt().reshape(P, P).cpu().numpy(),
                         u_mean=u_k.mean(0).reshape(P, P).cpu().numpy(),
                         a_members=a_k.reshape(-1, P, P).cpu().numpy(), beta=beta.detach(), losses=losses,
                         seconds=time.perf_counter() - started)
