"""Training of the DCDM direction network on Ritz-vector right-hand sides.

The loss of Kaneda et al. for one right-hand side ``b`` and ``q = f(b)`` is

    L(b) = || b - (q^T b / q^T A q) A q ||^2,

the residual left after an exact line search along ``q``. It is invariant to the scale
(and sign) of ``f`` and zero when ``q`` is parallel to ``A^{-1} b``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from sciml.linalg import PoissonStencil
from sciml.train import TrainConfig, TrainResult, fit, shard
from solvers.dcdm.data import RitzBasis, merged, prolonged_modes, ritz_basis
from solvers.dcdm.scenes import get_scene


logger = logging.getLogger(__name__)


def dcdm_loss(model: nn.Module, A: PoissonStencil, b: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``|| b - (q^T b / q^T A q) A q ||^2`` with ``q = model(b)``.

    Parameters
    ----------
    model : nn.Module
        Maps ``(B, 1, X, Y, Z)`` to ``(B, 1, X, Y, Z)``.
    A : PoissonStencil
        In the dtype and on the device of ``b``.
    b : (B, n) tensor
        Unit-norm right-hand sides (zero on solid cells).

    Returns
    -------
    () tensor
    """
    batch = b.shape[0]
    q = model(b.reshape(batch, 1, *A.grid)).reshape(batch, -1) * A.fluid.reshape(1, -1)
    Aq = A.matvec(q.T.contiguous()).T
    alpha = (q * b).sum(1) / (q * Aq).sum(1)
    return ((b - alpha[:, None] * Aq) ** 2).sum(1).mean()


def dcdm_unrolled_loss(model: nn.Module, A: PoissonStencil, b: torch.Tensor, steps: int,
                       n_orth: int = 2) -> torch.Tensor:
    """The DCDM loss over ``steps`` iterations of the solver itself (beyond the paper).

    Iteration ``k`` feeds the normalised residual ``r_k`` to the network, A-orthogonalises
    the direction against the last ``n_orth`` ones, takes the exact step, and adds
    ``||r_{k+1}||^2 / ||r_k||^2`` to the loss; ``r_k`` and the old directions are treated as
    data (detached). With ``steps=1`` this is :func:`dcdm_loss`. Later iterations show the
    network the residuals it produces itself, which the Ritz samples do not contain.

    Parameters
    ----------
    model, A : as for :func:`dcdm_loss`
    b : (B, n) tensor
    steps : int
    n_orth : int

    Returns
    -------
    () tensor, the mean over iterations and samples
    """
    batch = b.shape[0]
    fluid = A.fluid.reshape(1, -1)
    r, previous, total = b, [], 0.0
    for _ in range(steps):
        scale = torch.linalg.vector_norm(r, dim=1, keepdim=True)
        q = model((r / scale).reshape(batch, 1, *A.grid)).reshape(batch, -1) * fluid
        for p, Ap, pAp in previous[-n_orth:] if n_orth else []:
            q = q - ((q * Ap).sum(1) / pAp)[:, None] * p
        Aq = A.matvec(q.T.contiguous()).T
        qAq = (q * Aq).sum(1)
        r_next = r - ((q * r).sum(1) / qAq)[:, None] * Aq
        total = total + ((r_next ** 2).sum(1) / scale[:, 0] ** 2).mean()
        previous.append((q.detach(), Aq.detach(), qAq.detach()))
        r = r_next.detach()
    return total / steps


@dataclass
class DCDMTrainingSetup:
    """Training matrices and their Ritz bases.

    Attributes
    ----------
    scenes : list of str
        Names of the training scenes (see :mod:`solvers.dcdm.scenes`).
    sizes : list of int
        Training grid sizes (cells per side); every scene is rasterised at each. More
        than one size teaches the network directions that carry over across resolutions.
    lanczos_steps : int or list of int
        Lanczos steps per matrix: one number for every size, or one per size (a 128^3
        basis costs 64x the memory of a 32^3 one per step).
    noise : float
        Relative white-noise level mixed into the samples (0 = the paper's data);
        see :meth:`RitzBasis.sample`.
    unroll : int
        Solver iterations per loss (1 = the paper's loss, see :func:`dcdm_unrolled_loss`).
    on_policy : float
        Fraction of each batch replaced by the residual the current network leaves after
        one exact step on it, ``r = b - alpha A f(b)`` (normalised, no gradient through
        it): the ``A e`` residuals DCDM meets from its second iteration on.
    prolong : int
        Beyond the paper: add to each size's basis the ``prolong`` lowest Ritz vectors of the
        same scene at the previous (coarser) size, interpolated (see
        :func:`~solvers.dcdm.data.prolonged_modes`). With ``lanczos_steps`` 0 for a size, its
        basis is only these modes (plus the white noise).
    operators : list of PoissonStencil (float32), one per (scene, size)
    bases : list of RitzBasis, one per (scene, size)
    """

    scenes: list[str]
    sizes: list[int]
    lanczos_steps: int | list[int]
    noise: float = 0.0
    unroll: int = 1
    on_policy: float = 0.0
    prolong: int = 0
    operators: list[PoissonStencil] = field(default_factory=list)
    bases: list[RitzBasis] = field(default_factory=list)

    @classmethod
    def build(cls, scenes: Sequence[str], sizes: Sequence[int], lanczos_steps: int | Sequence[int], seed: int = 0,
              noise: float = 0.0, unroll: int = 1, on_policy: float = 0.0,
              device: str | torch.device = "cpu", lanczos_memory_gb: float = 2.0,
              prolong: int = 0) -> "DCDMTrainingSetup":
        """Rasterise the scenes at each size and run Lanczos on each matrix (on ``device``)."""
        steps_per_size = _per_size(lanczos_steps, sizes)
        if prolong and (len(sizes) < 2 or list(sizes) != sorted(sizes)):
            raise ValueError(f"prolong carries modes from one training size to the next: it needs at least two "
                             f"sizes in ascending order, got {list(sizes)}")
        setup = cls(list(scenes), list(sizes), lanczos_steps, noise, unroll, on_policy, prolong)
        for index, (n, name) in enumerate((n, name) for n in sizes for name in scenes):
            A = get_scene(name).at(n).stencil(dtype=torch.float64).to(device=device)
            basis = None
            if steps_per_size[n] > 0:
                steps = min(steps_per_size[n], n ** 3 // 4)
                basis = ritz_basis(A, steps, seed=seed + index, max_memory_gb=lanczos_memory_gb)
            if prolong and index >= len(scenes):
                below = index - len(scenes)
                low = prolonged_modes(setup.bases[below], setup.operators[below].fluid.reshape(-1), prolong, A.grid,
                                      A.fluid.reshape(-1))
                basis = low if basis is None else merged(low, basis)
            if basis is None:
                raise ValueError(f"no training vectors at {n}^3: give it Lanczos steps or prolong modes from "
                                 "a coarser size")
            setup.bases.append(basis)
            setup.operators.append(A.to(dtype=torch.float32))
            logger.info("scene %s at %d^3: %d Ritz pairs, smallest %.3e", name, n,
                        setup.bases[-1].values.numel(), float(setup.bases[-1].values[0]))
        return setup

    def sample_batch(self, step: int, generator: torch.Generator, batch_size: int, rank: int, world_size: int):
        """The batch of ``step``: one training matrix (cycled) and ``batch_size`` Ritz samples."""
        scene = step % len(self.bases)
        b = self.bases[scene].sample(batch_size, generator, self.noise, self.operators[scene].fluid.reshape(-1))
        return shard({"scene": torch.full((batch_size,), scene), "b": b}, rank, world_size)

    def loss(self, model: nn.Module, batch: dict) -> torch.Tensor:
        """:func:`dcdm_loss` (or its unrolled form) on the batch's scene."""
        A = self.operators[int(batch["scene"][0])]
        if A.device != batch["b"].device:
            A = A.to(device=batch["b"].device)
            self.operators[int(batch["scene"][0])] = A
        b = batch["b"]
        if self.on_policy > 0:
            b = _with_own_residuals(model, A, b, self.on_policy)
        if self.unroll > 1:
            return dcdm_unrolled_loss(model, A, b, self.unroll)
        return dcdm_loss(model, A, b)


def _per_size(lanczos_steps: int | Sequence[int], sizes: Sequence[int]) -> dict[int, int]:
    """``{size: Lanczos steps}`` from one count for all sizes or one count per size."""
    if isinstance(lanczos_steps, int):
        return {n: lanczos_steps for n in sizes}
    if len(lanczos_steps) == 1:
        return {n: lanczos_steps[0] for n in sizes}
    if len(lanczos_steps) != len(sizes):
        raise ValueError(f"got {len(lanczos_steps)} Lanczos step counts for {len(sizes)} sizes {list(sizes)}; "
                         "give one count for all sizes or one per size, in the order of the sizes")
    return dict(zip(sizes, lanczos_steps))


def _with_own_residuals(model: nn.Module, A: PoissonStencil, b: torch.Tensor, fraction: float) -> torch.Tensor:
    """Replace the first ``fraction`` of the samples ``b : (B, n)`` by their one-step residuals."""
    count = int(round(fraction * b.shape[0]))
    if count == 0:
        return b
    with torch.no_grad():
        head = b[:count]
        q = model(head.reshape(count, 1, *A.grid)).reshape(count, -1) * A.fluid.reshape(1, -1)
        Aq = A.matvec(q.T.contiguous()).T
        r = head - ((q * head).sum(1) / (q * Aq).sum(1))[:, None] * Aq
        r = r / torch.linalg.vector_norm(r, dim=1, keepdim=True)
    return torch.cat([r, b[count:]])


def train_dcdm(model: nn.Module, setup: DCDMTrainingSetup, config: TrainConfig) -> TrainResult:
    """Train ``model`` with :func:`sciml.train.fit` (checkpoints, resume, DDP) on ``setup``."""
    return fit(model, setup.loss, setup.sample_batch, config)
