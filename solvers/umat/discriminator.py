"""U-Net discriminator (Schoenfeld, Schiele, Khoreva, CVPR 2020) for UMat's optional GAN term.

The encoder half gives a *global* real/fake logit per sample, the decoder half (with skip
connections) a *per-pixel* logit map, so the generator gets both global and local feedback.
UMat trains its generator with such a discriminator; the paper does not publish the
architecture or weights, so this is a small CPU-sized version with spectral normalisation.

Losses: binary cross-entropy on logits (the standard GAN objective; non-saturating for the
generator), summed over the encoder and the decoder heads, the decoder term averaged over
pixels; ``kind="hinge"`` selects the hinge variant (as in BigGAN-based implementations). The
exact formulation and weights of the U-Net GAN and UMat papers were not re-checked here.
:func:`cutmix_loss` adds the paper's CutMix regularisation: on a real/fake mix the encoder
must answer "fake", the decoder must reproduce the mixing mask, and the decoder logits must be
consistent with mixing the decoder logits of the two inputs.

For a *conditional* discriminator, concatenate the input image to the maps
(``d(torch.cat([maps, image], 1))`` with ``in_channels = 5 + 3``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from solvers.umat.tiling import pad_reflect


def _conv(c_in: int, c_out: int, k: int = 3, stride: int = 1, sn: bool = True) -> nn.Module:
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2)
    return nn.utils.parametrizations.spectral_norm(conv) if sn else conv


class UNetDiscriminator(nn.Module):
    """Discriminator with a global (encoder) and a per-pixel (decoder) real/fake output.

    Parameters
    ----------
    in_channels : int
        Channels of the judged maps (5 = normal, roughness, specular; 8 with the image).
    base_channels : int
        Channels at full resolution; level ``i`` has ``base * min(2**i, 4)``.
    depth : int
        Number of stride-2 down-samplings.
    spectral_norm : bool
        Spectral normalisation on every convolution (as in U-Net GAN / BigGAN).
    """

    def __init__(self, in_channels: int = 5, base_channels: int = 16, depth: int = 3, spectral_norm: bool = True):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.depth = depth
        ch = [base_channels * min(2 ** i, 4) for i in range(depth + 1)]
        act = nn.LeakyReLU(0.2)
        self.stem = nn.Sequential(_conv(in_channels, ch[0], sn=spectral_norm), act)
        self.down = nn.ModuleList(
            nn.Sequential(_conv(ch[i], ch[i + 1], stride=2, sn=spectral_norm), act,
                          _conv(ch[i + 1], ch[i + 1], sn=spectral_norm), act) for i in range(depth))
        self.global_head = nn.Linear(ch[depth], 1)
        self.up = nn.ModuleList(
            nn.Sequential(_conv(ch[i + 1] + ch[i], ch[i], sn=spectral_norm), act) for i in range(depth))
        self.pixel_head = nn.Conv2d(ch[0], 1, 1)

    def forward(self, maps: Tensor) -> tuple[Tensor, Tensor]:
        """Judge ``maps : (B, C, H, W)`` (any H, W).

        Returns
        -------
        global_logits : (B,)
            Encoder logit (real > 0), from spatially averaged bottleneck features.
        pixel_logits : (B, 1, H, W)
            Decoder per-pixel logits.
        """
        if maps.dim() != 4:
            raise ValueError(f"maps must be (B, C, H, W), got shape {tuple(maps.shape)}")
        h, w = maps.shape[-2:]
        m = 2 ** self.depth
        hp, wp = -(-h // m) * m, -(-w // m) * m
        x = pad_reflect(maps, 0, hp - h, 0, wp - w)
        x = self.stem(x)
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(x)
        global_logits = self.global_head(x.mean(dim=(2, 3))).squeeze(1)
        for i in reversed(range(self.depth)):
            x = F.interpolate(x, size=skips[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.up[i](torch.cat([x, skips[i]], dim=1))
        return global_logits, self.pixel_head(x)[:, :, :h, :w]


def _real_loss(logits: Tensor, kind: str) -> Tensor:
    return F.softplus(-logits).mean() if kind == "bce" else F.relu(1.0 - logits).mean()


def _fake_loss(logits: Tensor, kind: str) -> Tensor:
    return F.softplus(logits).mean() if kind == "bce" else F.relu(1.0 + logits).mean()


def _check_kind(kind: str) -> None:
    if kind not in ("bce", "hinge"):
        raise ValueError(f"unknown GAN loss {kind!r}; use 'bce' (non-saturating) or 'hinge'")


Logits = tuple[Tensor, Tensor]


def discriminator_loss(d_or_real_logits, real_or_fake_logits, fake: Tensor | None = None, *,
                       kind: str = "bce") -> Tensor:
    """Discriminator loss: both heads call real maps real (target 1) and fake maps fake (0).

    Two call forms:

    * ``discriminator_loss(d, real, fake)`` with ``real, fake : (B, C, H, W)``; ``fake`` is
      detached here, so the generator gets no gradient from this loss;
    * ``discriminator_loss(d(real), d(fake.detach()))`` with the ``(global (B,), pixel
      (B, 1, H, W))`` logit pairs already computed.

    Returns
    -------
    Tensor, scalar
        ``bce``: ``softplus(-D(real)) + softplus(D(fake))``, each averaged (over samples, or
        pixels for the decoder head) and summed over both heads; ``hinge``: the hinge analogue.
    """
    _check_kind(kind)
    if isinstance(d_or_real_logits, nn.Module):
        if fake is None:
            raise ValueError("discriminator_loss(d, real, fake) needs the fake maps as third argument")
        d = d_or_real_logits
        (g_real, p_real), (g_fake, p_fake) = d(real_or_fake_logits), d(fake.detach())
    else:
        (g_real, p_real), (g_fake, p_fake) = d_or_real_logits, real_or_fake_logits
    return (_real_loss(g_real, kind) + _fake_loss(g_fake, kind)
            + _real_loss(p_real, kind) + _fake_loss(p_fake, kind))


def generator_adversarial_loss(d_or_global_logits, fake_or_pixel_logits: Tensor, *, kind: str = "bce") -> Tensor:
    """Generator loss: make both heads call the generated maps real.

    Two call forms: ``generator_adversarial_loss(d, fake)`` with ``fake : (B, C, H, W)``, or
    ``generator_adversarial_loss(global_logits (B,), pixel_logits (B, 1, H, W))`` from
    ``d(fake)`` (e.g. through ``torch.func.functional_call`` with detached parameters).

    ``bce`` is the non-saturating loss ``softplus(-D(fake))``; ``hinge`` is ``-D(fake)``; each
    averaged and summed over the global and per-pixel heads. With the ``(d, fake)`` form ``d``'s
    parameters also receive gradients: step only the generator's optimiser, or freeze ``d``.
    """
    _check_kind(kind)
    if isinstance(d_or_global_logits, nn.Module):
        g, p = d_or_global_logits(fake_or_pixel_logits)
    else:
        g, p = d_or_global_logits, fake_or_pixel_logits
    if kind == "bce":
        return F.softplus(-g).mean() + F.softplus(-p).mean()
    return -g.mean() - p.mean()


def cutmix(real: Tensor, fake: Tensor, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """CutMix real and fake maps with one random rectangle per sample.

    Returns
    -------
    mixed : (B, C, H, W)
        ``mask * real + (1 - mask) * fake``.
    mask : (B, 1, H, W)
        1 where the pixel comes from ``real``. The rectangle covers a uniform random fraction of
        the area and is pasted from ``fake`` into ``real`` or the other way round (coin flip).
    """
    b, _, h, w = real.shape
    dev = real.device
    u = torch.rand(b, 4, generator=generator, device=dev if generator is None else generator.device).to(dev)
    lam = u[:, 0]
    bh = (h * lam.sqrt()).round().long().clamp(0, h)
    bw = (w * lam.sqrt()).round().long().clamp(0, w)
    top = ((h - bh) * u[:, 1]).floor().long()
    left = ((w - bw) * u[:, 2]).floor().long()
    rows = torch.arange(h, device=dev)[None, :, None]
    cols = torch.arange(w, device=dev)[None, None, :]
    box = ((rows >= top[:, None, None]) & (rows < (top + bh)[:, None, None])
           & (cols >= left[:, None, None]) & (cols < (left + bw)[:, None, None]))
    flip = (u[:, 3] < 0.5)[:, None, None]
    mask = (box ^ flip).to(real.dtype)[:, None]
    return mask * real + (1 - mask) * fake, mask


def cutmix_loss(d: UNetDiscriminator, real: Tensor, fake: Tensor, *, kind: str = "bce",
                generator: torch.Generator | None = None) -> Tensor:
    """U-Net GAN CutMix regularisation for the discriminator (``fake`` is detached).

    Sum of: the encoder calling the mix fake; the decoder predicting the mask per pixel
    (BCE with the mask as target; hinge: real/fake hinge per pixel); and the consistency term
    ``mean (D_dec(mix) - mix(D_dec(real), D_dec(fake)))^2``.

    Returns
    -------
    Tensor, scalar
    """
    _check_kind(kind)
    fake = fake.detach()
    mixed, mask = cutmix(real, fake, generator=generator)
    g_mix, p_mix = d(mixed)
    _, p_real = d(real)
    _, p_fake = d(fake)
    if kind == "bce":
        dec = F.binary_cross_entropy_with_logits(p_mix, mask)
    else:
        dec = (mask * F.relu(1.0 - p_mix) + (1 - mask) * F.relu(1.0 + p_mix)).mean()
    target = mask * p_real + (1 - mask) * p_fake
    consistency = (p_mix - target.detach()).pow(2).mean()
    return _fake_loss(g_mix, kind) + dec + consistency
