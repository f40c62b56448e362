"""Regularisation weight schedules of Pal et al.

ERNODE (2021) anneals the error-estimate weight exponentially (100 -> 10 over 75 epochs on
MNIST, 1000 -> 100 on PhysioNet) and keeps the stiffness weight constant (0.0285 / 0.285); the
local regulariser (2023) anneals 2.5 -> 1.0. :func:`paper_schedule` returns these, stretched
over a given number of training steps.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConstantSchedule", "ExponentialSchedule", "paper_schedule"]


@dataclass(frozen=True)
class ExponentialSchedule:
    """``w(step) = start * (end / start) ** min(step / steps, 1)`` (exponential decay, then constant)."""

    start: float
    end: float
    steps: int

    def __post_init__(self) -> None:
        if self.steps < 1 or self.start < 0 or self.end < 0 or (self.start == 0) != (self.end == 0):
            raise ValueError(f"ExponentialSchedule needs steps >= 1 and start, end both positive or both 0; "
                             f"got start={self.start}, end={self.end}, steps={self.steps}")

    def __call__(self, step: int) -> float:
        if self.start == 0:
            return 0.0
        return self.start * (self.end / self.start) ** min(max(step, 0) / self.steps, 1.0)


@dataclass(frozen=True)
class ConstantSchedule:
    """``w(step) = value``."""

    value: float

    def __call__(self, step: int) -> float:
        return self.value


def paper_schedule(kind: str, steps: int, scale: float = 1.0) -> tuple[ExponentialSchedule, ConstantSchedule]:
    """The papers' (error weight, stiffness weight) schedules over ``steps`` training steps.

    Parameters
    ----------
    kind : {"global-mnist", "global-physionet", "local"}
    steps : int
        Steps over which the error weight decays (the papers: 75 epochs of MNIST, all of training).
    scale : float
        Multiplies both weights (the losses of other tasks have other scales).
    """
    table = {"global-mnist": (100.0, 10.0, 0.0285), "global-physionet": (1000.0, 100.0, 0.285),
             "local": (2.5, 1.0, 0.0)}
    if kind not in table:
        raise ValueError(f"kind={kind!r} is unknown; use one of {sorted(table)}")
    start, end, stiff = table[kind]
    return ExponentialSchedule(start * scale, end * scale, steps), ConstantSchedule(stiff * scale)
