"""Counting and recording wrapper of a vector field for torchdiffeq's adaptive RK solvers.

:class:`StepRecorder` is what is handed to ``torchdiffeq.odeint`` as ``func``. It uses only
hooks torchdiffeq offers to every user -- the ``func`` call itself, the step callbacks
(``callback_step`` / ``callback_accept_step`` / ``callback_reject_step``) and the ``norm``
option -- to observe the solver's *own* steps:

* every call of the field is counted (NFE);
* within a step torchdiffeq 0.2.5 calls, in this order: ``callback_step`` -> the stages
  (``func``) -> ``norm(y1_error / (atol + rtol max(|y0|, |y1|)))`` -> ``callback_accept_step`` or
  ``callback_reject_step``. The norm's value is the embedded error estimate EEst of the step
  (it is differentiable: ``y1_error`` is built from the stages k_i), so on acceptance the
  recorder adds ``EEst * dt`` to the global error regulariser (Pal et al. 2021, ERNODE);
* for first-same-as-last pairs (dopri5, tsit5) the last two stage evaluations of a step are
  at t1: ``g6`` (stage 6) and ``g7 = y1`` (stage 7). ``|lambda| ~ ||k7 - k6|| / ||g7 - g6||`` is
  the stiffness (dominant eigenvalue) estimate; on acceptance ``|lambda| * dt`` is added to
  the stiffness regulariser (SRNODE).

Step sizes are not differentiable (torchdiffeq computes the next ``dt`` under ``no_grad``),
so the gradient of the regulariser is the discretise-then-optimise gradient for the step
sequence the solver chose. The order of calls is private behaviour of torchdiffeq 0.2.5,
pinned in ``tests/node/test_pin.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchdiffeq._impl.misc import _rms_norm

__all__ = ["StepRecorder", "StepStats"]


@dataclass
class StepStats:
    """Solver statistics of one solve.

    Attributes
    ----------
    nfe : int
        Evaluations of the vector field by the forward solve (dopri5 / tsit5: ``2 + 6 * steps``
        including the initial step selection).
    accepted, rejected : int
        Accepted and rejected steps of the forward solve.
    regulariser_nfe : int
        Extra evaluations spent on the local regulariser (0 otherwise).
    """

    nfe: int = 0
    accepted: int = 0
    rejected: int = 0
    regulariser_nfe: int = 0


class StepRecorder(nn.Module):
    """Wraps ``field(t, y)``; counts calls and, while ``recording``, accumulates regularisers.

    Parameters
    ----------
    field : nn.Module
        The vector field ``f(t, y)``: ``t`` a 0-d tensor, ``y`` any shape, returns ``dy/dt``.

    Attributes
    ----------
    nfe : int
        Calls of ``field`` since construction.
    recording : bool
        Accumulate ``error_terms`` / ``stiffness_terms`` (global regulariser) in the next solve.
    keep_states : bool
        Keep ``step_points``: ``(t, y, f)`` (detached) at the start and at the end of every
        accepted step, for the local regulariser's choice of start point.
    """

    def __init__(self, field: nn.Module):
        super().__init__()
        self.field = field
        self.nfe = 0
        self.recording = False
        self.keep_states = False
        self.reset()

    def reset(self) -> None:
        """Clear the per-solve accumulators (the NFE counter keeps running)."""
        self.accepted = 0
        self.rejected = 0
        self.error_terms: list[torch.Tensor] = []
        self.stiffness_terms: list[torch.Tensor] = []
        self.step_points: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._stages: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._error_ratio: torch.Tensor | None = None

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        f = self.field(t, y)
        self.nfe += 1
        if self.keep_states and not self.step_points:
            self.step_points.append((t.detach().clone(), y.detach(), f.detach()))  # (t0, y0, f0) of the solve
        if self.recording or self.keep_states:
            self._stages = self._stages[-1:] + [(y, f)]
        return f

    # --- hooks called by torchdiffeq's RKAdaptiveStepsizeODESolver -----------------------------------
    def norm(self, scaled_error: torch.Tensor) -> torch.Tensor:
        """torchdiffeq's RMS norm; remembers the last value (the step's error ratio)."""
        value = _rms_norm(scaled_error)
        if self.recording:
            self._error_ratio = value
        return value

    def callback_step(self, t0, y0, dt) -> None:
        self._stages = []
        self._error_ratio = None

    def callback_accept_step(self, t0, y0, dt) -> None:
        self.accepted += 1
        if self.keep_states:  # (t1, y1, f1): stage 7 of a first-same-as-last pair is at (t1, y1)
            y1, f1 = self._stages[-1]
            self.step_points.append(((t0 + dt).detach().clone(), y1.detach(), f1.detach()))
        if not self.recording:
            return
        if self._error_ratio is None or len(self._stages) < 2:
            raise RuntimeError("the step callbacks did not follow torchdiffeq 0.2.5's order (stages, norm, "
                               "accept); install torchdiffeq==0.2.5")
        dt_y = dt.to(self._error_ratio.dtype)
        self.error_terms.append(self._error_ratio.abs() * dt_y)
        (g6, k6), (g7, k7) = self._stages
        tiny = torch.finfo(g7.dtype).tiny
        eigen = torch.linalg.vector_norm(k7 - k6) / torch.linalg.vector_norm(g7 - g6).clamp_min(tiny)
        self.stiffness_terms.append(eigen * dt_y)

    def callback_reject_step(self, t0, y0, dt) -> None:
        self.rejected += 1
