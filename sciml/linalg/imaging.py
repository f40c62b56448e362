"""Forward operators of imaging inverse problems, as :class:`LinearOperator` s with adjoints.

Images of shape ``(H, W)`` are flattened row-major to vectors of length ``n = H W``; every
operator accepts ``(n,)`` or a block ``(n, k)`` like the rest of :mod:`sciml.linalg`.

* :class:`GaussianBlur` -- convolution with a normalised Gaussian kernel (zero or circular
  boundary); symmetric, so ``A^T = A``.
* :class:`InpaintingMask` -- keeps the pixels of a boolean mask (``(m, n)``, ``A A^T = I``);
  :func:`random_mask` draws one.
* :func:`compressed_sensing` -- a Gaussian measurement matrix ``(m, n)`` scaled by ``1/sqrt(m)``.
* :func:`radon_matrix` -- parallel-beam Radon transform assembled as a :class:`SparseCSR`
  (pixel-driven, linear interpolation onto unit-spaced detector bins), so it runs on the GPU
  through torch sparse; :func:`filtered_back_projection` is its classical inverse.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F

from sciml.linalg.dense import Dense
from sciml.linalg.operator import LinearOperator, resolve_device
from sciml.linalg.sparse import SparseCSR

__all__ = ["GaussianBlur", "InpaintingMask", "random_mask", "compressed_sensing", "radon_matrix",
           "filtered_back_projection", "gaussian_kernel"]


def gaussian_kernel(sigma: float, size: int | None = None, dtype: torch.dtype = torch.float64,
                    device=None) -> torch.Tensor:
    """Normalised 2-D Gaussian kernel ``(size, size)``.

    ``size`` defaults to the LPN paper's rule ``max(5, int(3 sigma))`` made odd.
    """
    if sigma <= 0:
        raise ValueError(f"blur sigma must be positive, got {sigma}")
    if size is None:
        size = max(5, int(3 * sigma))
        size += 1 - size % 2
    if size % 2 != 1:
        raise ValueError(f"kernel size {size} must be odd (centred kernel)")
    r = torch.arange(size, dtype=dtype, device=device) - size // 2
    g = torch.exp(-r**2 / (2 * sigma**2))
    k = g[:, None] * g[None, :]
    return k / k.sum()


def _as_images(x: torch.Tensor, shape: tuple[int, int]) -> tuple[torch.Tensor, bool]:
    """``(n,)`` or ``(n, k)`` -> ``(k, 1, H, W)``; also returns whether the input was a vector."""
    vector = x.ndim == 1
    cols = x[:, None] if vector else x
    return cols.T.reshape(-1, 1, *shape), vector


def _as_vectors(images: torch.Tensor, vector: bool) -> torch.Tensor:
    cols = images.reshape(images.shape[0], -1).T
    return cols[:, 0] if vector else cols


class GaussianBlur(LinearOperator):
    """Convolution of an ``(H, W)`` image with a Gaussian kernel (output of the same size).

    Parameters
    ----------
    shape : (int, int)
        Image shape ``(H, W)``.
    sigma : float
        Standard deviation of the kernel in pixels.
    size : int, optional
        Odd kernel size (default ``max(5, int(3 sigma))`` made odd, the LPN paper's rule).
    boundary : {"zero", "circular"}
        Zero padding or periodic wrap-around; both keep the operator symmetric.
    dtype, device
    """

    symmetric = True

    def __init__(self, shape: tuple[int, int], sigma: float, size: int | None = None, boundary: str = "zero",
                 dtype: torch.dtype = torch.float64, device=None):
        if boundary not in ("zero", "circular"):
            raise ValueError(f"boundary must be 'zero' or 'circular', got {boundary!r}")
        self.image_shape = (int(shape[0]), int(shape[1]))
        self.sigma, self.boundary = float(sigma), boundary
        self.kernel = gaussian_kernel(sigma, size, dtype, resolve_device(device))
        k = self.kernel.shape[0]
        if boundary == "circular" and k > min(self.image_shape):
            raise ValueError(f"kernel size {k} exceeds the image {self.image_shape}; use a smaller sigma or size")
        n = self.image_shape[0] * self.image_shape[1]
        self.shape = (n, n)
        self.dtype, self.device = dtype, self.kernel.device

    def _matvec(self, x):
        images, vector = _as_images(x, self.image_shape)
        pad = self.kernel.shape[0] // 2
        weight = self.kernel[None, None]
        if self.boundary == "circular":
            out = F.conv2d(F.pad(images, (pad, pad, pad, pad), mode="circular"), weight)
        else:
            out = F.conv2d(images, weight, padding=pad)
        return _as_vectors(out, vector)

    def to(self, device=None, dtype=None):
        return GaussianBlur(self.image_shape, self.sigma, self.kernel.shape[0], self.boundary,
                            dtype or self.dtype, device or self.device)


class InpaintingMask(LinearOperator):
    """Observe the pixels where ``mask`` is true: ``(m, n)`` with ``m = mask.sum()``.

    Parameters
    ----------
    mask : (H, W) bool tensor
        Its device is the operator's device.
    dtype : torch.dtype
    """

    def __init__(self, mask: torch.Tensor, dtype: torch.dtype = torch.float64):
        if mask.ndim != 2 or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a 2-D bool tensor, got {mask.dtype} of shape {tuple(mask.shape)}; "
                             "use random_mask(...) or mask > 0.5")
        self.mask = mask
        self.index = torch.nonzero(mask.reshape(-1)).reshape(-1)
        self.image_shape = tuple(mask.shape)
        self.shape = (int(self.index.numel()), int(mask.numel()))
        self.dtype, self.device = dtype, mask.device

    def _matvec(self, x):
        return x[self.index]

    def _rmatvec(self, y):
        out = torch.zeros((self.shape[1],) + tuple(y.shape[1:]), dtype=y.dtype, device=y.device)
        out[self.index] = y
        return out

    def to(self, device=None, dtype=None):
        return InpaintingMask(self.mask.to(device or self.device), dtype or self.dtype)


def random_mask(shape: tuple[int, int], keep: float, generator: torch.Generator | None = None,
                device=None) -> torch.Tensor:
    """A random ``(H, W)`` bool mask keeping each pixel with probability ``keep`` (drawn on the CPU)."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep={keep} must lie in (0, 1]")
    return (torch.rand(shape, generator=generator) < keep).to(device)


def compressed_sensing(shape: tuple[int, int], m: int, generator: torch.Generator | None = None,
                       dtype: torch.dtype = torch.float64, device=None) -> Dense:
    """Gaussian compressed-sensing matrix ``(m, H W)`` with entries ``N(0, 1/m)`` (drawn on the CPU).

    Dense, so meant for images up to about 128 x 128.
    """
    n = int(shape[0] * shape[1])
    if not 0 < m:
        raise ValueError(f"number of measurements m={m} must be positive")
    matrix = torch.randn(m, n, generator=generator, dtype=torch.float64) / math.sqrt(m)
    return Dense(matrix.to(device=device, dtype=dtype), symmetric=False)


def _angles(angles) -> np.ndarray:
    if isinstance(angles, int):
        return np.arange(angles) * 180.0 / angles
    return np.asarray(angles, dtype=np.float64)


def radon_matrix(size: int, angles: int | np.ndarray, detectors: int | None = None,
                 dtype: torch.dtype = torch.float64, device=None) -> SparseCSR:
    """Parallel-beam Radon transform of ``size x size`` images as a sparse ``(A D, size^2)`` matrix.

    Pixel-driven: the centre of pixel ``(i, j)`` at ``x = j - (N-1)/2``, ``y = (N-1)/2 - i``
    projects to ``t = x cos(theta) + y sin(theta)`` and is split by linear interpolation between
    the two nearest unit-spaced detector bins (pixel size 1, so entries approximate line
    integrals). Rows are ordered angle-major: row ``a D + d``.

    Parameters
    ----------
    size : int
        Image side ``N``.
    angles : int or array of float
        Number of equispaced angles in ``[0, 180)`` degrees, or the angles in degrees.
    detectors : int, optional
        Number of detector bins ``D`` (default ``ceil(sqrt(2) N) + 1``, covering the image's diagonal).

    Returns
    -------
    SparseCSR
        With attributes ``angles`` (degrees), ``detectors`` and ``image_shape``.
    """
    theta = np.deg2rad(_angles(angles))
    d = int(detectors) if detectors is not None else int(math.ceil(math.sqrt(2) * size)) + 1
    c = (size - 1) / 2
    ii, jj = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    x, y = (jj - c).ravel(), (c - ii).ravel()
    cols = np.arange(size * size)
    rows, cols_all, vals = [], [], []
    for a, th in enumerate(theta):
        p = x * np.cos(th) + y * np.sin(th) + (d - 1) / 2
        k0 = np.floor(p).astype(np.int64)
        w1 = p - k0
        for k, w in ((k0, 1.0 - w1), (k0 + 1, w1)):
            ok = (k >= 0) & (k < d) & (w > 0)
            rows.append(a * d + k[ok])
            cols_all.append(cols[ok])
            vals.append(w[ok])
    matrix = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols_all))),
                           shape=(len(theta) * d, size * size))
    op = SparseCSR.from_scipy(matrix, dtype=dtype, device=device, symmetric=False)
    op.angles, op.detectors, op.image_shape = np.rad2deg(theta), d, (size, size)
    return op


def _ramp_filter(detectors: int, window: str, dtype, device) -> torch.Tensor:
    """Frequency response of the discrete Ram-Lak filter (optionally windowed), zero-padded length."""
    length = 2 ** int(math.ceil(math.log2(2 * detectors)))
    n = torch.arange(-(length // 2), length // 2, dtype=torch.float64)
    h = torch.zeros(length, dtype=torch.float64)
    h[n == 0] = 0.25
    odd = (n % 2) != 0
    h[odd] = -1.0 / (math.pi * n[odd]) ** 2
    response = torch.fft.fft(torch.fft.ifftshift(h)).real
    if window == "hann":
        freq = torch.fft.fftfreq(length, dtype=torch.float64)
        response = response * (0.5 + 0.5 * torch.cos(2 * math.pi * freq))
    elif window != "ram-lak":
        raise ValueError(f"unknown FBP filter {window!r}; use 'ram-lak' or 'hann'")
    return response.to(device=device, dtype=dtype)


def filtered_back_projection(radon: SparseCSR, sinogram: torch.Tensor, window: str = "ram-lak") -> torch.Tensor:
    """Classical FBP with the adjoint of ``radon`` as the back-projector.

    Parameters
    ----------
    radon : SparseCSR
        From :func:`radon_matrix` (needs its ``angles`` and ``detectors``).
    sinogram : (A D,) tensor
        Measurements, angle-major.
    window : {"ram-lak", "hann"}

    Returns
    -------
    (N^2,) tensor
        The reconstruction, flattened like the image.
    """
    n_angles, d = len(radon.angles), radon.detectors
    sino = sinogram.reshape(n_angles, d)
    response = _ramp_filter(d, window, sinogram.dtype, sinogram.device)
    length = response.numel()
    spectrum = torch.fft.fft(F.pad(sino, (0, length - d)), dim=1) * response
    filtered = torch.fft.ifft(spectrum, dim=1).real[:, :d]
    return radon.rmatvec(filtered.reshape(-1).contiguous()) * (math.pi / n_angles)
