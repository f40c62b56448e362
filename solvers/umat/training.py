"""Training of the UMat generator on fresh procedural textiles, through :func:`sciml.train.fit`.

Every step draws a new batch: ``batch_size`` materials from
:func:`~solvers.umat.materials.generate_materials` with a seed taken from the step's generator
in ``[0, TRAIN_SEED_LIMIT)``, the scanner image of the whole (periodic) tile, a random crop of
``crop x crop`` pixels, a random horizontal flip (the one symmetry of the scanner light) and the
random lights of the rendering loss. Held-out materials use seeds ``>= HELDOUT_SEED``, which no
training step can draw. A step's batch depends only on ``(seed, step)``, so a resumed run is
identical to an uninterrupted one.

Weights are saved with :func:`sciml.io.save_checkpoint` (the network's constructor arguments
in the metadata) and loaded with :func:`load_model` (a shipped name such as ``"umat"`` or a path).
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sciml.train import TrainConfig, TrainResult, fit, shard
from solvers.umat.losses import LossWeights, umat_loss

__all__ = [
    "DEFAULT_NAME",
    "HELDOUT_SEED",
    "TRAIN_SEED_LIMIT",
    "UMatTrainConfig",
    "batch_maps",
    "build_model",
    "heldout_set",
    "load_model",
    "make_batch",
    "save_model",
    "train_umat",
]

logger = logging.getLogger(__name__)

TRAIN_SEED_LIMIT = 1_000_000
HELDOUT_SEED = 2_000_003
DEFAULT_NAME = "umat"
_MAP_KEYS = ("albedo", "normal", "roughness", "specular", "height")


@dataclass
class UMatTrainConfig:
    """Recipe of a UMat training run.

    Attributes
    ----------
    steps, batch_size, lr, seed, device : as in :class:`sciml.train.TrainConfig`
    material_size : int
        Side of the generated (periodic) material tiles.
    crop : int
        Side of the random training crop (``<= material_size``).
    kinds : sequence of str, optional
        Material kinds (``None``: all of :func:`generate_materials`).
    flip : bool
        Random horizontal flips (normal x negated): the scanner light's symmetry.
    base_channels, depth, attention, dropout, norm : network settings of :class:`~solvers.umat.model.UMatNet`
        (``norm="layer"``, per-pixel LayerNorm, keeps the network local apart from the bottleneck
        attention, so tiled and whole-image predictions agree closely; ``"group"`` statistics
        depend on the tile)
    weights : LossWeights
        Map, rendering and (optional) adversarial terms.
    lr_final : float
        Cosine decay of the learning rate from ``lr`` to ``lr * lr_final`` over ``schedule_steps``.
    schedule_steps : int, optional
        Length of the cosine schedule (default ``steps``). Fixing it lets a shorter run (one
        stopped by ``time_limit_s``) be a bitwise prefix of a longer one.
    grad_clip : float, optional
    checkpoint_dir, checkpoint_every, resume, progress, time_limit_s : as in :class:`sciml.train.TrainConfig`
    """

    steps: int = 1200
    batch_size: int = 16
    lr: float = 2e-3
    seed: int = 0
    device: str = "cpu"
    material_size: int = 64
    crop: int = 32
    kinds: Sequence[str] | None = None
    flip: bool = True
    base_channels: int = 16
    depth: int = 3
    attention: str = "linear"
    dropout: float = 0.1
    norm: str = "layer"
    weights: LossWeights = field(default_factory=LossWeights)
    lr_final: float = 0.1
    schedule_steps: int | None = None
    grad_clip: float | None = 1.0
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int = 50
    resume: bool = False
    progress: bool = False
    time_limit_s: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.crop <= self.material_size:
            raise ValueError(f"crop={self.crop} must be in [1, material_size={self.material_size}]")
        if not 0 < self.lr_final <= 1:
            raise ValueError(f"lr_final={self.lr_final} must be in (0, 1] (a fraction of lr)")

    def model_config(self) -> dict[str, Any]:
        """Constructor arguments of the network."""
        return {"base_channels": self.base_channels, "depth": self.depth, "attention": self.attention,
                "dropout": self.dropout, "norm": self.norm}

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable recipe."""
        out = {k: v for k, v in dataclasses.asdict(self).items()}
        out["kinds"] = list(self.kinds) if self.kinds is not None else None
        out["checkpoint_dir"] = str(self.checkpoint_dir) if self.checkpoint_dir is not None else None
        return out

    def fit_config(self) -> TrainConfig:
        """The :class:`sciml.train.TrainConfig` handed to :func:`sciml.train.fit`."""
        return TrainConfig(steps=self.steps, lr=self.lr, batch_size=self.batch_size, seed=self.seed,
                           device=self.device, checkpoint_dir=self.checkpoint_dir,
                           checkpoint_every=self.checkpoint_every, resume=self.resume, progress=self.progress,
                           grad_clip=self.grad_clip, time_limit_s=self.time_limit_s)


# ------------------------------------------------------------------------- data
def batch_maps(batch: dict[str, Tensor]):
    """The :class:`MaterialMaps` stored in a training batch dict."""
    from solvers.umat.materials import MaterialMaps
    return MaterialMaps(**{k: batch[k] for k in _MAP_KEYS})


def _pack(image: Tensor, maps, lights: Tensor) -> dict[str, Tensor]:
    return {"image": image, "lights": lights, **{k: getattr(maps, k) for k in _MAP_KEYS}}


def make_batch(config: UMatTrainConfig, generator: torch.Generator, batch_size: int,
               materials=None, images: Tensor | None = None) -> dict[str, Tensor]:
    """One training batch (on the CPU).

    Parameters
    ----------
    config : UMatTrainConfig
    generator : torch.Generator
        CPU generator; all randomness of the batch comes from it.
    batch_size : int
    materials : MaterialMaps, optional
        A fixed labelled set ``(N, ...)`` to draw from (active learning) instead of fresh
        procedural materials; ``images`` are then its scanner images ``(N, 3, S, S)``.

    Returns
    -------
    dict with ``"image" (B, 3, c, c)``, ``"lights" (B, L, 3)`` and the maps of :class:`MaterialMaps`.
    """
    from solvers.umat.materials import generate_materials
    from solvers.umat.render import random_lights, scanner_image
    if materials is None:
        seed = int(torch.randint(0, TRAIN_SEED_LIMIT, (1,), generator=generator))
        maps = generate_materials(batch_size, config.material_size, kinds=config.kinds, seed=seed)
        image = scanner_image(maps)
    else:
        idx = torch.randint(0, materials.normal.shape[0], (batch_size,), generator=generator)
        maps = materials[idx]
        image = images[idx]
    size_h, size_w = image.shape[-2:]
    top = int(torch.randint(0, size_h - config.crop + 1, (1,), generator=generator))
    left = int(torch.randint(0, size_w - config.crop + 1, (1,), generator=generator))
    maps = maps.crop(top, left, config.crop, config.crop)
    image = image[..., top:top + config.crop, left:left + config.crop]
    if config.flip and bool(torch.rand((), generator=generator) < 0.5):
        maps, image = maps.flip_u(), image.flip(-1)
    n_lights = max(config.weights.n_lights, 1)
    lights = random_lights(batch_size * n_lights, generator=generator, dtype=image.dtype)
    return _pack(image, maps, lights.reshape(batch_size, n_lights, 3))


# ------------------------------------------------------------------------ model
def build_model(config: UMatTrainConfig | dict) -> nn.Module:
    """A fresh :class:`~solvers.umat.model.UMatNet` with the config's network settings."""
    from solvers.umat.model import UMatNet
    kwargs = config.model_config() if isinstance(config, UMatTrainConfig) else dict(config)
    return UMatNet(**kwargs)


class _GANPair(nn.Module):
    """Generator + discriminator trained by one optimiser (the discriminator loss only reaches D)."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module):
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator


def _loss_fn(config: UMatTrainConfig):
    weights = config.weights

    def loss(net: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        module = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
        maps = batch_maps(batch)
        if isinstance(module, _GANPair):
            from solvers.umat.discriminator import discriminator_loss
            pred = module.generator(batch["image"])
            total, _ = umat_loss(pred, maps, weights, lights=batch["lights"], discriminator=module.discriminator)
            real, fake = maps.targets(), pred.detach()
            return total + discriminator_loss(module.discriminator(real), module.discriminator(fake))
        total, _ = umat_loss(net(batch["image"]), maps, weights, lights=batch["lights"])
        return total
    return loss


def train_umat(config: UMatTrainConfig, model: nn.Module | None = None, *, materials=None,
               images: Tensor | None = None) -> TrainResult:
    """Train (or fine-tune) a UMat generator.

    Parameters
    ----------
    config : UMatTrainConfig
    model : UMatNet, optional
        Start from this network (fine-tuning); a fresh one seeded with ``config.seed`` otherwise.
    materials, images : optional
        A fixed labelled set (see :func:`make_batch`) instead of fresh procedural batches.

    Notes
    -----
    With ``config.weights.adversarial > 0`` a :class:`~solvers.umat.discriminator.UNetDiscriminator`
    is trained alongside (one Adam over both; the discriminator loss reaches only the
    discriminator, the adversarial term only the generator). The GAN option is single-process:
    under ``torchrun`` only the plain (non-GAN) loss goes through DistributedDataParallel.

    Returns
    -------
    sciml.train.TrainResult
        ``.model`` is the trained generator (in eval mode), ``.losses`` the loss per step.
    """
    if model is None:
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            model = build_model(config)
    net: nn.Module = model
    if config.weights.adversarial > 0:
        from solvers.umat.discriminator import UNetDiscriminator
        with torch.random.fork_rng():
            torch.manual_seed(config.seed + 1)
            net = _GANPair(model, UNetDiscriminator(in_channels=5))

    def sample_batch(step: int, generator: torch.Generator, batch_size: int, rank: int, world_size: int):
        return shard(make_batch(config, generator, batch_size, materials, images), rank, world_size)

    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    horizon = max(config.schedule_steps or config.steps, 1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=horizon,
                                                           eta_min=config.lr * config.lr_final)
    result = fit(net, _loss_fn(config), sample_batch, config.fit_config(), optimizer=optimizer, scheduler=scheduler)
    result.model = model.eval()
    return result


# ---------------------------------------------------------------------- weights
def save_model(model: nn.Module, path: str | Path, recipe: dict | None = None) -> Path:
    """Write ``model``'s weights and constructor arguments (+ ``recipe``) to a safetensors file."""
    from sciml.io import save_checkpoint
    return save_checkpoint(path, model.state_dict(), {"umat_net": dict(model.config), "recipe": recipe or {}})


def load_model(name_or_path: str | Path = DEFAULT_NAME, device: str | torch.device = "cpu") -> nn.Module:
    """A UMat generator saved by :func:`save_model`: a shipped name (``"umat"``) or a path; in eval mode."""
    from sciml.io import load_checkpoint
    from sciml.pretrained import weights_path
    from solvers.umat.model import UMatNet
    path = weights_path(name_or_path, "sciml train umat")
    tensors, meta = load_checkpoint(path, device)
    if "umat_net" not in meta:
        raise ValueError(f"{path} has no 'umat_net' entry in its metadata; it was not written by "
                         "solvers.umat.training.save_model")
    model = UMatNet(**meta["umat_net"])
    model.load_state_dict(tensors)
    return model.to(device).eval()


def heldout_set(n: int = 8, size: int | tuple[int, int] = 64, *, seed: int = HELDOUT_SEED, kinds=None,
                device: str | torch.device = "cpu"):
    """Fixed held-out materials and their scanner images (seeds no training step draws).

    Returns
    -------
    maps : MaterialMaps, (n, ...)
    image : (n, 3, H, W)
    """
    from solvers.umat.materials import generate_materials
    from solvers.umat.render import scanner_image
    if seed < TRAIN_SEED_LIMIT:
        raise ValueError(f"held-out seed {seed} lies in the training range [0, {TRAIN_SEED_LIMIT}); "
                         f"use a seed >= {TRAIN_SEED_LIMIT}")
    maps = generate_materials(n, size, kinds=kinds, seed=seed, device=device)
    return maps, scanner_image(maps)
