"""Training losses of UMat: per-map L1, a rendering loss under random lights, an optional GAN term.

* :func:`map_loss` -- L1 distance of the normal (3 channels), roughness and specular maps.
* :func:`rendering_loss` -- L1 distance of ``log(render + eps)`` between the predicted and the
  true material under ``n_lights`` random directional lights per sample (the log-space
  rendering loss of Deschaintre et al. 2018, ``eps = 0.01``). The albedo (the scanner image
  stands in for it at test time) and the lights are shared by both renders, so the loss only
  sees the predicted normal, roughness and specular maps.
* :func:`umat_loss` -- the weighted sum of both, plus (off by default) the U-Net GAN
  generator term of :mod:`solvers.umat.discriminator` (Schoenfeld et al. 2020).

Predictions are ``(B, 5, H, W)`` tensors laid out as in :func:`solvers.umat.model.split_prediction`:
unit normal (3), roughness (1), specular (1).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["LossWeights", "map_loss", "predicted_maps", "rendering_loss", "umat_loss"]

LOG_EPS = 0.01


@dataclass
class LossWeights:
    """Weights of the UMat training loss.

    Attributes
    ----------
    normal, roughness, specular : float
        Weights of the per-map L1 terms.
    render : float
        Weight of the log-space rendering loss (``0`` switches it off).
    n_lights : int
        Random directional lights per sample in the rendering loss.
    adversarial : float
        Weight of the U-Net GAN generator term (``0``, the default, switches the
        discriminator off; the GAN roughly doubles the cost of a step).
    """

    normal: float = 1.0
    roughness: float = 1.0
    specular: float = 1.0
    render: float = 1.0
    n_lights: int = 3
    adversarial: float = 0.0

    def __post_init__(self) -> None:
        for name in ("normal", "roughness", "specular", "render", "adversarial"):
            if getattr(self, name) < 0:
                raise ValueError(f"LossWeights.{name}={getattr(self, name)} is negative; use a weight >= 0")
        if self.render > 0 and self.n_lights < 1:
            raise ValueError(f"LossWeights.n_lights={self.n_lights}: the rendering loss needs >= 1 light "
                             "(or set render=0)")


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.ndim != 4 or pred.shape[1] != 5:
        raise ValueError(f"prediction has shape {tuple(pred.shape)}; expected (B, 5, H, W) "
                         "(normal 3, roughness 1, specular 1)")
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape; "
                         "crop both to the same size (MaterialMaps.crop)")


def map_loss(pred: Tensor, target: Tensor, weights: LossWeights | None = None) -> Tensor:
    """Weighted L1 loss of the normal, roughness and specular maps.

    Parameters
    ----------
    pred, target : (B, 5, H, W)
        Normal (3), roughness (1), specular (1); ``target`` is ``MaterialMaps.targets()``.
    weights : LossWeights, optional

    Returns
    -------
    () tensor
        ``w_n * mean|dn| + w_r * mean|dr| + w_s * mean|ds|`` (the normal term averages the
        three components); zero exactly when ``pred == target``.
    """
    _check_pair(pred, target)
    w = weights or LossWeights()
    diff = (pred - target).abs()
    return (w.normal * diff[:, :3].mean() + w.roughness * diff[:, 3].mean()
            + w.specular * diff[:, 4].mean())


def predicted_maps(pred: Tensor, maps):
    """A :class:`~solvers.umat.materials.MaterialMaps` with ``maps``' albedo/height and the predicted maps.

    Parameters
    ----------
    pred : (B, 5, H, W)
    maps : MaterialMaps
        Supplies the albedo ``(B, 3, H, W)`` and height ``(B, 1, H, W)``.
    """
    from solvers.umat.materials import MaterialMaps
    return MaterialMaps.from_targets(pred, maps.albedo, maps.height)


def rendering_loss(pred: Tensor, maps, n_lights: int = 3, generator: torch.Generator | None = None, *,
                   lights: Tensor | None = None, eps: float = LOG_EPS) -> Tensor:
    """Mean L1 of ``log(render + eps)`` between the predicted and the true material.

    Parameters
    ----------
    pred : (B, 5, H, W)
        Predicted normal, roughness, specular.
    maps : MaterialMaps
        Ground truth (its albedo is used for both renders).
    n_lights : int
        Random directional lights per sample (ignored when ``lights`` is given).
    generator : torch.Generator, optional
        CPU generator of the random lights (:func:`~solvers.umat.render.random_lights`).
    lights : (B, L, 3) or (L, 3) tensor, optional
        Unit directions towards the lights, instead of random ones.
    eps : float
        Offset inside the log (0.01 as in Deschaintre et al. 2018).

    Returns
    -------
    () tensor
        Averaged over lights, samples, channels and pixels; each light is rendered alone.
    """
    from solvers.umat.render import random_lights, render
    target = maps.targets()
    _check_pair(pred, target)
    batch = pred.shape[0]
    if lights is None:
        lights = random_lights(batch * n_lights, generator=generator, dtype=pred.dtype).to(pred.device)
        lights = lights.reshape(batch, n_lights, 3)
    elif lights.ndim == 2:
        lights = lights.unsqueeze(0).expand(batch, -1, -1)
    if lights.ndim != 3 or lights.shape[0] != batch or lights.shape[2] != 3:
        raise ValueError(f"lights has shape {tuple(lights.shape)}; expected (B, L, 3) or (L, 3) unit directions")
    lights = lights.to(device=pred.device, dtype=pred.dtype)
    fake = predicted_maps(pred, maps)
    total = pred.new_zeros(())
    for k in range(lights.shape[1]):
        light = lights[:, k:k + 1]
        with torch.no_grad():
            real = torch.log(render(maps, light) + eps)
        total = total + (torch.log(render(fake, light) + eps) - real).abs().mean()
    return total / lights.shape[1]


def umat_loss(pred: Tensor, maps, weights: LossWeights | None = None, *, generator: torch.Generator | None = None,
              lights: Tensor | None = None, discriminator=None) -> tuple[Tensor, dict[str, Tensor]]:
    """The full generator loss: map L1 + rendering loss (+ adversarial term).

    Parameters
    ----------
    pred : (B, 5, H, W)
    maps : MaterialMaps
        Ground truth of the batch.
    weights : LossWeights, optional
    generator : torch.Generator, optional
        For the random lights of the rendering loss.
    lights : (B, L, 3) tensor, optional
        Fixed lights instead of random ones.
    discriminator : UNetDiscriminator, optional
        Needed when ``weights.adversarial > 0``; its parameters receive no gradient from
        this loss (the discriminator's own loss is :func:`solvers.umat.discriminator.discriminator_loss`).

    Returns
    -------
    total : () tensor
    parts : dict of str -> () tensor (detached): ``"map"``, ``"render"``, ``"adversarial"``
    """
    w = weights or LossWeights()
    parts = {"map": map_loss(pred, maps.targets(), w)}
    total = parts["map"]
    if w.render > 0:
        parts["render"] = rendering_loss(pred, maps, w.n_lights, generator, lights=lights)
        total = total + w.render * parts["render"]
    if w.adversarial > 0:
        if discriminator is None:
            raise ValueError("LossWeights.adversarial > 0 needs a discriminator; pass "
                             "discriminator=UNetDiscriminator(...) "
                             "or set adversarial=0")
        from torch.func import functional_call

        from solvers.umat.discriminator import generator_adversarial_loss
        frozen = {name: p.detach() for name, p in discriminator.named_parameters()}
        logits = functional_call(discriminator, frozen, (pred,))
        parts["adversarial"] = generator_adversarial_loss(*logits)
        total = total + w.adversarial * parts["adversarial"]
    return total, {k: v.detach() for k, v in parts.items()}
