"""Pin of torchdiffeq 0.2.5 and of the private behaviour solvers.node relies on."""
import pytest
import torch
import torchdiffeq
from torchdiffeq import odeint

from solvers.node.recorder import StepRecorder
from solvers.node.tableau import (
    TORCHDIFFEQ_VERSION,
    TSIT5_TABLEAU,
    check_torchdiffeq,
)


def test_version_is_pinned():
    assert torchdiffeq.__version__ == TORCHDIFFEQ_VERSION == "0.2.5"
    check_torchdiffeq()


def test_private_names_exist():
    import importlib
    rk_common, misc, dopri5, odeint_mod = (importlib.import_module(f"torchdiffeq._impl.{name}")
                                           for name in ("rk_common", "misc", "dopri5", "odeint"))
    for name in ("_ButcherTableau", "_runge_kutta_step", "RKAdaptiveStepsizeODESolver"):
        assert hasattr(rk_common, name)
    for name in ("_select_initial_step", "_compute_error_ratio", "_rms_norm", "_PerturbFunc"):
        assert hasattr(misc, name)
    assert hasattr(dopri5, "_DORMAND_PRINCE_SHAMPINE_TABLEAU") and hasattr(dopri5, "DPS_C_MID")
    assert {"dopri5", "tsit5"} <= set(odeint_mod.SOLVERS)


class _Logged(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.log = []

    def forward(self, t, y):
        self.log.append("f")
        return -y

    def norm(self, x):
        self.log.append("norm")
        return x.pow(2).mean().sqrt()

    def callback_step(self, t0, y0, dt):
        self.log.append("step")

    def callback_accept_step(self, t0, y0, dt):
        self.log.append("accept")

    def callback_reject_step(self, t0, y0, dt):
        self.log.append("reject")


@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
def test_call_order_within_a_step(method):
    """callback_step -> 6 stages -> norm -> accept/reject: what StepRecorder reads."""
    f = _Logged()
    odeint(f, torch.ones(3, dtype=torch.float64), torch.tensor([0.0, 2.0], dtype=torch.float64), rtol=1e-6,
           atol=1e-6, method=method, options={"norm": f.norm})
    log = f.log
    first = log.index("step")
    assert log[:first] == ["f", "norm", "norm", "f", "norm"]  # f0, initial step selection
    steps = "".join("S" if e == "step" else "f" if e == "f" else "n" if e == "norm" else "A" if e == "accept"
                    else "R" for e in log[first:])
    for chunk in steps.split("S")[1:]:
        assert chunk in ("ffffffnA", "ffffffnR")


@pytest.mark.parametrize("method", ["dopri5", "tsit5"])
def test_nfe_is_two_plus_six_per_step(method):
    field = torch.nn.Linear(2, 2, dtype=torch.float64)
    rec = StepRecorder(lambda t, y: torch.tanh(field(y)))
    odeint(rec, torch.ones(4, 2, dtype=torch.float64), torch.linspace(0, 3, 7, dtype=torch.float64), rtol=1e-8,
           atol=1e-8, method=method, options={"norm": rec.norm})
    assert rec.nfe == 2 + 6 * (rec.accepted + rec.rejected)
    assert rec.accepted > 3


def test_tsit5_order_conditions_and_convergence():
    T = TSIT5_TABLEAU
    c = torch.cat([torch.zeros(1, dtype=torch.float64), T.alpha])
    A = torch.zeros(7, 7, dtype=torch.float64)
    for i, row in enumerate(T.beta):
        A[i + 1, :len(row)] = row
    b, bh = T.c_sol, T.c_sol - T.c_error
    assert torch.allclose(A.sum(1), c, atol=1e-14)
    for w, order in ((b, 5), (bh, 4)):  # bushy-tree conditions up to the order
        for q in range(1, order + 1):
            assert abs(float(w @ c ** (q - 1)) - 1 / q) < 1e-13
        assert abs(float(w @ (A @ c)) - 1 / 6) < 1e-13
    assert abs(float(bh @ c ** 4) - 1 / 5) > 1e-4  # the embedded solution really is 4th order
    # dense output (the tableau's midpoint weights) stays accurate between steps
    t = torch.linspace(0, 2, 41, dtype=torch.float64)
    y = odeint(lambda t, y: -y, torch.ones(1, dtype=torch.float64), t, method="tsit5", rtol=1e-9, atol=1e-9)
    assert float((y[:, 0] - torch.exp(-t)).abs().max()) < 1e-8
