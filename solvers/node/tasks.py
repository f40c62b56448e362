"""Two download-free tasks for regularised neural ODEs.

* **Dynamics** -- fit a damped oscillator (or torchdiffeq's demo spiral ``dy/dt = (y**3) A``)
  from noisy samples of trajectories from random initial states; the test error is the
  relative L2 error of predicted trajectories from *other* initial states against the clean
  truth.
* **Digits** -- classify scikit-learn's 8x8 ``load_digits`` images (1797, shipped inside
  scikit-learn) with linear encoder -> neural ODE -> linear decoder.

Both train with :func:`sciml.train.fit`; the loss of a regularised variant is
``task + w_E(step) * R_E + w_S(step) * R_S``; with weight 0 training is bitwise vanilla
training (see :func:`regularised_loss`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from sciml.train import TrainConfig, fit
from solvers.node.ode import NeuralODE
from solvers.node.schedule import ConstantSchedule

__all__ = [
    "DigitsClassifier",
    "DynamicsModel",
    "MLPField",
    "Variant",
    "digits_data",
    "dynamics_data",
    "evaluate_digits",
    "evaluate_dynamics",
    "regularised_loss",
    "train_digits",
    "train_dynamics",
]

SPIRAL_A = [[-0.1, 2.0], [-2.0, -0.1]]


@dataclass
class Variant:
    """A training recipe: which regulariser, its sampling, its weight schedules, adjoint or not."""

    name: str
    regulariser: str = "none"
    sampling: str = "unbiased"
    error_weight: Callable[[int], float] = field(default_factory=lambda: ConstantSchedule(0.0))
    stiffness_weight: Callable[[int], float] = field(default_factory=lambda: ConstantSchedule(0.0))
    adjoint: bool = False
    local_step: str = "initial"

    def ode_kwargs(self) -> dict:
        """Keyword arguments of :class:`NeuralODE` for this variant."""
        return {"adjoint": self.adjoint, "regulariser": self.regulariser, "sampling": self.sampling,
                    "local_step": self.local_step}


class MLPField(nn.Module):
    """``f(t, y) = W2 tanh(W1 [g(y), t] + b1) + b2`` with ``g`` the identity or ``y**3``.

    Parameters
    ----------
    dim, hidden : int
    cubic : bool
        Feed ``y**3`` (the spiral's nonlinearity) instead of ``y``.
    time : bool
        Append ``t`` to the input (non-autonomous field).
    """

    def __init__(self, dim: int, hidden: int, *, cubic: bool = False, time: bool = False,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.cubic, self.time = cubic, time
        self.net = nn.Sequential(nn.Linear(dim + int(time), hidden, dtype=dtype), nn.Tanh(),
                                 nn.Linear(hidden, dim, dtype=dtype))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = y ** 3 if self.cubic else y
        if self.time:
            x = torch.cat([x, t.to(y).expand(*y.shape[:-1], 1)], dim=-1)
        return self.net(x)


def regularised_loss(task: torch.Tensor, sol, variant: Variant, step: int) -> torch.Tensor:
    """``task + w_E(step) R_E + w_S(step) R_S``; a term whose weight is 0 is left out.

    Adding ``0 * R`` would change nothing in exact arithmetic, but its extra autograd branches
    change the order in which autograd sums the per-evaluation gradient contributions of
    shared parameters (1-ulp differences that Adam then amplifies); leaving it out makes
    weight-0 training bitwise equal to vanilla training, while the regulariser is still
    computed (its hooks, extra evaluations and random draws must not disturb training;
    ``tests/node`` checks that).
    """
    loss = task
    if sol.error is not None:
        w_e, w_s = variant.error_weight(step), variant.stiffness_weight(step)
        if w_e != 0:
            loss = loss + w_e * sol.error
        if w_s != 0:
            loss = loss + w_s * sol.stiffness
    return loss


# ---------------------------------------------------------------------------------------- dynamics
SYSTEMS = {
    # damped oscillator x'' = -4 x - 0.2 x' as a first-order system on (x, v)
    "oscillator": lambda y: torch.stack([y[..., 1], -4.0 * y[..., 0] - 0.2 * y[..., 1]], dim=-1),
    # torchdiffeq's demo spiral dy/dt = (y**3) A
    "spiral": lambda y: (y ** 3) @ torch.tensor(SPIRAL_A, dtype=y.dtype),
}


def dynamics_data(system: str = "oscillator", n_train: int = 32, n_test: int = 32, n_times: int = 26,
                  t_max: float = 5.0, noise: float = 0.05, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict:
    """Trajectories of a known 2-D system from random initial states in ``[-1, 1]^2``.

    The initial states and the noise are drawn from ``seed`` (the data seed, the same for
    every model seed of a benchmark).

    Returns
    -------
    dict with ``t`` : (T,), ``train`` : (T, n_train, 2) noisy observations (noise standard
    deviation ``noise``, also on the first row, from which the model starts), ``test`` :
    (T, n_test, 2) clean trajectories from other initial states.
    """
    from torchdiffeq import odeint
    if system not in SYSTEMS:
        raise ValueError(f"system={system!r} is unknown; use one of {sorted(SYSTEMS)}")
    rhs = SYSTEMS[system]
    gen = torch.Generator().manual_seed(seed)
    y0 = 2 * torch.rand(n_train + n_test, 2, generator=gen, dtype=torch.float64) - 1
    t = torch.linspace(0.0, t_max, n_times, dtype=torch.float64)
    clean = odeint(lambda _, y: rhs(y), y0, t, rtol=1e-10, atol=1e-10, method="dopri5")
    noisy = clean[:, :n_train] + noise * torch.randn(clean[:, :n_train].shape, generator=gen, dtype=torch.float64)
    return {"t": t.to(dtype), "train": noisy.to(dtype), "test": clean[:, n_train:].to(dtype), "system": system}


class DynamicsModel(nn.Module):
    """A neural ODE on R^2 with an autonomous MLP field (``y**3`` features for the spiral)."""

    def __init__(self, hidden: int = 64, variant: Variant | None = None, rtol: float = 1e-6, atol: float = 1e-6,
                 method: str = "tsit5", cubic: bool = False):
        super().__init__()
        variant = variant or Variant("vanilla")
        self.ode = NeuralODE(MLPField(2, hidden, cubic=cubic), method=method, rtol=rtol, atol=atol,
                             **variant.ode_kwargs())

    def forward(self, y0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None):
        return self.ode(y0, t, generator=generator)


def train_dynamics(variant: Variant, seed: int, steps: int = 150, lr: float = 1e-2, hidden: int = 64,
                   data: dict | None = None, **ode_kw) -> tuple[DynamicsModel, dict]:
    """Fit :class:`DynamicsModel` to all noisy training trajectories (full batch, L1 loss).

    Returns
    -------
    model : DynamicsModel
    info : dict
        ``train_s`` (wall time), ``train_nfe`` (forward + regulariser NFE over all steps),
        ``nfe_per_step``, ``losses``.
    """
    data = data if data is not None else dynamics_data()
    t, obs = data["t"], data["train"]
    torch.manual_seed(seed)
    model = DynamicsModel(hidden, variant, cubic=data["system"] == "spiral", **ode_kw)
    nfe = []
    reg_gen = torch.Generator().manual_seed(seed + 10_000)

    def sample(step, generator, batch_size, rank, world_size):
        return step, obs

    def loss_fn(net, batch):
        step, target = batch
        sol = net(target[0], t, generator=reg_gen)
        nfe.append(sol.stats.nfe + sol.stats.regulariser_nfe)
        return regularised_loss((sol.ys - target).abs().mean(), sol, variant, step)

    config = TrainConfig(steps=steps, lr=lr, batch_size=obs.shape[1], seed=seed, device="cpu")
    result = fit(model, loss_fn, sample, config)
    return model, {"train_s": result.wall_time, "train_nfe": sum(nfe), "nfe_per_step": nfe, "losses": result.losses}


@torch.no_grad()
def evaluate_dynamics(model: DynamicsModel, data: dict | None = None, repeats: int = 7) -> dict:
    """Prediction of the clean test trajectories from their initial states.

    Returns
    -------
    dict
        ``fit_error`` (relative L2 over all test trajectories and times), ``nfe``, ``steps``,
        ``rejected``, ``predict_s`` (median wall time of the batched solve).
    """
    data = data if data is not None else dynamics_data()
    t, clean = data["t"], data["test"]
    model.eval()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sol = model(clean[0], t)
        times.append(time.perf_counter() - start)
    err = torch.linalg.vector_norm(sol.ys - clean) / torch.linalg.vector_norm(clean)
    model.train()
    return {"fit_error": float(err), "nfe": sol.stats.nfe, "steps": sol.stats.accepted,
            "rejected": sol.stats.rejected, "predict_s": sorted(times)[len(times) // 2]}


# ------------------------------------------------------------------------------------------ digits
def digits_data(seed: int = 0, test_fraction: float = 0.2, dtype: torch.dtype = torch.float32):
    """scikit-learn's 8x8 digits, scaled to [0, 1], split at random (seeded) into train and test.

    Returns
    -------
    x_train : (N, 64), y_train : (N,), x_test : (M, 64), y_test : (M,)
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover
        raise ImportError("the digits task needs scikit-learn (pip install scikit-learn)") from exc
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=dtype) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = round(test_fraction * len(y))
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


class DigitsClassifier(nn.Module):
    """``logits = W_out y(1)``, ``dy/dt = MLP([y, t])``, ``y(0) = W_in x`` (x : (B, 64))."""

    def __init__(self, width: int = 32, hidden: int = 64, variant: Variant | None = None, rtol: float = 1e-5,
                 atol: float = 1e-5, method: str = "tsit5"):
        super().__init__()
        variant = variant or Variant("vanilla")
        self.encoder = nn.Linear(64, width)
        self.ode = NeuralODE(MLPField(width, hidden, time=True), method=method, rtol=rtol, atol=atol,
                             **variant.ode_kwargs())
        self.decoder = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        sol = self.ode(self.encoder(x), generator=generator)
        return self.decoder(sol.final), sol


def train_digits(variant: Variant, seed: int, steps: int = 200, batch: int = 128, lr: float = 1e-2,
                 data: tuple | None = None, **model_kw) -> tuple[DigitsClassifier, dict]:
    """Train :class:`DigitsClassifier` with cross-entropy (+ regulariser); same ``info`` as :func:`train_dynamics`."""
    x_train, y_train, _, _ = data if data is not None else digits_data()
    torch.manual_seed(seed)
    model = DigitsClassifier(variant=variant, **model_kw)
    nfe = []
    reg_gen = torch.Generator().manual_seed(seed + 10_000)

    def sample(step, generator, batch_size, rank, world_size):
        idx = torch.randint(0, len(y_train), (batch_size,), generator=generator)
        return step, x_train[idx], y_train[idx]

    def loss_fn(net, data_):
        step, x, y = data_
        logits, sol = net(x, generator=reg_gen)
        nfe.append(sol.stats.nfe + sol.stats.regulariser_nfe)
        return regularised_loss(nn.functional.cross_entropy(logits, y), sol, variant, step)

    result = fit(model, loss_fn, sample, TrainConfig(steps=steps, lr=lr, batch_size=batch, seed=seed, device="cpu"))
    return model, {"train_s": result.wall_time, "train_nfe": sum(nfe), "nfe_per_step": nfe, "losses": result.losses}


@torch.no_grad()
def evaluate_digits(model: DigitsClassifier, data: tuple | None = None, repeats: int = 7) -> dict:
    """Test accuracy, NFE and prediction wall time on the whole test split (one batch)."""
    _, _, x_test, y_test = data if data is not None else digits_data()
    model.eval()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        logits, sol = model(x_test)
        times.append(time.perf_counter() - start)
    model.train()
    return {"accuracy": float((logits.argmax(1) == y_test).float().mean()), "nfe": sol.stats.nfe,
            "steps": sol.stats.accepted, "rejected": sol.stats.rejected, "predict_s": sorted(times)[len(times) // 2]}
