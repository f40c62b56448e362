"""The UMat generator: a U-Net with efficient attention at the bottleneck.

UMat (Rodriguez-Pardo et al., CVPR 2023) predicts normal, roughness and specular maps from a
single near-diffuse (scanner) image with an attention U-Net; the paper's abstract says the
attention integrates global information "at reduced computational complexity", which we
implement as efficient attention (Shen et al. 2021, :mod:`solvers.umat.attention`) at the
lowest resolution. The exact layer recipe of the paper is not public; this is a CPU-sized
version (0.35M parameters at ``base_channels=16, depth=3``).

Layout (``depth = D``, channels ``c_i = base * min(2**i, 4)``)::

    stem 3x3 -> [conv(c_i) -> stride-2 conv] x D -> conv -> attention -> conv
             -> [1x1 conv, bilinear x2, concat skip -> 2 x conv(c_i)] x D -> 1x1 head (5)

every "conv" is (3x3 conv, norm, SiLU); the bottleneck and decoder blocks end with
:class:`MCDropout`. The input is mirror-padded to a multiple of ``2**depth`` (then cropped).
The default norm is a per-pixel LayerNorm over channels (:class:`PixelLayerNorm`): unlike
GroupNorm it has no spatial statistics, so the conv part stays local and tiled inference
agrees with whole-image inference. Measured (300 Adam steps, L1 map loss, 32 px crops of
procedural textiles; tile 64 / overlap 16 on six 160 x 160 held-out images): mean normal
difference tiled vs whole 0.05 deg with ``norm="layer"`` vs 1.5 deg with ``norm="group"``;
normal error 13.5 vs 13.1 deg (flat baseline 20.2), same CPU time.

Output channels: unit normal (3, OpenGL tangent space, z > 0 by construction:
``normalize(x, y, 1 + elu(z))``), roughness ``0.05 + 0.95 sigmoid`` in [0.05, 1], specular
``sigmoid`` in [0, 1]. A fresh network predicts the flat normal (0, 0, 1),
roughness 0.525 and specular 0.5 (zero-initialised head).

Tiling: everything is convolutional except the bottleneck attention (and GroupNorm
statistics with ``norm="group"``), which is global over whatever spatial extent it is given;
under :func:`solvers.umat.tiling.tiled_apply` it is global *over the tile*, so tiled and
whole-image predictions agree closely but not bit-exactly. ``attention="none"`` gives a
model whose only non-locality is its (large, ~100 px) receptive field.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from solvers.umat.attention import make_attention
from solvers.umat.tiling import pad_reflect

ROUGHNESS_MIN = 0.05


class MCDropout(nn.Module):
    """Element-wise dropout that is active in training mode *or* when ``mc`` is set.

    ``mc`` (Monte-Carlo dropout at test time) is independent of ``train()/eval()``, so a model
    in eval mode (no layer here keeps running statistics) can still draw dropout samples.
    Masks are drawn per element (per pixel and channel); an optional ``generator`` makes them
    reproducible.
    """

    def __init__(self, p: float = 0.1):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.mc = False
        self.generator: torch.Generator | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not (self.training or self.mc):
            return x
        keep = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, mc={self.mc}"


class PixelLayerNorm(nn.Module):
    """LayerNorm over the channels of each pixel (no spatial statistics, so it is local)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """``x : (B, C, H, W)`` -> ``(B, C, H, W)`` (in channels-last memory layout)."""
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "layer":
        return PixelLayerNorm(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; use 'group', 'layer' (per pixel) or 'none'")


class ConvBlock(nn.Sequential):
    """``convs`` x (3x3 conv, norm, SiLU), optionally followed by :class:`MCDropout`."""

    def __init__(self, c_in: int, c_out: int, *, norm: str = "layer", dropout: float = 0.0, convs: int = 2):
        layers: list[nn.Module] = []
        for i in range(convs):
            layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), _norm(norm, c_out), nn.SiLU()]
        if dropout > 0:
            layers.append(MCDropout(dropout))
        super().__init__(*layers)


class UMatNet(nn.Module):
    """Attention U-Net mapping a scanner image to normal, roughness and specular maps.

    Parameters
    ----------
    base_channels : int
        Channels at full resolution; level ``i`` has ``base * min(2**i, 4)``.
    depth : int
        Number of stride-2 down-samplings (inputs are padded to a multiple of ``2**depth``).
    attention : {"linear", "softmax", "none"}
        Bottleneck attention: efficient attention (Shen et al. 2021, the default; memory
        ``O(N C)`` for ``N = HW / 4**depth`` positions), quadratic softmax attention (for
        comparison; ``O(N^2)`` memory, ~1 GB per head at 1024 x 1024, so use it with tiles),
        or none.
    dropout : float
        MC-dropout probability in the bottleneck and decoder blocks.
    in_channels : int
        Input image channels.
    norm : {"layer", "group", "none"}
        Normalisation in the conv blocks: per-pixel LayerNorm over channels (default, local),
        GroupNorm (8 groups, statistics over the whole image or tile), or none.
    heads : int
        Attention heads.
    """

    def __init__(self, base_channels: int = 16, depth: int = 3, attention: str = "linear", dropout: float = 0.1,
                 in_channels: int = 3, *, norm: str = "layer", heads: int = 4):
        super().__init__()
        if depth < 1 or base_channels < 1:
            raise ValueError(f"need depth >= 1 and base_channels >= 1, got depth={depth}, base={base_channels}")
        self.config = {"base_channels": base_channels, "depth": depth, "attention": attention, "dropout": dropout,
                       "in_channels": in_channels, "norm": norm, "heads": heads}
        self.depth = depth
        ch = [base_channels * min(2 ** i, 4) for i in range(depth + 1)]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, ch[0], 3, padding=1), _norm(norm, ch[0]), nn.SiLU())
        self.enc = nn.ModuleList(ConvBlock(ch[i], ch[i], norm=norm, convs=1) for i in range(depth))
        self.down = nn.ModuleList(nn.Conv2d(ch[i], ch[i + 1], 3, stride=2, padding=1) for i in range(depth))
        self.mid1 = ConvBlock(ch[depth], ch[depth], norm=norm, dropout=dropout, convs=1)
        self.attn = make_attention(attention, ch[depth], heads)
        self.mid2 = ConvBlock(ch[depth], ch[depth], norm=norm, dropout=dropout, convs=1)
        self.up = nn.ModuleList(nn.Conv2d(ch[i + 1], ch[i], 1) for i in range(depth))
        self.dec = nn.ModuleList(ConvBlock(2 * ch[i], ch[i], norm=norm, dropout=dropout) for i in range(depth))
        self.head = nn.Conv2d(ch[0], 5, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def set_mc_dropout(self, enabled: bool = True, generator: torch.Generator | None = None) -> UMatNet:
        """Keep dropout active (Monte-Carlo dropout) regardless of ``train()``/``eval()``.

        ``generator`` (optional) drives the dropout masks for reproducible samples.
        """
        for m in self.modules():
            if isinstance(m, MCDropout):
                m.mc = bool(enabled)
                m.generator = generator
        return self

    @property
    def multiple(self) -> int:
        """Spatial sizes are padded internally to a multiple of this (``2**depth``)."""
        return 2 ** self.depth

    def features(self, image: Tensor) -> Tensor:
        """Raw 5-channel head output before the activations, ``(B, 5, H, W)``."""
        if image.dim() != 4:
            raise ValueError(f"image must be (B, C, H, W), got shape {tuple(image.shape)}")
        h, w = image.shape[-2:]
        m = self.multiple
        # at least 2 x 2 pixels at the coarsest level (non-degenerate GroupNorm statistics)
        hp, wp = max(-(-h // m) * m, 2 * m), max(-(-w // m) * m, 2 * m)
        top, left = (hp - h) // 2, (wp - w) // 2
        x = pad_reflect(image, top, hp - h - top, left, wp - w - left)
        x = self.stem(x)
        skips = []
        for enc, down in zip(self.enc, self.down):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.mid2(self.attn(self.mid1(x)))
        for i in reversed(range(self.depth)):
            x = F.interpolate(self.up[i](x), scale_factor=2, mode="bilinear", align_corners=False)
            x = self.dec[i](torch.cat([x, skips[i]], dim=1))
        return self.head(x)[:, :, top:top + h, left:left + w]

    def forward(self, image: Tensor) -> Tensor:
        """Predict the material maps.

        Parameters
        ----------
        image : (B, in_channels, H, W)
            Linear scanner radiance, any ``H, W >= 1``.

        Returns
        -------
        Tensor, (B, 5, H, W)
            Channels 0-2 unit normal (OpenGL, z > 0), 3 roughness in [0.05, 1], 4 specular in [0, 1].
        """
        return activate(self.features(image))


def activate(raw: Tensor) -> Tensor:
    """Map raw head outputs ``(B, 5, H, W)`` to (unit normal, roughness, specular)."""
    xy, z, r, s = raw[:, 0:2], raw[:, 2:3], raw[:, 3:4], raw[:, 4:5]
    # 1 + elu > 0 (clamped: it underflows to 0 for z < -17 in float32), so z > 0 after normalising
    n = torch.cat([xy, (1.0 + F.elu(z)).clamp_min(1e-6)], dim=1)
    n = n * torch.rsqrt((n * n).sum(dim=1, keepdim=True))
    rough = ROUGHNESS_MIN + (1.0 - ROUGHNESS_MIN) * torch.sigmoid(r)
    return torch.cat([n, rough, torch.sigmoid(s)], dim=1)


def split_prediction(pred: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Split a ``(B, 5, H, W)`` prediction into normal ``(B,3,H,W)``, roughness and specular ``(B,1,H,W)``."""
    if pred.dim() != 4 or pred.shape[1] != 5:
        raise ValueError(f"prediction must be (B, 5, H, W), got shape {tuple(pred.shape)}")
    return pred[:, 0:3], pred[:, 3:4], pred[:, 4:5]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
