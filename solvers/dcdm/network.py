"""Direction networks of the deep conjugate-direction method.

Both networks map a normalised residual on the voxel grid, ``(B, 1, nx, ny, nz)``, to a
search direction of the same shape; they are fully convolutional and run at any grid
size (odd sizes are padded to the next multiple of the pooling factor and cropped back).

* :class:`PaperDCDMNet` -- the network of Kaneda et al. (ICML 2023): a linear 3x3x3
  convolution to 16 channels, residual pairs of ReLU convolutions at full resolution,
  one 2x average pooling, residual pairs at half resolution, upsampling plus skip,
  residual pairs at full resolution, and a 1x1x1 convolution back to one channel.
  ``blocks=(2, 3, 2)`` is the paper's "N64" model (4 + 6 + 4 convolutions, 97,457
  parameters), ``(3, 5, 3)`` its "N128" model.
* :class:`UNetDCDMNet` -- our multi-level variant: several pooling levels with few
  channels at fine levels and more at coarse ones, so it costs fewer FLOPs per voxel
  and reaches the low frequencies that dominate CG's iteration count.
* :class:`RecursiveUNetDCDMNet` -- ours too: the coarse levels share one set of weights
  and the network pools until the grid is small, so it gets deeper on larger grids.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pool2(h: torch.Tensor) -> torch.Tensor:
    """2x average pooling of ``h : (B, C, X, Y, Z)`` (even sizes) in ``h``'s dtype; bfloat16 on
    a CPU, which PyTorch's 3-D pooling lacks, goes through float32."""
    if h.dtype == torch.bfloat16 and h.device.type == "cpu":
        return F.avg_pool3d(h.float(), 2).to(h.dtype)
    return F.avg_pool3d(h, 2)


class ResidualPair(nn.Module):
    """``h + relu(conv(relu(conv(h))))`` with 3x3x3 convolutions of ``channels`` channels."""

    def __init__(self, channels: int, bias: bool = True):
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1, bias=bias)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1, bias=bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + F.relu(self.conv2(F.relu(self.conv1(h))))


def _stack(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*[ResidualPair(channels) for _ in range(count)])


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Zero-pad the three spatial axes of ``x (B, C, X, Y, Z)`` up to a multiple; return the original size."""
    size = tuple(x.shape[-3:])
    pad = [(-s) % multiple for s in size]
    if any(pad):
        x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]))
    return x, size


def _crop(x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    return x[..., : size[0], : size[1], : size[2]]


class PaperDCDMNet(nn.Module):
    """The DCDM paper's direction network (one pooling level, ``channels`` everywhere).

    Parameters
    ----------
    channels : int
        Feature channels (16 in the paper).
    blocks : (int, int, int)
        Residual pairs before pooling, at half resolution, and after upsampling.
    """

    def __init__(self, channels: int = 16, blocks: tuple[int, int, int] = (2, 3, 2)):
        super().__init__()
        self.config = {"arch": "paper", "channels": channels, "blocks": list(blocks)}
        self.lift = nn.Conv3d(1, channels, 3, padding=1)
        self.fine_in = _stack(channels, blocks[0])
        self.coarse = _stack(channels, blocks[1])
        self.fine_out = _stack(channels, blocks[2])
        self.project = nn.Conv3d(channels, 1, 1)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """Map ``r : (B, 1, X, Y, Z)`` to a direction ``(B, 1, X, Y, Z)``."""
        h, size = _pad_to_multiple(r, 2)
        h = self.fine_in(self.lift(h))
        c = self.coarse(_pool2(h))
        h = self.fine_out(F.interpolate(c, scale_factor=2, mode="nearest") + h)
        return _crop(self.project(h), size)


class UNetDCDMNet(nn.Module):
    """Multi-level U-Net direction network (our variant of DCDM).

    Level ``l`` works at resolution ``2^-l`` with ``channels[l]`` channels and one
    residual pair on the way down and one on the way up; skips are additive.

    Without biases (the default) the network is positively homogeneous,
    ``f(c r) = c f(r)`` for ``c > 0``, like the ideal direction ``A^{-1} r``: the
    direction does not depend on how the residual happens to be scaled (the per-voxel
    size of a unit-norm residual shrinks with the grid), and the constant output that
    is orthogonal to every divergence right-hand side -- a dead end of training -- is
    out of reach.

    With ``input_skip`` the network returns ``r + g(r)``: it starts as the identity
    (DCDM with the identity is CG) and learns a correction, so that a residual unlike
    anything seen in training still yields a direction with ``q^T r > 0`` instead of
    stalling the iteration.

    Parameters
    ----------
    channels : sequence of int
        Channels per level, finest first, e.g. ``(8, 16, 16, 32)`` for 4 levels.
    bias : bool
        Give the convolutions biases (off by default, see above).
    input_skip : bool
        Add the input to the output (on by default).
    """

    def __init__(self, channels: tuple[int, ...] = (8, 16, 16, 32), bias: bool = False, input_skip: bool = True):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2:
            raise ValueError(f"a U-Net needs at least 2 levels, got channels={channels}")
        self.config = {"arch": "unet", "channels": list(channels), "bias": bias, "input_skip": input_skip}
        self.input_skip = input_skip
        self.levels = len(channels)
        self.lift = nn.Conv3d(1, channels[0], 3, padding=1, bias=bias)
        self.down = nn.ModuleList(ResidualPair(c, bias) for c in channels)
        self.widen = nn.ModuleList(nn.Conv3d(a, b, 1, bias=bias) for a, b in zip(channels[:-1], channels[1:]))
        self.narrow = nn.ModuleList(nn.Conv3d(b, a, 1, bias=bias) for a, b in zip(channels[:-1], channels[1:]))
        self.up = nn.ModuleList(ResidualPair(c, bias) for c in channels[:-1])
        self.project = nn.Conv3d(channels[0], 1, 1, bias=bias)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """Map ``r : (B, 1, X, Y, Z)`` to a direction ``(B, 1, X, Y, Z)``."""
        h, size = _pad_to_multiple(r, 2 ** (self.levels - 1))
        h = self.lift(h)
        skips = []
        for level in range(self.levels - 1):
            h = self.down[level](h)
            skips.append(h)
            h = self.widen[level](_pool2(h))
        h = self.down[-1](h)
        for level in reversed(range(self.levels - 1)):
            h = self.narrow[level](F.interpolate(h, scale_factor=2, mode="nearest")) + skips[level]
            h = self.up[level](h)
        q = _crop(self.project(h), size)
        return q + r if self.input_skip else q


class RecursiveUNetDCDMNet(nn.Module):
    """U-Net whose coarse levels share one set of weights, as many as the grid allows (ours).

    The finest level has its own ``fine_channels``; every coarser level, down to a grid of
    at most ``coarsest`` cells per side, applies the same residual pair on the way down,
    the same ``1x1`` map of the upsampled coarse result and the same residual pair on the
    way up (``channels`` each). The depth thus grows with the grid, like a multigrid
    V-cycle: a network trained at 32^3 meets a 64^3 grid with one more level of the same
    operator instead of a coarsest level that is too fine. Bias-free and with the input
    skip, as :class:`UNetDCDMNet` (see there).

    Parameters
    ----------
    fine_channels : int
        Channels at full resolution.
    channels : int
        Channels of the shared coarse levels.
    coarsest : int
        Pool until the grid has at most this many cells per side.
    max_depth : int, optional
        At most this many poolings, whatever the grid. Setting it to the depth of the
        largest training grid keeps larger grids at the trained depth, with a coarsest grid
        finer than ``coarsest``. The shipped network, trained up to 64^3 (4 poolings), stalls
        alone on every held-out 128^3 scene; with ``max_depth=4`` it solves 4 of 8 alone in
        0.14x CG's iterations (``docs/benchmarks/README.md``).
    """

    def __init__(self, fine_channels: int = 8, channels: int = 16, coarsest: int = 4,
                 max_depth: int | None = None):
        super().__init__()
        if max_depth is not None and max_depth < 1:
            raise ValueError(f"max_depth must be at least 1 (one pooling) or None, got {max_depth}")
        self.config = {"arch": "recursive", "fine_channels": fine_channels, "channels": channels,
                       "coarsest": coarsest, "max_depth": max_depth}
        self.coarsest, self.max_depth = coarsest, max_depth
        self.lift = nn.Conv3d(1, fine_channels, 3, padding=1, bias=False)
        self.fine_down = ResidualPair(fine_channels, bias=False)
        self.widen = nn.Conv3d(fine_channels, channels, 1, bias=False)
        self.down = ResidualPair(channels, bias=False)
        self.coarse_in = nn.Conv3d(channels, channels, 1, bias=False)
        self.up = ResidualPair(channels, bias=False)
        self.narrow = nn.Conv3d(channels, fine_channels, 1, bias=False)
        self.fine_up = ResidualPair(fine_channels, bias=False)
        self.project = nn.Conv3d(fine_channels, 1, 1, bias=False)

    def depth(self, size: tuple[int, int, int]) -> int:
        """Poolings for a grid of ``size``: until every side is at most ``coarsest`` (at least one,
        at most ``max_depth``)."""
        depth = 1
        while max(size) > self.coarsest * 2 ** depth and depth != self.max_depth:
            depth += 1
        return depth

    def _coarse(self, h: torch.Tensor, levels: int) -> torch.Tensor:
        """The shared levels below a grid: ``levels`` more poolings of ``h : (B, C, X, Y, Z)``."""
        h = self.down(h)
        if levels == 0:
            return h
        below = self._coarse(_pool2(h), levels - 1)
        return self.up(self.coarse_in(F.interpolate(below, scale_factor=2, mode="nearest")) + h)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """Map ``r : (B, 1, X, Y, Z)`` to a direction ``(B, 1, X, Y, Z)``."""
        depth = self.depth(tuple(r.shape[-3:]))
        h, size = _pad_to_multiple(r, 2 ** depth)
        h = self.fine_down(self.lift(h))
        coarse = self._coarse(self.widen(_pool2(h)), depth - 1)
        h = self.fine_up(self.narrow(F.interpolate(coarse, scale_factor=2, mode="nearest")) + h)
        return _crop(self.project(h), size) + r


def build_network(config: dict) -> nn.Module:
    """Rebuild a network from its ``config`` dict (as stored in checkpoints)."""
    arch = config.get("arch")
    if arch == "paper":
        return PaperDCDMNet(config.get("channels", 16), tuple(config.get("blocks", (2, 3, 2))))
    if arch == "unet":
        return UNetDCDMNet(tuple(config.get("channels", (8, 16, 16, 32))), bool(config.get("bias", False)),
                           bool(config.get("input_skip", False)))
    if arch == "recursive":
        max_depth = config.get("max_depth")
        return RecursiveUNetDCDMNet(int(config.get("fine_channels", 8)), int(config.get("channels", 16)),
                                    int(config.get("coarsest", 4)), None if max_depth is None else int(max_depth))
    raise ValueError(f"unknown DCDM network architecture {arch!r}; expected 'paper', 'unet' or 'recursive'")


def flops_per_voxel(model: nn.Module) -> float:
    """Multiply-adds per fine-grid voxel of one forward pass (convolutions only).

    A convolution at pooling depth ``d`` touches ``8^-d`` of the voxels.
    """
    total = 0.0
    counts: dict[nn.Module, float] = {}

    def hook(module, inputs, output):
        voxels_in = inputs[0].shape[-3:].numel()
        counts[module] = counts.get(module, 0.0) + voxels_in * module.weight[0].numel() * module.out_channels

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv3d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, 16, 16, 16, dtype=next(model.parameters()).dtype))
    finally:
        for h in handles:
            h.remove()
    total = sum(counts.values())
    return total / 16 ** 3
