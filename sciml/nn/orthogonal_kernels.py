"""Explicit, exactly orthogonal convolution kernels built from orthogonal matrices.

The kernel is a composition (convolution of kernels, matrix product over channels) of

* a ``c x c`` orthogonal matrix ``H``;
* ``k_A - 1`` two-tap factors ``[P, I - P]`` per spatial dimension, ``P = Q Q^T`` an orthogonal
  projector: in frequency ``P + (I - P) e^{i w}`` is unitary for every ``w`` (block-convolution
  orthogonal parametrisation, BCOP of Li et al. 2019 / Xiao et al. 2018);
* a strided reshaped-kernel matrix ``R : M x C S^d`` with orthonormal rows or columns, used as
  an ``S^d`` kernel with stride ``S`` (the polyphase matrix is constant, hence (semi-)unitary).

Every orthogonal matrix comes from a Householder QR (exact to floating-point precision, unlike
Bjorck or power iterations), so the kernel is orthogonal to rounding error and the convolution
costs exactly an ``nn.Conv2d`` with a ``k x k`` kernel. Together the pieces cover every
configuration that Theorem 1 of Achour et al. allows (:func:`~sciml.nn.conv_spectrum.orthogonal_conv_exists`):

* ``S = 1``: ``K = A_{max(M,C)}`` composed with a ``1 x 1`` matrix ``R``;
* ``S <= k``: ``K = R_S o A_C`` with an ``A`` of size ``k - S + 1`` (total size ``k``);
* ``k < S`` (RO case only, ``M <= C k^d``): ``K`` is a row-orthonormal ``M x C k^d`` matrix.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sciml.nn.conv_spectrum import _CONV, orthogonal_conv_exists

__all__ = ["OrthogonalKernel", "compose_kernels", "orthonormal"]


def orthonormal(param: torch.Tensor, method: str = "qr") -> torch.Tensor:
    """Matrix with orthonormal rows (``a <= b``) or columns (``a >= b``) from ``param : (..., a, b)``.

    The Q factor of the tall orientation with ``diag(R) > 0`` (so the map is smooth and the Haar
    measure is the image of a Gaussian ``param``). Two ways to compute the same matrix:

    * ``"qr"``: Householder QR with the signs fixed (LAPACK / cuSOLVER ``geqrf``);
    * ``"cholesky"``: CholeskyQR2, ``Q = A L^{-T}`` with ``L L^T = A^T A``, done twice. Only matrix
      products, a small Cholesky and a triangular solve: fewer, faster launches on a GPU. Orthogonal
      to rounding while ``cond(param)^2 * eps < 1`` (about 1e7 in float64); raises otherwise.
    """
    a, b = param.shape[-2:]
    tall = param if a >= b else param.transpose(-1, -2)
    if method == "qr":
        q, r = torch.linalg.qr(tall, mode="reduced")
        sign = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        q = q * sign.unsqueeze(-2)
    elif method == "cholesky":
        q = tall
        for _ in range(2):
            lower = torch.linalg.cholesky(q.transpose(-1, -2) @ q)
            q = torch.linalg.solve_triangular(lower.transpose(-1, -2), q, upper=True, left=False)
    else:
        raise ValueError(f"method must be 'qr' or 'cholesky', got {method!r}")
    return q if a >= b else q.transpose(-1, -2)


def compose_kernels(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """Kernel of ``x -> conv(conv(x, inner), outer)`` (inner stride 1; the outer stride is kept).

    Parameters
    ----------
    outer : (M, B, k1, ..., kd)
    inner : (B, C, l1, ..., ld)

    Returns
    -------
    (M, C, k1 + l1 - 1, ..., kd + ld - 1)
        ``K[t] = sum_{p + q = t} outer[p] @ inner[q]``.
    """
    d = outer.ndim - 2
    pad = []
    for size in reversed(outer.shape[2:]):
        pad += [size - 1, size - 1]
    inp = F.pad(inner.transpose(0, 1), pad)
    return _CONV[d](inp, outer.flip(list(range(2, 2 + d)))).transpose(0, 1)


def _two_tap(projector: torch.Tensor, axis: int, d: int) -> torch.Tensor:
    """Kernel ``[P, I - P]`` along spatial ``axis``: ``(c, c, 1.., 2, ..1)``."""
    eye = torch.eye(projector.shape[-1], dtype=projector.dtype, device=projector.device)
    taps = torch.stack([projector, eye - projector], dim=-1)  # (c, c, 2)
    shape = [*projector.shape] + [1] * d
    shape[2 + axis] = 2
    return taps.reshape(shape)


class OrthogonalKernel(nn.Module):
    """Parametrised exactly orthogonal kernel ``(M, C, k, ..., k)`` for stride ``S``; call it to get the kernel.

    Parameters
    ----------
    out_channels, in_channels, kernel_size, stride : int
    dims : int
        Spatial dimensions (1, 2 or 3).
    projector_rank : int, optional
        Rank ``r`` of each projector ``P`` (default ``c // 2``, ``c`` the block-convolution width).
    generator : torch.Generator, optional
        For the initialisation (Haar-distributed orthogonal matrices).
    build_device : str, optional
        Build the kernel on this device (e.g. ``"cpu"`` for a CUDA layer: a few small QRs are
        cheaper there than as GPU launches; costs one host-device round trip per forward).
    precise : bool
        Build the kernel in float64 and round it once to the parameters' dtype (default): the
        float32 kernel is then orthogonal to float32 rounding of its entries (about 1e-7) instead of
        the rounding accumulated through the QRs and compositions (about 2e-6). Costs little: the
        work is on ``c x c`` matrices, not on the data.
    orthogonalizer : {"qr", "cholesky"}
        How :func:`orthonormal` computes the orthogonal factors (the same matrices either way).

    Raises
    ------
    ValueError
        When Theorem 1 says no orthogonal convolution exists (the message says what to change).
    """

    def __init__(self, out_channels: int, in_channels: int, kernel_size: int, stride: int = 1, dims: int = 2,
                 projector_rank: int | None = None, generator: torch.Generator | None = None,
                 dtype: torch.dtype | None = None, device: torch.device | str | None = None,
                 precise: bool = True, build_device: str | None = None, orthogonalizer: str = "qr") -> None:
        super().__init__()
        if orthogonalizer not in ("qr", "cholesky"):
            raise ValueError(f"orthogonalizer must be 'qr' or 'cholesky', got {orthogonalizer!r}")
        self.precise, self.build_device, self.orthogonalizer = precise, build_device, orthogonalizer
        self._build_on = None
        answer = orthogonal_conv_exists(out_channels, in_channels, kernel_size, stride, dims)
        if not answer.exists:
            raise ValueError(answer.message)
        self.case = answer.case
        M, C, k, S = out_channels, in_channels, kernel_size, stride
        self.shape = (M, C, k, S, dims)

        def gauss(*shape):
            return nn.Parameter(torch.randn(*shape, generator=generator, dtype=dtype or torch.get_default_dtype())
                                .to(device))
        if k < S:  # RO, no overlap: one row-orthonormal M x C k^d matrix
            self.mode, self.block = "matrix", 0
            self.R = gauss(M, C * k ** dims)
            return
        if S == 1:
            self.mode, self.block, ka = ("before" if M >= C else "after"), max(M, C), k
            self.R = gauss(M, C)
        else:
            self.mode, self.block, ka = "after", C, k - S + 1
            self.R = gauss(M, C * S ** dims)
        c = self.block
        rank = c // 2 if projector_rank is None else int(projector_rank)
        if not 0 <= rank <= c:
            raise ValueError(f"projector_rank must be in [0, {c}], got {rank}")
        self.H = gauss(c, c)
        self.taps = ka - 1
        self.Q = gauss(dims * self.taps, c, max(rank, 1)) if self.taps else None
        self.rank = rank

    def block_kernel(self, dtype: torch.dtype) -> torch.Tensor:
        """The square stride-1 orthogonal block convolution ``A : (c, c, k_A, ..., k_A)``."""
        d = self.shape[-1]
        kernel = orthonormal(self.H.to(device=self._build_on, dtype=dtype), self.orthogonalizer)
        kernel = kernel.reshape(self.block, self.block, *([1] * d))
        if self.taps:
            q = orthonormal(self.Q.to(device=self._build_on, dtype=dtype), self.orthogonalizer)  # (d * taps, c, r)
            proj = q @ q.transpose(-1, -2) if self.rank else torch.zeros_like(q @ q.transpose(-1, -2))
            for i in range(d * self.taps):
                kernel = compose_kernels(_two_tap(proj[i], i // self.taps, d), kernel)
        return kernel

    def forward(self) -> torch.Tensor:
        """The kernel ``(M, C, k, ..., k)``, in the parameters' dtype (built in float64 when ``precise``)."""
        dtype, device = self.R.dtype, self.R.device
        self._build_on = device if self.build_device is None else torch.device(self.build_device)
        build_dtype = torch.float64 if self.precise else dtype
        return self._build(build_dtype).to(device=device, dtype=dtype)

    def _build(self, dtype: torch.dtype) -> torch.Tensor:
        M, C, k, S, d = self.shape
        R = orthonormal(self.R.to(device=self._build_on, dtype=dtype), self.orthogonalizer)
        if self.mode == "matrix":
            return R.reshape(M, C, *([k] * d))
        A = self.block_kernel(dtype)
        if S == 1:
            R = R.reshape(M, C, *([1] * d))
            return compose_kernels(A, R) if self.mode == "before" else compose_kernels(R, A)
        return compose_kernels(R.reshape(M, C, *([S] * d)), A)
