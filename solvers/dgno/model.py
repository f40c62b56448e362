"""DGNO: deep generative neural operator trained on weak-form residuals only (no u labels).

Zang & Koutsourelakis (2025). An encoder maps the input field ``a`` to a latent
``beta = tanh(Enc(a))``; MultiONet decoders map ``(beta, x)`` to

* the coefficient: Bernoulli logits of ``(a - low)/(high - low)`` (two-phase) or ``log a`` (log-normal);
* the solution ``u(x) = sin(pi x) sin(pi y) N_u(beta, x)`` (the Dirichlet condition hard-wired).

* in the mixed form (``form="mixed"``, the authors' choice for two-phase media), the flux
  ``s = (s_1, s_2) ~ a grad u`` from two more MultiONets.

Loss per batch (the residuals are virtual observables ``r_j = 0``)::

    mixed:  L = w_data * recon(a) + w_flux * mean |s - a grad u|^2 + w_pde * sqrt(n_c) * mean r_j(s)^2
    primal: L = w_data * recon(a) + w_pde * mean r_j(a grad u)^2

with ``r_j = mean_{B(c_j, R)}(s . grad v_j - f v_j)`` the Wendland weak residual
(:mod:`solvers.dgno.weak_form`) at centres redrawn every step and ``a`` the input field
(nearest pixel) at the quadrature points. The ``sqrt(n_c)`` factor is the authors'. The
mixed form matters for discontinuous ``a``: the primal integrand ``a grad u . grad v`` jumps
inside a ball, which the local quadrature resolves poorly, while ``s`` has a continuous normal
component and the weak residual only needs ``s``. The solution labels never enter the loss.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from solvers.dgno.latent import LatentPrior
from solvers.dgno.operators import MultiONet
from solvers.dgno.weak_form import WendlandTestFunctions, weak_residual

__all__ = ["DGNO", "DGNOConfig", "grid_points", "pixel_lookup", "train_dgno"]


@dataclass
class DGNOConfig:
    """Sizes and loss settings of :class:`DGNO` (defaults: the CPU-scale configuration).

    ``width`` / ``depth`` size every MultiONet decoder; ``a_width`` / ``a_depth``, when set, size the
    coefficient decoder alone (the authors use 256 against 100 for the others).
    """

    kind: str = "two_phase"
    n_pix: int = 29
    latent: int = 64
    encoder_hidden: tuple[int, ...] = (256, 128)
    width: int = 64
    depth: int = 4
    a_width: int | None = None
    a_depth: int | None = None
    sum_layers: int | None = None
    activation: str = "tanh_sin"
    radius: float = 0.05
    quadrature: str = "grid"
    n_quad: int = 9
    n_centres: int = 64
    f: float = 10.0
    low: float = 5.0
    high: float = 10.0
    w_data: float = 1.0
    w_pde: float = 1.0
    w_flux: float = 1.0
    form: str = "mixed"

    def __post_init__(self) -> None:
        if self.kind not in ("two_phase", "lognormal"):
            raise ValueError(f"DGNOConfig.kind={self.kind!r}; use 'two_phase' or 'lognormal'")
        if self.form not in ("mixed", "primal"):
            raise ValueError(f"DGNOConfig.form={self.form!r}; use 'mixed' (flux decoder) or 'primal'")
        self.encoder_hidden = tuple(self.encoder_hidden)

    def to_json(self) -> dict:
        d = asdict(self)
        d["encoder_hidden"] = list(self.encoder_hidden)
        return d


def grid_points(n_pix: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """The ``n_pix^2`` grid points ``(P*P, 2)`` in the order of ``a.reshape(-1)`` (``x`` major)."""
    t = torch.linspace(0.0, 1.0, n_pix, dtype=dtype, device=device)
    X, Y = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([X.reshape(-1), Y.reshape(-1)], 1)


def pixel_lookup(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Nearest-pixel values of ``a : (B, P, P)`` at ``x : (N, 2)`` -> ``(B, N)`` (same cells as the FEM mesh)."""
    P = a.shape[-1]
    idx = torch.clamp(torch.round(x * (P - 1)).long(), 0, P - 1)
    return a[:, idx[:, 0], idx[:, 1]]


class DGNO(nn.Module):
    """Encoder and MultiONet decoders of DGNO (see the module docstring).

    Parameters
    ----------
    config : DGNOConfig
    dtype : torch.dtype, optional
    """

    def __init__(self, config: DGNOConfig | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.config = c = config if config is not None else DGNOConfig()
        dims = [c.n_pix ** 2, *c.encoder_hidden]
        layers: list[nn.Module] = []
        for i, o in itertools.pairwise(dims):
            layers += [nn.Linear(i, o, dtype=dtype), nn.SiLU()]
        layers.append(nn.Linear(dims[-1], c.latent, dtype=dtype))
        self.encoder = nn.Sequential(*layers)
        kw = {"width": c.width, "depth": c.depth, "activation": c.activation, "sum_layers": c.sum_layers,
              "dtype": dtype}
        a_kw = {**kw, "width": c.a_width or c.width, "depth": c.a_depth or c.depth}
        self.a_decoder = MultiONet(c.latent, 2, **a_kw)
        self.u_decoder = MultiONet(c.latent, 2, **kw)
        if c.form == "mixed":
            self.flux_decoders = nn.ModuleList(MultiONet(c.latent, 2, **kw) for _ in range(2))
        self.tests = WendlandTestFunctions(c.radius, c.quadrature, c.n_quad)
        # empirical Gaussian prior on the pre-tanh latent (zeros: none fitted), see set_latent_prior
        self.register_buffer("prior_mean", torch.zeros(c.latent, dtype=dtype))
        self.register_buffer("prior_chol", torch.zeros(c.latent, c.latent, dtype=dtype))

    # ------------------------------------------------------------ latent prior
    def set_latent_prior(self, prior: LatentPrior | None) -> None:
        """Store ``prior`` (e.g. ``LatentPrior.fit(model, a_train)``) with the weights; ``None`` clears it."""
        with torch.no_grad():
            self.prior_mean.copy_(prior.mean if prior is not None else torch.zeros_like(self.prior_mean))
            self.prior_chol.copy_(prior.chol if prior is not None else torch.zeros_like(self.prior_chol))

    def latent_prior(self) -> LatentPrior | None:
        """The stored :class:`~solvers.dgno.latent.LatentPrior`, or ``None`` if none was fitted."""
        if not torch.any(self.prior_chol != 0):
            return None
        return LatentPrior(self.prior_mean.detach().clone(), self.prior_chol.detach().clone())

    # ------------------------------------------------------------------ fields
    def normalise(self, a: torch.Tensor) -> torch.Tensor:
        """``(a - low)/(high - low)`` (two-phase, in {0, 1}) or ``log a`` (log-normal)."""
        c = self.config
        return (a - c.low) / (c.high - c.low) if c.kind == "two_phase" else torch.log(a)

    def encode(self, a: torch.Tensor) -> torch.Tensor:
        """``a : (B, P, P)`` -> latent ``beta : (B, latent)`` in ``(-1, 1)``."""
        return torch.tanh(self.encode_z(a))

    def encode_z(self, a: torch.Tensor) -> torch.Tensor:
        """The pre-tanh latent ``z : (B, latent)`` of ``a : (B, P, P)`` (``beta = tanh(z)``)."""
        if a.shape[-2:] != (self.config.n_pix, self.config.n_pix):
            raise ValueError(f"a has shape {tuple(a.shape)}, expected (B, {self.config.n_pix}, {self.config.n_pix})")
        return self.encoder(self.normalise(a).reshape(a.shape[0], -1))

    def a_raw(self, beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Decoder output ``(B, N)``: Bernoulli logits (two-phase) or ``log a`` (log-normal)."""
        return self.a_decoder(beta, x)

    def a_field(self, beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Decoded coefficient ``(B, N)``: the Bernoulli mean ``low + (high - low) p`` or ``exp(log a)``."""
        c = self.config
        raw = self.a_raw(beta, x)
        return c.low + (c.high - c.low) * torch.sigmoid(raw) if c.kind == "two_phase" else torch.exp(raw)

    def u(self, beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Solution ``(B, N)`` at ``x : (N, 2)`` or ``(B, N, 2)``; zero on the boundary by construction."""
        m = torch.sin(math.pi * x[..., 0]) * torch.sin(math.pi * x[..., 1])
        return m * self.u_decoder(beta, x)

    def u_and_grad(self, beta: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``u : (B, N)`` and ``grad u : (B, N, 2)`` at shared points ``x : (N, 2)``."""
        sx, sy = torch.sin(math.pi * x[:, 0]), torch.sin(math.pi * x[:, 1])
        cx, cy = torch.cos(math.pi * x[:, 0]), torch.cos(math.pi * x[:, 1])
        m = sx * sy
        dm = math.pi * torch.stack([cx * sy, sx * cy], 1)               # (N, 2)
        n, dn = self.u_decoder.forward_and_grad(beta, x)
        return m * n, dm * n[..., None] + m[:, None] * dn

    def flux(self, beta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Flux variable ``s : (B, N, 2)`` (mixed form only)."""
        if self.config.form != "mixed":
            raise ValueError("flux() needs DGNOConfig(form='mixed')")
        return torch.stack([dec(beta, x) for dec in self.flux_decoders], -1)

    # -------------------------------------------------------------------- loss
    def physics(self, beta: torch.Tensor, a_at: torch.Tensor | None, centres: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weak residuals ``(B, n_centres)`` and, in the mixed form, the flux mismatch ``s - a grad u``
        ``(B, n_centres * Q, 2)`` (``None`` in the primal form).

        ``a_at : (B, n_centres * Q)`` is ``a`` at :meth:`points`, or ``None`` to use the decoded coefficient.
        """
        x = self.points(centres)
        _, grad = self.u_and_grad(beta, x)
        a = self.a_field(beta, x) if a_at is None else a_at
        a_grad_u = a[..., None] * grad
        mismatch = None
        flux = a_grad_u
        if self.config.form == "mixed":
            flux = self.flux(beta, x)
            mismatch = flux - a_grad_u
        r = weak_residual(flux.reshape(beta.shape[0], centres.shape[0], -1, 2), self.config.f, self.tests)
        return r, mismatch

    def residuals(self, beta: torch.Tensor, a_at: torch.Tensor | None, centres: torch.Tensor) -> torch.Tensor:
        """Weak residuals ``(B, n_centres)`` (see :meth:`physics`)."""
        return self.physics(beta, a_at, centres)[0]

    def physics_loss(self, beta: torch.Tensor, a_at: torch.Tensor | None, centres: torch.Tensor) -> torch.Tensor:
        """Per-sample physics loss ``(B,)``: ``w_flux mean|s - a grad u|^2 + w_pde sqrt(n_c) mean r^2`` (mixed)
        or ``w_pde mean r^2`` (primal)."""
        c = self.config
        r, mismatch = self.physics(beta, a_at, centres)
        if mismatch is None:
            return c.w_pde * (r ** 2).mean(-1)
        return (c.w_flux * (mismatch ** 2).sum(-1).mean(-1)
                + c.w_pde * math.sqrt(centres.shape[0]) * (r ** 2).mean(-1))

    def points(self, centres: torch.Tensor) -> torch.Tensor:
        """All quadrature points ``(n_centres * Q, 2)`` of ``centres : (n_centres, 2)``."""
        return self.tests.points(centres).reshape(-1, 2)

    def data_loss(self, beta: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Reconstruction of the input field on its grid: BCE (two-phase) or MSE of ``log a``."""
        x = grid_points(self.config.n_pix, beta.dtype, beta.device)
        raw = self.a_raw(beta, x)
        target = self.normalise(a).reshape(a.shape[0], -1)
        if self.config.kind == "two_phase":
            return nn.functional.binary_cross_entropy_with_logits(raw, target)
        return ((raw - target) ** 2).mean()

    def loss(self, batch: dict) -> torch.Tensor:
        """DGNO loss of ``batch = {"a": (B, P, P), "centres": (n_centres, 2)}``; other keys are ignored."""
        a, centres = batch["a"], batch["centres"]
        beta = self.encode(a)
        physics = self.physics_loss(beta, pixel_lookup(a, self.points(centres)), centres).mean()
        return self.config.w_data * self.data_loss(beta, a) + physics

    def save(self, path, extra: dict | None = None):
        """Write the weights and the config to ``path`` (safetensors, atomic); ``extra`` goes into the metadata."""
        from sciml.io import save_checkpoint
        return save_checkpoint(path, self.state_dict(), {"dgno_config": self.config.to_json(), **(extra or {})})

    @classmethod
    def load(cls, path, device: str | torch.device = "cpu") -> DGNO:
        """A model written by :meth:`save` (or a shipped name, looked up by :func:`sciml.pretrained.weights_path`)."""
        from sciml.io import load_checkpoint
        from sciml.pretrained import weights_path
        tensors, meta = load_checkpoint(weights_path(path, "sciml train dgno"), device)
        if "dgno_config" not in meta:
            raise ValueError(f"{path} has no 'dgno_config' in its metadata; it was not written by DGNO.save")
        model = cls(DGNOConfig(**meta["dgno_config"]), dtype=next(iter(tensors.values())).dtype)
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        if unexpected or set(missing) - {"prior_mean", "prior_chol"}:
            raise ValueError(f"{path} does not match its dgno_config: missing {missing}, unexpected {unexpected}")
        return model.to(device)

    @torch.no_grad()
    def predict(self, a: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """``u`` on the coefficient grid ``(B, P, P)`` for ``a : (B, P, P)``."""
        P = self.config.n_pix
        x = grid_points(P, a.dtype, a.device)
        return torch.cat([self.u(self.encode(a[i:i + chunk]), x) for i in range(0, a.shape[0], chunk)]
                         ).reshape(-1, P, P)


def train_dgno(a_train: np.ndarray | torch.Tensor, config: DGNOConfig, train_config,
               dtype: torch.dtype = torch.float32, lr_decay_every: int = 0, model: DGNO | None = None):
    """Train :class:`DGNO` on unlabelled coefficients ``a_train : (n, P, P)`` with :func:`sciml.train.fit`.

    Parameters
    ----------
    train_config : sciml.train.TrainConfig
        Steps, batch size, learning rate, seed, checkpoints.
    lr_decay_every : int
        Halve the learning rate every this many steps (``0``: constant; the authors use 200 epochs).

    Returns
    -------
    (DGNO, sciml.train.TrainResult)
    """
    from sciml.train import fit, shard
    a_train = torch.as_tensor(np.asarray(a_train), dtype=dtype)
    model = DGNO(config, dtype=dtype) if model is None else model
    n = a_train.shape[0]

    def sample_batch(step, generator, batch_size, rank, world_size):
        idx = torch.randint(n, (batch_size,), generator=generator)
        centres = model.tests.sample_centres(config.n_centres, generator, dtype=dtype)
        return {"a": shard(a_train[idx], rank, world_size), "centres": centres}

    def loss_fn(net, batch):
        inner = net.module if hasattr(net, "module") else net
        return inner.loss(batch)

    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr)
    scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, lr_decay_every, 0.5) if lr_decay_every else None)
    result = fit(model, loss_fn, sample_batch, train_config, optimizer=optimizer, scheduler=scheduler)
    return model, result
