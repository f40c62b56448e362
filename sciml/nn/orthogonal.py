"""Orthogonal convolution layers (Achour, Malgouyres & Mamalet, JMLR 2022) with exact measures.

* :class:`OrthoConv1d`, :class:`OrthoConv2d`, :class:`OrthoConv3d` -- ``nn.Conv`` signature;
  ``mode="exact"`` (default) builds an exactly orthogonal kernel
  (:class:`~sciml.nn.orthogonal_kernels.OrthogonalKernel`, QR-based, row-orthogonal in the RO
  case, norm preserving in the CO case); ``mode="lorth"`` is an ordinary convolution whose
  :meth:`~_OrthoConvNd.regularizer` returns the paper's ``Lorth`` penalty, for comparison.
* :class:`OrthoConvTranspose2d`, :class:`OrthoConvTranspose3d` -- the adjoint layers (the
  exact adjoint of the circular strided convolution; RO becomes CO and vice versa).
* :meth:`_OrthoConvNd.export` -- a frozen plain ``nn.Conv2d`` / ``nn.Conv3d`` (circular padding)
  with the same output, for inference at plain-convolution speed.

Orthogonality is exact for ``padding_mode="circular"`` and input sizes that are multiples of the
stride; ``padding_mode="zeros"`` keeps the layer 1-Lipschitz but not orthogonal at the border.
Check any layer with :func:`~sciml.nn.conv_spectrum.conv_singular_values` on ``layer.weight``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sciml.nn.conv_spectrum import (
    _CONV,
    _wrap_pad,
    circular_conv_transpose,
    conv_singular_values,
    lorth,
    lorth_alpha,
    same_circular_padding,
)
from sciml.nn.orthogonal_kernels import OrthogonalKernel

__all__ = [
    "FrozenCircularConvTranspose",
    "OrthoConv1d",
    "OrthoConv2d",
    "OrthoConv3d",
    "OrthoConvTranspose2d",
    "OrthoConvTranspose3d",
]


def _as_int(value, name: str, d: int) -> int:
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1 or len(value) != d:
            raise ValueError(f"{name} must be one int (the same in every dimension) for orthogonal convolutions, "
                             f"got {value}")
        value = value[0]
    return int(value)


class _OrthoConvNd(nn.Module):
    """Shared implementation; ``dims`` spatial dimensions, ``transposed`` for the adjoint layer."""

    dims = 2
    transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: str | int = "same", bias: bool = True, padding_mode: str = "circular",
                 mode: str = "exact", projector_rank: int | None = None,
                 generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None, precise: bool = True,
                 build_device: str | None = None, orthogonalizer: str = "qr") -> None:
        super().__init__()
        d = self.dims
        k, S = _as_int(kernel_size, "kernel_size", d), _as_int(stride, "stride", d)
        if padding_mode not in ("circular", "zeros"):
            raise ValueError(f"padding_mode must be 'circular' (exactly orthogonal) or 'zeros' (1-Lipschitz), "
                             f"got {padding_mode!r}")
        if mode not in ("exact", "lorth"):
            raise ValueError(f"mode must be 'exact' (orthogonal parametrisation) or 'lorth' (ordinary conv with "
                             f"the Lorth penalty), got {mode!r}")
        if padding != "same" and padding != (k - 1) // 2:
            raise ValueError(f"padding={padding!r}: orthogonal layers always pad (k - 1) // 2 = {(k - 1) // 2} on the "
                             f"left and k - 1 in total, so that the output is n / stride; pass padding='same'")
        self.in_channels, self.out_channels, self.kernel_size, self.stride = in_channels, out_channels, k, S
        self.padding_mode, self.mode = padding_mode, mode
        # the convolution direction: conv maps C -> M; the transposed layer is its adjoint
        M, C = (in_channels, out_channels) if self.transposed else (out_channels, in_channels)
        self._conv_shape = (M, C)
        if mode == "exact":
            self.kernel = OrthogonalKernel(M, C, k, S, d, projector_rank=projector_rank, generator=generator,
                                           dtype=dtype, device=device, precise=precise,
                                           build_device=build_device, orthogonalizer=orthogonalizer)
        else:
            self.kernel = None
            bound = 1.0 / math.sqrt(C * k ** d)
            w = torch.rand(M, C, *([k] * d), generator=generator, dtype=dtype or torch.get_default_dtype())
            self.free_weight = nn.Parameter(((2 * w - 1) * bound).to(device))
        self.bias = nn.Parameter(torch.zeros(out_channels, dtype=dtype, device=device)) if bias else None
        self.padding = same_circular_padding((k,) * d)

    @property
    def weight(self) -> torch.Tensor:
        """Kernel ``(M, C, k, ..., k)`` of the convolution ``C -> M`` (for the transposed layer: ``(in, out, k..)``,
        the ``nn.ConvTranspose`` layout)."""
        return self.kernel() if self.kernel is not None else self.free_weight

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        left = self.padding
        right = [self.kernel_size - 1 - lo for lo in left]
        if self.padding_mode == "circular":
            return _wrap_pad(x, left, right)
        pad = []
        for lo, hi in zip(reversed(left), reversed(right)):
            pad += [lo, hi]
        return F.pad(x, pad)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != self.dims + 2:
            raise ValueError(f"{type(self).__name__} expects input (B, C, {', '.join('n' * self.dims)}), "
                             f"got shape {tuple(x.shape)}")
        if not self.transposed and any(n % self.stride for n in x.shape[2:]):
            raise ValueError(f"input size {tuple(x.shape[2:])} must be a multiple of the stride {self.stride}; "
                             "crop or pad the input")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x : (B, in, n, ...) -> (B, out, n / S, ...)`` (transposed: ``(B, out, S n, ...)``)."""
        self._check(x)
        w = self.weight
        if self.transposed:
            if self.padding_mode != "circular":
                raise ValueError("the transposed orthogonal layer supports padding_mode='circular' only")
            y = circular_conv_transpose(x, w, self.stride, self.padding)
        else:
            y = _CONV[self.dims](self._pad(x), w, stride=self.stride)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, *([1] * self.dims))
        return y

    def regularizer(self) -> torch.Tensor:
        """``Lorth`` of the kernel (``mode="lorth"``: the penalty to add to the loss; ``"exact"``: ~0)."""
        return lorth(self.weight, self.stride)

    def lorth_bound(self) -> float:
        """Guaranteed ``max |sigma^2 - 1| <= sqrt(alpha * Lorth)`` for input sizes with ``S n >= 2k - 1``."""
        M, C = self._conv_shape
        value = max(float(self.regularizer().detach()), 0.0)
        return math.sqrt(lorth_alpha(M, C, self.kernel_size, self.stride, self.dims) * value)

    def singular_values(self, input_size: int) -> torch.Tensor:
        """Exact singular values of the (circular) linear part on inputs of spatial size ``input_size``
        (for the transposed layer: the size of its *output*)."""
        with torch.no_grad():
            return conv_singular_values(self.weight, input_size, self.stride)

    def export(self) -> nn.Module:
        """A frozen module with the same output for fast inference.

        The forward layer becomes a plain ``nn.Conv{d}d`` (``padding_mode`` as the layer's); an
        even kernel with stride 1 needs asymmetric padding and becomes ``nn.Sequential(pad, conv)``.
        The transposed layer becomes a :class:`FrozenCircularConvTranspose`.
        """
        with torch.no_grad():
            w = self.weight.detach().clone()
            b = None if self.bias is None else self.bias.detach().clone()
        if self.transposed:
            return FrozenCircularConvTranspose(w, b, self.stride, self.padding)
        d, k, S = self.dims, self.kernel_size, self.stride
        left = self.padding[0]
        conv_cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[d]
        symmetric = 2 * left >= k - S
        conv = conv_cls(self.in_channels, self.out_channels, k, stride=S, padding=left if symmetric else 0,
                        bias=b is not None, padding_mode=self.padding_mode, dtype=w.dtype, device=w.device)
        conv.weight.data.copy_(w)
        if b is not None:
            conv.bias.data.copy_(b)
        conv.requires_grad_(False)
        if symmetric:
            return conv
        pads = [left, k - 1 - left] * d
        pad_cls = {1: nn.CircularPad1d, 2: nn.CircularPad2d, 3: nn.CircularPad3d}[d] \
            if self.padding_mode == "circular" else {1: nn.ConstantPad1d, 2: nn.ConstantPad2d, 3: nn.ConstantPad3d}[d]
        pad = pad_cls(pads) if self.padding_mode == "circular" else pad_cls(pads, 0.0)
        return nn.Sequential(pad, conv)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"mode={self.mode}, padding_mode={self.padding_mode}, bias={self.bias is not None}")


class FrozenCircularConvTranspose(nn.Module):
    """Exported transposed orthogonal layer: fixed weight ``(in, out, k, ...)``, circular adjoint convolution."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.stride, self.padding = stride, tuple(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = circular_conv_transpose(x, self.weight, self.stride, self.padding)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, *([1] * (y.ndim - 2)))
        return y


class OrthoConv1d(_OrthoConvNd):
    """Orthogonal 1-D convolution; see :class:`OrthoConv2d`."""

    dims = 1


class OrthoConv2d(_OrthoConvNd):
    """Orthogonal 2-D convolution with circular padding, ``nn.Conv2d``-like signature.

    Parameters
    ----------
    in_channels, out_channels : int
        ``C`` and ``M``: row-orthogonal when ``M <= C S^2``, column-orthogonal (norm
        preserving, ``||W x|| = ||x||``) when ``M >= C S^2``.
    kernel_size, stride : int
        Any combination allowed by :func:`~sciml.nn.conv_spectrum.orthogonal_conv_exists`
        (otherwise ``ValueError`` with the reason). One int (cubic kernels); no dilation or groups.
    padding : "same" or int
        Always ``(k - 1) // 2`` on the left and ``k - 1`` in total (output ``n / S``); an int must
        equal ``(k - 1) // 2`` (accepted for ``nn.Conv2d`` compatibility).
    bias : bool
    padding_mode : {"circular", "zeros"}
        Output size ``n / S`` either way; only circular is exactly orthogonal.
    mode : {"exact", "lorth"}
        Exact parametrisation, or a free kernel penalised with :meth:`regularizer` (Lorth).
    projector_rank : int, optional
        Rank of the projectors in the block-convolution factors (default half the width).
    generator : torch.Generator, optional
    precise : bool
        Build the kernel in float64 and round once to the parameters' dtype (default ``True``).
    build_device : str, optional
        Device on which the kernel is built (default: the parameters'); ``"cpu"`` can be faster
        for a CUDA layer since the work is a few small QRs.
    orthogonalizer : {"qr", "cholesky"}
        Householder QR (default) or CholeskyQR2 for the orthogonal factors: the same kernel, computed
        with matrix products instead of ``geqrf`` (fewer GPU launches).

    Shapes
    ------
    ``x : (B, C, H, W) -> (B, M, H / S, W / S)``; ``H, W`` multiples of ``S``.
    """

    dims = 2


class OrthoConv3d(_OrthoConvNd):
    """Orthogonal 3-D convolution; see :class:`OrthoConv2d` (``S^3`` replaces ``S^2``)."""

    dims = 3


class OrthoConvTranspose2d(_OrthoConvNd):
    """Adjoint of an orthogonal strided circular convolution: ``(B, in, N, N) -> (B, out, S N, S N)``.

    ``weight`` has the ``nn.ConvTranspose2d`` layout ``(in, out, k, k)`` and is an orthogonal
    kernel of the convolution ``out -> in``; the layer is norm preserving when that convolution is
    row-orthogonal (``in <= out * S^2``). Circular padding only.
    """

    dims = 2
    transposed = True


class OrthoConvTranspose3d(_OrthoConvNd):
    """3-D version of :class:`OrthoConvTranspose2d`."""

    dims = 3
    transposed = True
