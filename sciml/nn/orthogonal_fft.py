"""Orthogonal convolution by a Cayley transform per frequency (Trockman & Kolter 2021 style), FFT domain.

:class:`CayleyConv2d` parametrises the whole circular operator on a fixed input size ``n``: the
input is split into its ``S^2`` polyphase components (``pixel_unshuffle``, itself orthogonal),
each frequency ``w`` of the ``(n/S)^2`` grid gets ``Q(w) = (I + A(w))^{-1} (I - A(w))`` with
``A(w) = V(w) - V(w)^H`` skew-Hermitian, ``V = rfft2(v)`` of a *real* parameter ``v``. Because
``V(-w) = conj V(w)``, also ``Q(-w) = conj Q(w)``: the operator is real, and ``irfft2`` of the
half spectrum is exact (no projection onto Hermitian-symmetric spectra is needed). Non-square
layers use the top-left ``M x C S^2`` block of a square ``Q(w)`` (row- or column-orthonormal).

The equivalent kernel has the full input size (``export("conv")`` gives an ``n x n`` kernel
``nn.Conv2d``, exact but slow); ``export("fft")`` freezes the per-frequency matrices instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CayleyConv2d", "FrozenFFTConv2d"]


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def _apply(Q: torch.Tensor, x: torch.Tensor, stride: int, n: int) -> torch.Tensor:
    """``Q : (M, C', N, N//2+1)`` per frequency applied to ``x : (B, C, n, n)`` -> ``(B, M, N, N)``."""
    N = n // stride
    xp = F.pixel_unshuffle(x, stride) if stride > 1 else x
    X = torch.fft.rfft2(xp)
    Y = torch.einsum("mcuv,bcuv->bmuv", Q.to(X.dtype), X)
    return torch.fft.irfft2(Y, s=(N, N))


class CayleyConv2d(nn.Module):
    """Exactly orthogonal circular convolution on a fixed input size, Cayley transform per frequency.

    Parameters
    ----------
    in_channels, out_channels : int
        ``C`` and ``M``; row-orthogonal if ``M <= C S^2``, column-orthogonal (norm preserving) otherwise.
    input_size : int
        ``n`` (square inputs ``n x n``), a multiple of ``stride``.
    stride : int
    bias : bool
    precise : bool
        Compute the Cayley transform in double precision and round ``Q`` once (default).
    generator : torch.Generator, optional

    Shapes
    ------
    ``x : (B, C, n, n) -> (B, M, n / S, n / S)``.
    """

    def __init__(self, in_channels: int, out_channels: int, input_size: int, stride: int = 1, bias: bool = True,
                 precise: bool = True, generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        if input_size % stride:
            raise ValueError(f"input_size {input_size} must be a multiple of the stride {stride}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_size, self.stride = input_size, stride
        self.precise = precise
        N = input_size // stride
        c = max(out_channels, in_channels * stride ** 2)
        dtype = dtype or torch.get_default_dtype()
        # small random start: Q(w) close to the identity block, as in an identity-initialised layer
        v = torch.randn(c, c, N, N, generator=generator, dtype=dtype) / (c * N)
        self.v = nn.Parameter(v.to(device))
        self.bias = nn.Parameter(torch.zeros(out_channels, dtype=dtype, device=device)) if bias else None

    def frequency_matrices(self) -> torch.Tensor:
        """``Q : (M, C S^2, N, N // 2 + 1)`` complex, semi-unitary at every frequency of the half spectrum."""
        v = self.v.double() if self.precise else self.v
        V = torch.fft.rfft2(v).permute(2, 3, 0, 1)  # (N, N//2+1, c, c)
        A = V - V.conj().transpose(-1, -2)
        eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
        Q = torch.linalg.solve(eye + A, eye - A)
        Q = Q[..., : self.out_channels, : self.in_channels * self.stride ** 2].permute(2, 3, 0, 1)
        return Q.to(_complex(self.v.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x : (B, C, n, n) -> (B, M, n / S, n / S)``."""
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"CayleyConv2d was built for {self.input_size}x{self.input_size} inputs, got "
                             f"{tuple(x.shape[-2:])}; the FFT parametrisation fixes the input size (use OrthoConv2d "
                             "for size-independent layers)")
        y = _apply(self.frequency_matrices(), x, self.stride, self.input_size)
        return y if self.bias is None else y + self.bias.reshape(1, -1, 1, 1)

    @property
    def weight(self) -> torch.Tensor:
        """Equivalent full-size kernel ``(M, C, n, n)`` for ``circular_conv(x, weight, stride, padding=(0, 0))``."""
        S, N = self.stride, self.input_size // self.stride
        Q = self.frequency_matrices()
        # y[i] = sum_p K[p] x[i + p] has symbol K_hat(-w) = Q(w), i.e. K = ifft2(conj Q) (real)
        kpoly = torch.fft.irfft2(Q.conj(), s=(N, N)) if N > 1 else Q.real
        # inverse polyphase: channel (c, r1, r2) at tap q  ->  tap S q + r
        M, C = self.out_channels, self.in_channels
        k = kpoly.reshape(M, C, S, S, N, N).permute(0, 1, 4, 2, 5, 3).reshape(M, C, N * S, N * S)
        return k

    def export(self, kind: str = "fft") -> nn.Module:
        """Frozen copy: ``"fft"`` (per-frequency matrices, fast) or ``"conv"`` (``n x n`` kernel ``nn.Conv2d``)."""
        with torch.no_grad():
            b = None if self.bias is None else self.bias.detach().clone()
            if kind == "fft":
                return FrozenFFTConv2d(self.frequency_matrices().detach().clone(), b, self.stride, self.input_size)
            if kind != "conv":
                raise ValueError(f"kind must be 'fft' or 'conv', got {kind!r}")
            w = self.weight.detach().clone()
        n, S = self.input_size, self.stride
        conv = nn.Conv2d(self.in_channels, self.out_channels, n, stride=S, bias=b is not None, dtype=w.dtype,
                         device=w.device)
        conv.weight.data.copy_(w)
        if b is not None:
            conv.bias.data.copy_(b)
        conv.requires_grad_(False)
        return nn.Sequential(nn.CircularPad2d((0, n - S, 0, n - S)), conv)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, stride={self.stride}, "
                f"bias={self.bias is not None}")


class FrozenFFTConv2d(nn.Module):
    """Exported :class:`CayleyConv2d`: fixed per-frequency matrices ``Q : (M, C S^2, N, N//2+1)``."""

    def __init__(self, Q: torch.Tensor, bias: torch.Tensor | None, stride: int, input_size: int) -> None:
        super().__init__()
        self.register_buffer("Q", Q)
        self.register_buffer("bias", bias)
        self.stride, self.input_size = stride, input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _apply(self.Q, x, self.stride, self.input_size)
        return y if self.bias is None else y + self.bias.reshape(1, -1, 1, 1)
