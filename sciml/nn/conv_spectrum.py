"""Exact spectra of multi-channel circular convolutions, the existence theorem and Lorth.

Conventions (the same as ``torch.nn.functional.conv2d`` / ``conv3d`` on a circularly padded
input): a kernel ``weight : (M, C, k, ..., k)`` with stride ``S`` acting on ``x : (C, n, ..., n)``
gives

    y[m, i] = sum_{c, p} weight[m, c, p] * x[c, (S * i + p - pad) mod n],   i in [0, n/S)^d.

The padding offset ``pad`` is a circular shift of the input; it changes no singular value.

* :func:`circular_conv`, :func:`circular_conv_transpose` -- the operator and its exact adjoint.
* :func:`conv_operator_matrix` -- the dense impulse-response matrix (reference, small sizes).
* :func:`conv_singular_values` -- exact singular values: polyphase split for the stride
  (``C * S^d`` input channels on an ``(n/S)^d`` grid), then one ``M x C S^d`` matrix per
  frequency (Sedghi et al. 2019 for ``S = 1``).
* :func:`orthogonal_conv_exists` -- Theorem 1 of Achour, Malgouyres & Mamalet (JMLR 2022).
* :func:`lorth`, :func:`lorth_alpha`, :func:`lorth_bound`, :func:`orthogonality_error` -- the
  paper's regulariser and its stability guarantee ``err <= sqrt(alpha * Lorth)``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "OrthoConvExistence",
    "circular_conv",
    "circular_conv_transpose",
    "conv_operator_matrix",
    "conv_singular_values",
    "lorth",
    "lorth_alpha",
    "lorth_bound",
    "orthogonal_conv_exists",
    "orthogonality_error",
    "same_circular_padding",
]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _dims(weight: torch.Tensor) -> int:
    d = weight.ndim - 2
    if d not in _CONV:
        raise ValueError(f"weight must have shape (M, C, k1[, k2[, k3]]), got {tuple(weight.shape)}")
    return d


def _sizes(value: int | Sequence[int], d: int, name: str) -> tuple[int, ...]:
    sizes = (int(value),) * d if isinstance(value, int) else tuple(int(v) for v in value)
    if len(sizes) != d:
        raise ValueError(f"{name} has {len(sizes)} entries but the kernel has {d} spatial dimensions")
    return sizes


def _check_divisible(input_size: tuple[int, ...], stride: tuple[int, ...]) -> None:
    if any(n % s for n, s in zip(input_size, stride)):
        raise ValueError(f"input size {input_size} must be a multiple of the stride {stride} for a circular "
                         "strided convolution; crop or pad the input to a multiple of the stride")


def same_circular_padding(kernel_size: Sequence[int]) -> tuple[int, ...]:
    """Left paddings ``(k - 1) // 2`` per dimension; the right side gets ``k - 1 - left``."""
    return tuple((k - 1) // 2 for k in kernel_size)


def _wrap_pad(x: torch.Tensor, left: Sequence[int], right: Sequence[int]) -> torch.Tensor:
    """Circular padding of the last ``len(left)`` dims, any amount (tiles when larger than the input)."""
    d = len(left)
    if 1 <= d <= 3 and all(lo <= n and hi <= n for lo, hi, n in zip(left, right, x.shape[-d:])):
        pad = []
        for lo, hi in zip(reversed(left), reversed(right)):
            pad += [lo, hi]
        if not any(pad):
            return x
        batched = x.ndim == d + 2
        out = F.pad(x if batched else x.unsqueeze(0), pad, mode="circular")
        return out if batched else out.squeeze(0)
    for axis, (lo, hi) in enumerate(zip(left, right)):
        dim = x.ndim - d + axis
        n = x.shape[dim]
        reps = 1 + -(-lo // n) + -(-hi // n)
        tiled = torch.cat([x] * reps, dim=dim)
        start = -(-lo // n) * n - lo
        x = tiled.narrow(dim, start, lo + n + hi)
    return x


def circular_conv(x: torch.Tensor, weight: torch.Tensor, stride: int | Sequence[int] = 1,
                  padding: Sequence[int] | None = None) -> torch.Tensor:
    """Strided convolution with circular padding (any kernel size, also larger than the input).

    Parameters
    ----------
    x : (B, C, n1, ..., nd)
        Each ``n_i`` a multiple of the stride.
    weight : (M, C, k1, ..., kd)
    stride : int or tuple
    padding : tuple, optional
        Left (circular) padding per dimension; default ``(k - 1) // 2``.

    Returns
    -------
    (B, M, n1 / S, ..., nd / S)
    """
    d = _dims(weight)
    stride = _sizes(stride, d, "stride")
    _check_divisible(tuple(x.shape[2:]), stride)
    k = weight.shape[2:]
    left = same_circular_padding(k) if padding is None else _sizes(padding, d, "padding")
    right = [ki - 1 - lo for ki, lo in zip(k, left)]
    return _CONV[d](_wrap_pad(x, left, right), weight, stride=stride)


def circular_conv_transpose(y: torch.Tensor, weight: torch.Tensor, stride: int | Sequence[int] = 1,
                            padding: Sequence[int] | None = None) -> torch.Tensor:
    """Exact adjoint of :func:`circular_conv` (same ``weight``, ``stride``, ``padding``).

    Parameters
    ----------
    y : (B, M, N1, ..., Nd)
    weight : (M, C, k1, ..., kd)

    Returns
    -------
    (B, C, S * N1, ..., S * Nd)
    """
    d = _dims(weight)
    stride = _sizes(stride, d, "stride")
    k = weight.shape[2:]
    left = same_circular_padding(k) if padding is None else _sizes(padding, d, "padding")
    n = [s * m for s, m in zip(stride, y.shape[2:])]
    full = _CONV_T[d](y, weight, stride=stride)  # padded-input index j <-> input index (j - left) mod n
    for axis in range(d):
        dim = 2 + axis
        length = full.shape[dim]
        reps = -(-length // n[axis])
        extra = reps * n[axis] - length
        if extra:
            full = torch.cat([full, full.new_zeros(full.shape[:dim] + (extra,) + full.shape[dim + 1:])], dim=dim)
        if left[axis]:
            full = torch.roll(full, -left[axis], dims=dim)
        full = full.unflatten(dim, (reps, n[axis])).sum(dim)
    return full


def conv_operator_matrix(weight: torch.Tensor, input_size: int | Sequence[int],
                         stride: int | Sequence[int] = 1) -> torch.Tensor:
    """Dense matrix of the circular convolution from impulse responses (reference; small sizes only).

    Returns
    -------
    (M * prod(n / S), C * prod(n))
        Column ``j`` is the flattened response to the ``j``-th unit input (``(C, n, ..., n)`` order).
    """
    d = _dims(weight)
    n = _sizes(input_size, d, "input_size")
    C = weight.shape[1]
    total = C * math.prod(n)
    eye = torch.eye(total, dtype=weight.dtype, device=weight.device).reshape(total, C, *n)
    return circular_conv(eye, weight, stride).reshape(total, -1).T


def _polyphase_symbols(weight: torch.Tensor, input_size: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    """Per-frequency matrices ``(prod(n/S), M, C * prod(S))`` of the strided circular convolution."""
    d = _dims(weight)
    M, C = weight.shape[:2]
    k = weight.shape[2:]
    N = [ni // si for ni, si in zip(input_size, stride)]
    # pad each kernel dim to a multiple of S * N, so that both the polyphase split and the
    # wrap-around onto the (n / S) grid are plain reshapes
    w = weight
    for axis in range(d):
        period = stride[axis] * N[axis]
        extra = -k[axis] % period
        if extra:
            w = F.pad(w, [0, 0] * (d - 1 - axis) + [0, extra])
    shape = [M, C]
    for axis in range(d):
        shape += [w.shape[2 + axis] // (stride[axis] * N[axis]), N[axis], stride[axis]]  # (wraps, q, r)
    w = w.reshape(shape)
    # sum the wraps: q index is taken modulo N
    w = w.sum(dim=[2 + 3 * axis for axis in range(d)])  # (M, C, N1, S1, N2, S2, ...)
    perm = [0, 1] + [3 + 2 * a for a in range(d)] + [2 + 2 * a for a in range(d)]
    w = w.permute(perm).reshape(M, C * math.prod(stride), *N)  # channels (c, r1, r2, ...)
    symbols = torch.fft.fftn(w, dim=list(range(2, 2 + d)))
    return symbols.reshape(M, C * math.prod(stride), -1).permute(2, 0, 1)


def conv_singular_values(weight: torch.Tensor, input_size: int | Sequence[int],
                         stride: int | Sequence[int] = 1) -> torch.Tensor:
    """All singular values of the circular convolution ``x -> circular_conv(x, weight, stride)``.

    Exact (up to floating point): the operator is block-diagonalised by the DFT after the
    polyphase split of the input into ``S^d`` sub-grids.

    Parameters
    ----------
    weight : (M, C, k1, ..., kd)
        Any kernel size (larger than ``n`` wraps around).
    input_size : int or tuple
        Spatial size ``n`` of the input, a multiple of the stride.
    stride : int or tuple

    Returns
    -------
    (prod(n / S) * min(M, C * S^d),)
        Sorted in descending order; as many values as ``min`` of the operator's two dimensions.
    """
    d = _dims(weight)
    n = _sizes(input_size, d, "input_size")
    s = _sizes(stride, d, "stride")
    _check_divisible(n, s)
    sv = torch.linalg.svdvals(_polyphase_symbols(weight, n, s))
    return sv.reshape(-1).sort(descending=True).values


def orthogonality_error(weight: torch.Tensor, input_size: int | Sequence[int],
                        stride: int | Sequence[int] = 1) -> float:
    """Spectral-norm orthogonality error ``max |sigma^2 - 1|`` (= ``||K K^T - I||_2`` in the RO case,
    ``||K^T K - I||_2`` in the CO case) of the circular convolution on size ``input_size``."""
    sv = conv_singular_values(weight, input_size, stride)
    return float((sv.double() ** 2 - 1).abs().max())


@dataclass(frozen=True)
class OrthoConvExistence:
    """Answer of :func:`orthogonal_conv_exists`.

    Attributes
    ----------
    exists : bool
    case : str
        ``"RO"`` (row-orthogonal, ``M <= C S^d``: ``K K^T = I``), ``"CO"`` (column-orthogonal,
        ``M >= C S^d``: ``K^T K = I``, norm preserving) or ``"square"`` (``M = C S^d``: both).
    message : str
        Why, and what to change when it does not exist.
    """

    exists: bool
    case: str
    message: str

    def __bool__(self) -> bool:
        return self.exists


def orthogonal_conv_exists(out_channels: int, in_channels: int, kernel_size: int, stride: int = 1,
                           dims: int = 2) -> OrthoConvExistence:
    """Theorem 1 of Achour, Malgouyres & Mamalet: does an orthogonal circular convolution exist?

    With ``M`` output and ``C`` input channels, a ``k^d`` kernel and stride ``S`` (circular
    padding, input size a multiple of ``S`` with ``S n >= k``):

    * RO case ``M <= C S^d``: a row-orthogonal convolution exists iff ``M <= C k^d``;
    * CO case ``M >= C S^d``: a column-orthogonal convolution exists iff ``S <= k``.

    In every impossible configuration the per-frequency matrices have rank at most ``C k^d`` (only
    ``k^d`` of the ``S^d`` polyphase components are touched), below ``min(M, C S^d)``, so some
    singular value is 0 for every kernel.
    """
    M, C, k, S = int(out_channels), int(in_channels), int(kernel_size), int(stride)
    if min(M, C, k, S) < 1:
        raise ValueError(f"channels, kernel size and stride must be positive, got M={M}, C={C}, k={k}, S={S}")
    cs = C * S ** dims
    case = "square" if M == cs else ("RO" if M < cs else "CO")
    if M <= cs:
        if M <= C * k ** dims:
            return OrthoConvExistence(True, case, f"{case} case (M={M} <= C*S^d={cs}): a row-orthogonal "
                                      f"convolution exists since M <= C*k^d={C * k ** dims}")
        return OrthoConvExistence(False, case, f"no row-orthogonal convolution with M={M} outputs, C={C} inputs, "
                                  f"kernel {k}, stride {S}: the RO case needs M <= C*k^d={C * k ** dims}; use a "
                                  f"kernel size >= stride ({S}) or at most {C * k ** dims} output channels")
    if S <= k:
        return OrthoConvExistence(True, case, f"CO case (M={M} >= C*S^d={cs}): a column-orthogonal convolution "
                                  f"exists since stride {S} <= kernel {k}")
    return OrthoConvExistence(False, case, f"no column-orthogonal convolution with M={M} outputs, C={C} inputs, "
                              f"kernel {k}, stride {S}: the CO case needs stride <= kernel size; use kernel_size "
                              f">= {S} or fewer than C*S^d={cs} output channels (RO case)")


def lorth(weight: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """The orthogonality regulariser of Achour et al.: zero iff the convolution is orthogonal.

    ``Lorth(K) = ||conv(K, K, padding=P, stride=S) - I_r0||_F^2 - max(0, M - C S^d)`` with
    ``P = floor((k - 1) / S) * S`` and ``I_r0`` the ``M x M`` identity at the spatial centre.
    The subtracted constant makes it zero for column-orthogonal kernels in the CO case. Valid for
    input sizes with ``S n >= 2k - 1`` (no wrap-around of the kernel's self-correlation).

    Parameters
    ----------
    weight : (M, C, k, ..., k)

    Returns
    -------
    () tensor, differentiable.
    """
    d = _dims(weight)
    M, C = weight.shape[:2]
    k = weight.shape[2]
    if any(ki != k for ki in weight.shape[2:]):
        raise ValueError(f"lorth needs a cubic kernel (k, ..., k), got {tuple(weight.shape[2:])}")
    P = ((k - 1) // stride) * stride
    corr = _CONV[d](weight, weight, padding=P, stride=stride)  # (M, M, 2P/S + 1, ...)
    target = torch.zeros_like(corr)
    centre = (slice(None), slice(None)) + (P // stride,) * d
    target[centre] = torch.eye(M, dtype=weight.dtype, device=weight.device)
    return ((corr - target) ** 2).sum() - max(0, M - C * stride ** d)


def lorth_alpha(out_channels: int, in_channels: int, kernel_size: int, stride: int = 1, dims: int = 2) -> int:
    """The constant of the bound ``err <= sqrt(alpha * Lorth)``: ``M (2 floor((k-1)/S) + 1)^d`` in the
    RO case, ``C (2k - 1)^d`` in the CO case."""
    M, C, k, S = out_channels, in_channels, kernel_size, stride
    if M <= C * S ** dims:
        return M * (2 * ((k - 1) // S) + 1) ** dims
    return C * (2 * k - 1) ** dims


def lorth_bound(weight: torch.Tensor, stride: int = 1) -> float:
    """Upper bound ``sqrt(alpha * Lorth)`` on :func:`orthogonality_error` (any input size with ``S n >= 2k - 1``)."""
    M, C = weight.shape[:2]
    value = max(float(lorth(weight, stride)), 0.0)
    return math.sqrt(lorth_alpha(M, C, weight.shape[2], stride, _dims(weight)) * value)
