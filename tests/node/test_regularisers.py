"""Regularisers of solvers.node: finite-difference gradients (float64), exactness, NFE, adjoint."""
import pytest
import torch
from torch.func import functional_call

from solvers.node.local import hermite, local_error_step
from solvers.node.ode import NeuralODE
from solvers.node.schedule import ExponentialSchedule, paper_schedule
from solvers.node.tasks import MLPField

F64 = torch.float64


def _field(seed=0, dim=2, hidden=5):
    torch.manual_seed(seed)
    return MLPField(dim, hidden, time=True, dtype=F64)


def _fixed_steps(h):
    """torchdiffeq options that make the adaptive solver take steps of exactly ``h``."""
    return {"first_step": h, "min_step": h, "ifactor": 1.0, "dfactor": 1.0}


def _as_function_of_parameters(model, compute):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).requires_grad_()

    def fn(theta):
        params, i = {}, 0
        for n, s in zip(names, shapes):
            params[n] = theta[i:i + s.numel()].view(s)
            i += s.numel()
        return compute(lambda *a, **k: functional_call(model, params, a, k))
    return fn, flat


@pytest.mark.parametrize("method", ["tsit5", "dopri5"])
def test_global_regulariser_gradient_matches_finite_differences(method):
    model = NeuralODE(_field(), method=method, regulariser="global", rtol=1e-4, atol=1e-4,
                      options=_fixed_steps(0.3))
    y0 = torch.randn(3, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0.0, 0.5, 1.2], dtype=F64)

    def compute(call):
        sol = call(y0, t, regularise=True)
        return torch.stack([sol.error, sol.stiffness, sol.ys.sum()])
    fn, theta = _as_function_of_parameters(model, compute)
    assert model.func.accepted == 0
    assert torch.autograd.gradcheck(fn, (theta,), eps=1e-6, atol=1e-6, rtol=1e-5)
    assert model.func.accepted == 4 and model.func.rejected == 0


def test_local_regulariser_gradient_matches_finite_differences():
    """At a given step size (the heuristic's dt is detached, as in the paper, so it is fixed here)."""
    field = _field(2)
    y_r = torch.randn(4, 2, dtype=F64, generator=torch.Generator().manual_seed(3))

    def compute(call):
        return torch.stack(local_error_step(lambda t, y: call(t, y), torch.tensor(0.4, dtype=F64), y_r,
                                            rtol=1e-4, atol=1e-4, dt=torch.tensor(0.2, dtype=F64)))
    fn, theta = _as_function_of_parameters(field, compute)
    assert torch.autograd.gradcheck(fn, (theta,), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_global_regulariser_is_the_sum_of_its_steps():
    """R_E of a fixed-step solve = sum of single steps (local_error_step) from the recorded step points."""
    h = 0.25
    model = NeuralODE(_field(4), method="tsit5", regulariser="local", sampling="biased", rtol=1e-5, atol=1e-5,
                      options=_fixed_steps(h))
    y0 = torch.randn(3, 2, dtype=F64, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([0.0, 1.0], dtype=F64)
    model.func.keep_states = True  # reuse the recorder to get the step points
    model.regulariser = "global"
    model.func.reset()
    model.func.recording = True
    from torchdiffeq import odeint
    odeint(model.func, y0, t, rtol=1e-5, atol=1e-5, method="tsit5",
           options={**_fixed_steps(h), "norm": model.func.norm})
    points = model.func.step_points
    global_sum = torch.stack(model.func.error_terms).sum()
    dt = torch.tensor(h, dtype=F64)
    steps = [local_error_step(model.func, p[0], p[1], method="tsit5", rtol=1e-5, atol=1e-5, dt=dt)
             for p in points[:-1]]
    assert len(steps) == 4
    torch.testing.assert_close(global_sum, torch.stack([s[0] for s in steps]).sum(), rtol=1e-9, atol=0)
    torch.testing.assert_close(torch.stack(model.func.stiffness_terms).sum(), torch.stack([s[1] for s in steps]).sum(),
                               rtol=1e-9, atol=0)


@pytest.mark.parametrize("regulariser,sampling,adjoint", [("global", "unbiased", False), ("local", "unbiased", False),
                                                          ("local", "biased", False), ("local", "unbiased", True)])
def test_weight_zero_training_equals_vanilla(regulariser, sampling, adjoint):
    from solvers.node.tasks import Variant, digits_data, train_digits
    data = tuple(x[:200] for x in digits_data())
    kw = {"steps": 3, "batch": 32, "data": data, "width": 8, "hidden": 16}
    vanilla, _ = train_digits(Variant("vanilla", adjoint=adjoint), seed=0, **kw)
    zero, info = train_digits(Variant("zero", regulariser, sampling, adjoint=adjoint), seed=0, **kw)
    for (name, a), b in zip(vanilla.named_parameters(), zero.parameters()):
        assert torch.equal(a, b), name
    assert info["train_nfe"] > 0


def test_stats_and_local_with_adjoint():
    field = _field(6)
    model = NeuralODE(field, regulariser="local", adjoint=True, rtol=1e-6, atol=1e-6)
    y0 = torch.randn(5, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    sol = model(y0, torch.linspace(0, 1, 4, dtype=F64), generator=torch.Generator().manual_seed(0))
    assert sol.ys.shape == (4, 5, 2)
    assert sol.stats.nfe == 2 + 6 * (sol.stats.accepted + sol.stats.rejected)
    assert sol.stats.regulariser_nfe == 8
    (sol.ys.square().mean() + 10 * sol.error).backward()
    grads = [p.grad for p in field.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    assert model(y0).error is None  # no regulariser at evaluation


def test_local_step_solver_uses_the_solvers_step():
    model = NeuralODE(_field(7), regulariser="local", local_step="solver", sampling="biased", rtol=1e-5, atol=1e-5)
    sol = model(torch.ones(2, 2, dtype=F64), generator=torch.Generator().manual_seed(0))
    assert sol.stats.regulariser_nfe == 7 and sol.error > 0


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="adjoint=False"):
        NeuralODE(_field(), regulariser="global", adjoint=True)
    with pytest.raises(ValueError, match="dopri5"):
        NeuralODE(_field(), method="rk4")
    with pytest.raises(ValueError, match="sampling"):
        NeuralODE(_field(), regulariser="local", sampling="sometimes")


def test_hermite_and_schedules():
    t0, t1 = torch.tensor(0.0, dtype=F64), torch.tensor(0.1, dtype=F64)

    def y(s):
        return torch.sin(torch.tensor(s, dtype=F64))
    value = hermite(0.04, t0, y(0.0), torch.cos(t0), t1, y(0.1), torch.cos(t1))
    assert abs(float(value - y(0.04))) < 1e-6
    s = ExponentialSchedule(100.0, 10.0, 10)
    assert s(0) == 100.0 and abs(s(5) - 100 * 0.1 ** 0.5) < 1e-12 and abs(s(10) - 10.0) < 1e-12 and s(50) == s(10)
    err, stiff = paper_schedule("global-mnist", 75)
    assert err(0) == 100.0 and stiff(3) == 0.0285


def test_zero_times_regulariser_changes_gradients_only_by_rounding():
    """Why regularised_loss leaves out weight-0 terms: 0 * R only reorders autograd's sums."""
    from solvers.node.tasks import DigitsClassifier, Variant, digits_data
    x, y = (t[:64] for t in digits_data()[:2])
    grads = {}
    for with_zero in (False, True):
        torch.manual_seed(0)
        model = DigitsClassifier(width=8, hidden=16, variant=Variant("g", "global"))
        logits, sol = model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        (loss + 0.0 * sol.error + 0.0 * sol.stiffness if with_zero else loss).backward()
        grads[with_zero] = [p.grad for p in model.parameters()]
    for a, b in zip(grads[False], grads[True]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
