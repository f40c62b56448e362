"""The result object every iterative solve returns."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class SolveResult:
    """Outcome of an iterative solve.

    Attributes
    ----------
    x : (n,) tensor
        The approximate solution, in the solver's working dtype, on the operator's device.
    converged : bool
        True when the *true* relative residual ``||b - A x|| / ||b||`` meets the tolerance.
    iterations : int
        Iterations performed (each costs at least one operator application).
    residuals : (iterations + 1,) float64 tensor on the CPU
        Relative residual after each iteration, ``residuals[0]`` for the initial guess.
        The first and the last entries are always true residuals ``||b - A x|| / ||b||``;
        solvers that recompute the residual each iteration (conjugate directions)
        record true residuals throughout, CG records its recurrence in between
        (equal to the true one up to rounding, see ``info["true_every_iteration"]``).
    wall_time : float
        Seconds spent in the solve (device synchronised).
    status : str
        One sentence: why it stopped and, when it failed, what to do about it.
    info : dict
        Solver-specific extras (e.g. operator applications, fallback used).
    """

    x: torch.Tensor
    converged: bool
    iterations: int
    residuals: torch.Tensor
    wall_time: float
    status: str
    info: dict = field(default_factory=dict)

    @property
    def residual(self) -> float:
        """Final true relative residual ``||b - A x|| / ||b||``."""
        return float(self.residuals[-1])

    def __repr__(self) -> str:
        return (f"SolveResult(converged={self.converged}, iterations={self.iterations}, "
                f"residual={self.residual:.3e}, wall_time={self.wall_time:.3g}s, status={self.status!r})")
