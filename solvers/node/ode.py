"""``NeuralODE``: a torchdiffeq solve with NFE counting, step statistics and the regularisers
of Pal et al. ("Opening the Blackbox", ICML 2021; "Locally Regularized Neural Differential
Equations", 2023).

* ``regulariser="global"`` -- the sum over accepted steps of ``EEst * dt`` (and of
  ``|lambda| * dt``, the stiffness estimate), read from the solver's own stages during the
  ordinary ``torchdiffeq.odeint`` solve (see :mod:`solvers.node.recorder`); differentiable by
  backpropagating through the solver (discretise-then-optimise), so not with ``adjoint=True``.
* ``regulariser="local"`` -- one extra step from a random time point
  (:mod:`solvers.node.local`); works with ``adjoint=True``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from solvers.node.local import local_error_step, sample_start
from solvers.node.recorder import StepRecorder, StepStats
from solvers.node.tableau import check_torchdiffeq, tableau

__all__ = ["NeuralODE", "ODESolution"]

logger = logging.getLogger(__name__)

REGULARISERS = ("none", "global", "local")


@dataclass
class ODESolution:
    """What :meth:`NeuralODE.forward` returns.

    Attributes
    ----------
    ys : (T, *y0.shape) tensor
        The state at the requested times.
    error : () tensor or None
        Error regulariser R_E (global: over accepted steps; local: one step), ``None`` without one.
    stiffness : () tensor or None
        Stiffness regulariser R_S, defined like ``error``.
    stats : StepStats
    """

    ys: torch.Tensor
    error: torch.Tensor | None = None
    stiffness: torch.Tensor | None = None
    stats: StepStats = field(default_factory=StepStats)

    @property
    def final(self) -> torch.Tensor:
        """The state at the last time, ``(*y0.shape)``."""
        return self.ys[-1]


class NeuralODE(nn.Module):
    """A neural ODE ``dy/dt = field(t, y)`` solved by torchdiffeq's adaptive RK solvers.

    Parameters
    ----------
    field : nn.Module
        Vector field ``field(t, y) -> dy/dt``; ``t`` is a 0-d tensor.
    method : {"tsit5", "dopri5"}
        Embedded 5(4) pair (``tsit5`` is added to torchdiffeq by :mod:`solvers.node.tableau`).
    rtol, atol : float
    adjoint : bool
        Differentiate with ``odeint_adjoint`` (O(1) memory) instead of backpropagation.
    regulariser : {"none", "global", "local"}
    sampling : {"unbiased", "biased"}
        Local regulariser: ``t_r`` uniform in ``[t0, t1]`` or uniform over accepted step points.
    reduction : {"sum", "mean"}
        Global regulariser: the papers' sum over steps, or the mean (RegNeuralDE.jl's code).
    local_step : {"initial", "solver"}
        Step size of the local regulariser's step: the solver's initial-step heuristic at
        ``t_r`` (the paper; ``EEst * dt`` is then tiny, ~``dt^6``, so weights must be large), or
        the size of the main solve's accepted step containing ``t_r`` (ours: the same quantity
        the global regulariser sums, at one random place; 1 evaluation fewer).
    options, adjoint_options : dict, optional
        Passed to torchdiffeq (``first_step``, ``max_num_steps``, ...); ``norm`` is reserved.
    """

    def __init__(self, field: nn.Module, *, method: str = "tsit5", rtol: float = 1e-5, atol: float = 1e-5,
                 adjoint: bool = False, regulariser: str = "none", sampling: str = "unbiased",
                 reduction: str = "sum", local_step: str = "initial", options: dict | None = None,
                 adjoint_options: dict | None = None):
        super().__init__()
        check_torchdiffeq()
        tableau(method)  # validates the method
        if regulariser not in REGULARISERS:
            raise ValueError(f"regulariser={regulariser!r} is unknown; use one of {REGULARISERS}")
        if regulariser == "global" and adjoint:
            raise ValueError("the global regulariser needs the solver's stages in the autograd graph "
                             "(discretise-then-optimise); use adjoint=False or regulariser='local'")
        if sampling not in ("unbiased", "biased"):
            raise ValueError(f"sampling={sampling!r} is unknown; use 'unbiased' or 'biased'")
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction={reduction!r} is unknown; use 'sum' or 'mean'")
        if local_step not in ("initial", "solver"):
            raise ValueError(f"local_step={local_step!r} is unknown; use 'initial' or 'solver'")
        if options and "norm" in options:
            raise ValueError("options['norm'] is reserved: NeuralODE reads the error estimate through it")
        self.func = StepRecorder(field)
        self.method, self.rtol, self.atol, self.adjoint = method, rtol, atol, adjoint
        self.regulariser, self.sampling, self.reduction = regulariser, sampling, reduction
        self.local_step = local_step
        self.options = dict(options or {})
        self.adjoint_options = adjoint_options

    @property
    def field(self) -> nn.Module:
        return self.func.field

    def _solve(self, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        options = {**self.options, "norm": self.func.norm}
        if self.adjoint:
            adjoint_options = self.adjoint_options
            if adjoint_options is None:
                adjoint_options = {k: v for k, v in self.options.items()}
            return odeint_adjoint(self.func, y0, t, rtol=self.rtol, atol=self.atol, method=self.method,
                                  options=options, adjoint_options=adjoint_options,
                                  adjoint_params=tuple(self.field.parameters()))
        return odeint(self.func, y0, t, rtol=self.rtol, atol=self.atol, method=self.method, options=options)

    def forward(self, y0: torch.Tensor, t: torch.Tensor | None = None, *, regularise: bool | None = None,
                generator: torch.Generator | None = None) -> ODESolution:
        """Solve from ``y0`` at ``t[0]`` and return the states at ``t``.

        Parameters
        ----------
        y0 : (*shape) tensor
            Initial state (a batch is one joint system, as in torchdiffeq).
        t : (T,) tensor, optional
            Increasing output times; default ``[0, 1]`` in ``y0``'s dtype.
        regularise : bool, optional
            Compute the regulariser; default ``self.training`` (skipped at evaluation).
        generator : torch.Generator, optional
            Source of the local regulariser's random time point.

        Returns
        -------
        ODESolution
        """
        if t is None:
            t = torch.tensor([0.0, 1.0], dtype=y0.dtype, device=y0.device)
        if t.device != y0.device:
            raise ValueError(f"t is on {t.device} but y0 on {y0.device}; move t to y0.device")
        if t.ndim != 1 or t.numel() < 2 or not bool((t[1:] > t[:-1]).all()):
            raise ValueError("t must be a 1-D increasing tensor with at least two times")
        regularise = self.training if regularise is None else regularise
        mode = self.regulariser if regularise else "none"
        rec = self.func
        rec.reset()
        rec.recording = mode == "global"
        rec.keep_states = mode == "local"
        start = rec.nfe
        try:
            ys = self._solve(y0, t)
        finally:
            rec.recording = rec.keep_states = False
        stats = StepStats(nfe=rec.nfe - start, accepted=rec.accepted, rejected=rec.rejected)
        error = stiffness = None
        if mode == "global":
            errors, stiff = torch.stack(rec.error_terms), torch.stack(rec.stiffness_terms)
            reduce = torch.sum if self.reduction == "sum" else torch.mean
            error, stiffness = reduce(errors), reduce(stiff)
        elif mode == "local":
            t_r, y_r, dt = sample_start(rec.step_points, float(t[0]), float(t[-1]), self.sampling, generator)
            before = rec.nfe
            error, stiffness = local_error_step(rec, t_r, y_r, method=self.method, rtol=self.rtol, atol=self.atol,
                                                dt=dt if self.local_step == "solver" else None)
            stats.regulariser_nfe = rec.nfe - before
        return ODESolution(ys=ys, error=error, stiffness=stiffness, stats=stats)
