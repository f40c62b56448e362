"""Butcher tableaus of the embedded Runge-Kutta pairs and the torchdiffeq pin.

torchdiffeq 0.2.5 ships Dormand-Prince 5(4) (``dopri5``) but not Tsitouras 5(4)
(``tsit5``), the solver of the Pal et al. papers. :data:`TSIT5_TABLEAU` is Tsitouras'
pair (Ch. Tsitouras, "Runge-Kutta pairs of order 5(4) satisfying only the first column
simplifying assumption", Comput. Math. Appl. 62, 2011) written in torchdiffeq's private
``_ButcherTableau`` layout; :class:`Tsit5Solver` subclasses torchdiffeq's
``RKAdaptiveStepsizeODESolver`` with it and is added to torchdiffeq's solver table as
``method="tsit5"`` (for :func:`torchdiffeq.odeint` and :func:`torchdiffeq.odeint_adjoint`).

Private torchdiffeq API used by this package (pinned by :data:`TORCHDIFFEQ_VERSION` and
``tests/node/test_pin.py``):

* ``torchdiffeq._impl.rk_common``: ``_ButcherTableau``, ``_runge_kutta_step``,
  ``RKAdaptiveStepsizeODESolver`` (its ``_adaptive_step`` order of calls:
  ``callback_step`` -> stages -> ``norm(error / tol)`` -> ``callback_accept_step`` or
  ``callback_reject_step``),
* ``torchdiffeq._impl.misc``: ``_select_initial_step``, ``_compute_error_ratio``, ``_rms_norm``,
* ``torchdiffeq._impl.dopri5``: ``_DORMAND_PRINCE_SHAMPINE_TABLEAU``, ``DPS_C_MID``,
* ``torchdiffeq._impl.odeint.SOLVERS`` (the solver table).
"""
from __future__ import annotations

import torch
import torchdiffeq
from torchdiffeq._impl.dopri5 import _DORMAND_PRINCE_SHAMPINE_TABLEAU, DPS_C_MID
from torchdiffeq._impl.odeint import SOLVERS
from torchdiffeq._impl.rk_common import RKAdaptiveStepsizeODESolver, _ButcherTableau

__all__ = [
    "DOPRI5_TABLEAU",
    "TORCHDIFFEQ_VERSION",
    "TSIT5_MID",
    "TSIT5_TABLEAU",
    "Tsit5Solver",
    "check_torchdiffeq",
    "tableau",
]

TORCHDIFFEQ_VERSION = "0.2.5"

_f64 = {"dtype": torch.float64}

DOPRI5_TABLEAU = _DORMAND_PRINCE_SHAMPINE_TABLEAU

# Tsitouras 5(4): stages c, coupling a (row i gives stage i+2), solution weights b (FSAL: the
# last row of a), and error weights b - b_hat (b_hat the embedded 4th-order solution).
_TS_C = [0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0]
_TS_A = [
    [0.161],
    [-0.008480655492356989, 0.335480655492357],
    [2.897153057105493, -6.359448489975075, 4.3622954328695815],
    [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
    [5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401, -0.028269050394068383],
    [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081, 2.324710524099774],
]
# OrdinaryDiffEq's btilde = b - b_hat (sign convention irrelevant: only |error| is used)
_TS_E = [-0.00178001105222577714, -0.0008164344596567469, 0.007880878010261995, -0.1447110071732629,
         0.5823571654525552, -0.45808210592918697, 0.015151515151515152]
# dense output b_i(theta) = sum_j r_ij theta^j (j = 1..4), used only for the midpoint value
_TS_R = [
    [1.0, -2.763706197274826, 2.9132554618219126, -1.0530884977290216],
    [0.0, 0.13169999999999998, -0.2234, 0.1017],
    [0.0, 3.9302962368947516, -5.941033872131505, 2.490627285651253],
    [0.0, -12.411077166933676, 30.33818863028232, -16.548102889244902],
    [0.0, 37.50931341651104, -88.1789048947664, 47.37952196281928],
    [0.0, -27.896526289197286, 65.09189467479366, -34.87065786149661],
    [0.0, 1.5, -4.0, 2.5],
]

TSIT5_TABLEAU = _ButcherTableau(
    alpha=torch.tensor(_TS_C, **_f64),
    beta=[torch.tensor(row, **_f64) for row in _TS_A],
    c_sol=torch.tensor(_TS_A[-1] + [0.0], **_f64),
    c_error=torch.tensor(_TS_E, **_f64),
)
TSIT5_MID = torch.tensor([sum(r * 0.5 ** (j + 1) for j, r in enumerate(row)) for row in _TS_R], **_f64)


class Tsit5Solver(RKAdaptiveStepsizeODESolver):
    """torchdiffeq's adaptive RK solver with Tsitouras' 5(4) tableau (``method="tsit5"``)."""

    order = 5
    tableau = TSIT5_TABLEAU
    mid = TSIT5_MID


SOLVERS.setdefault("tsit5", Tsit5Solver)


def tableau(method: str) -> tuple[_ButcherTableau, int]:
    """The (tableau, order) of an embedded pair by torchdiffeq method name.

    Raises
    ------
    ValueError
        For methods other than ``"dopri5"`` and ``"tsit5"``.
    """
    if method == "dopri5":
        return DOPRI5_TABLEAU, 5
    if method == "tsit5":
        return TSIT5_TABLEAU, 5
    raise ValueError(f"method={method!r} has no embedded-error tableau here; use 'dopri5' or 'tsit5'")


def check_torchdiffeq() -> None:
    """Raise ``RuntimeError`` if the installed torchdiffeq is not the pinned version."""
    if torchdiffeq.__version__ != TORCHDIFFEQ_VERSION:
        raise RuntimeError(f"solvers.node relies on private internals of torchdiffeq=={TORCHDIFFEQ_VERSION} but "
                           f"{torchdiffeq.__version__} is installed; "
                           f"run pip install torchdiffeq=={TORCHDIFFEQ_VERSION}")


assert DPS_C_MID is not None  # imported to pin its presence
