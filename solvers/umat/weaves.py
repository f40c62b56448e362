"""Periodic height-field generators for textiles: woven (plain/twill/satin), knit and fBm noise.

All generators work on a batch of tiles with per-sample parameters given as tensors of shape
``(B,)`` and are periodic by construction: the height is a function of the cell coordinates
``u = (j + 1/2) * n_u / W`` and ``v = (i + 1/2) * n_v / H`` (``j`` column, ``i`` row), and the
thread counts ``n_u, n_v`` are whole multiples of the weave repeat, so the tile wraps around.

Heights here are in *cell* units (one thread period = 1); :mod:`solvers.umat.materials`
scales them to pixels.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

#: Weave repeats ``(R, step, k)``: warp thread ``a`` is over weft thread ``b`` when
#: ``(a * step - b) mod R < k``.  Plain = 1/1, twills 2/1, 1/2, 2/2, 3/1; satins 5- and 8-harness.
WEAVE_REPEATS: dict[str, list[tuple[int, int, int]]] = {
    "plain": [(2, 1, 1)],
    "twill": [(3, 1, 1), (3, 1, 2), (4, 1, 2), (4, 1, 1), (4, 1, 3)],
    "satin": [(5, 2, 1), (5, 2, 4), (5, 3, 1), (5, 3, 4), (8, 3, 1), (8, 3, 7)],
}


def cell_grid(n_u: Tensor, n_v: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Cell coordinates of the pixel centres.

    Parameters
    ----------
    n_u, n_v : (B,)
        Number of cells (threads) across the width and the height.
    size : (H, W)

    Returns
    -------
    u, v : (B, H, W)
        ``u`` grows to the right (columns), ``v`` grows downwards (rows).
    """
    H, W = size
    dt, dev = n_u.dtype, n_u.device
    x = (torch.arange(W, dtype=dt, device=dev) + 0.5) / W
    y = (torch.arange(H, dtype=dt, device=dev) + 0.5) / H
    u = x.view(1, 1, W) * n_u.view(-1, 1, 1)
    v = y.view(1, H, 1) * n_v.view(-1, 1, 1)
    return u.expand(-1, H, W), v.expand(-1, H, W)


def _smoothstep(t: Tensor) -> Tensor:
    return 0.5 - 0.5 * torch.cos(math.pi * t)


def _profile(f: Tensor, width: Tensor) -> Tensor:
    """Cross-section of a thread of relative ``width`` centred at ``f = 0``: 1 on its axis, 0 off it."""
    return torch.clamp(1.0 - (2.0 * f / width) ** 2, min=0.0).pow(0.6)


def weave_height(u: Tensor, v: Tensor, repeat: Tensor, step: Tensor, k: Tensor, width: Tensor,
                 crimp: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Height of a woven fabric: warp threads along ``v`` (columns), weft threads along ``u``.

    At the crossing of warp ``a = floor(u)`` and weft ``b = floor(v)`` the warp lies on top when
    ``(a * step - b) mod repeat < k``; between crossings each thread's elevation is blended with a
    cosine, so floats (several "over" in a row) stay up.  Each thread is a tube of radius 1/2
    (scaled by ``width``) whose axis rises and falls by ``crimp``.

    Parameters
    ----------
    u, v : (B, H, W)
        Cell coordinates from :func:`cell_grid`.
    repeat, step, k : (B,) integer tensors
        Weave repeat (see :data:`WEAVE_REPEATS`).
    width : (B,)
        Thread width as a fraction of the period (gaps between threads when < 1).
    crimp : (B,)
        Over/under amplitude of the thread axis (cell units).

    Returns
    -------
    height : (B, H, W)
        Top surface in cell units.
    warp_mask : (B, H, W)
        1 where the warp thread is visible, 0 where the weft is.
    a, b : (B, H, W) long
        Warp and weft thread indices (for per-thread colour jitter).
    """
    R, st, kk = (t.view(-1, 1, 1) for t in (repeat, step, k))
    w, c = width.view(-1, 1, 1), crimp.view(-1, 1, 1)

    def over(ai: Tensor, bi: Tensor) -> Tensor:  # +1 where the warp is on top, -1 below
        return torch.where(torch.remainder(ai * st - bi, R) < kk, 1.0, -1.0).to(u.dtype)

    a, b = torch.floor(u).long(), torch.floor(v).long()
    fu, fv = u - a, v - b
    # warp (index a) elevation along v: blend between weft crossings b0 and b0 + 1
    tv = v - 0.5
    b0 = torch.floor(tv).long()
    wv = _smoothstep(tv - b0)
    warp_axis = c * ((1 - wv) * over(a, b0) + wv * over(a, b0 + 1))
    # weft (index b) elevation along u: minus the warp state at its crossings
    tu = u - 0.5
    a0 = torch.floor(tu).long()
    wu = _smoothstep(tu - a0)
    weft_axis = -c * ((1 - wu) * over(a0, b) + wu * over(a0 + 1, b))
    warp_top = warp_axis + 0.5 * _profile(fu - 0.5, w)
    weft_top = weft_axis + 0.5 * _profile(fv - 0.5, w)
    floor = -(c + 0.1)
    warp_top = torch.where(_profile(fu - 0.5, w) > 0, warp_top, floor)
    weft_top = torch.where(_profile(fv - 0.5, w) > 0, weft_top, floor)
    height = torch.maximum(torch.maximum(warp_top, weft_top), floor.expand_as(warp_top))
    warp_mask = (warp_top >= weft_top).to(u.dtype)
    return height, warp_mask, a, b


def knit_height(u: Tensor, v: Tensor, width: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Height of a weft-knit jersey face: columns (wales) of V-shaped stitches.

    Each stitch has two legs that run from the outer top of its cell to the centre bottom and
    reach 30 % into the next course, where they overlap the stitch below (so the field is
    continuous across courses).

    Parameters
    ----------
    u, v : (B, H, W)
        Cell coordinates; one cell is one stitch (wale ``floor(u)``, course ``floor(v)``).
    width : (B,)
        Leg width as a fraction of the half cell.

    Returns
    -------
    height : (B, H, W)
        Top surface in cell units.
    yarn_mask : (B, H, W)
        Soft 0..1 coverage by yarn (0 in the gaps).
    a, b : (B, H, W) long
        Wale and course indices.
    """
    w = 0.5 * width.view(-1, 1, 1)
    a, b = torch.floor(u).long(), torch.floor(v).long()
    fu, fv = u - a, v - b
    span = 1.3
    best = torch.full_like(u, -0.15)
    for t in (fv, fv + 1.0):  # this course's stitch, and the one from the course above
        inside = (t >= 0) & (t <= span)
        env = torch.where(inside, torch.sin(math.pi * torch.clamp(t, 0, span) / span), 0.0)
        centre = 0.12 + 0.33 * torch.clamp(t, 0, 1.0)
        for x in (fu - centre, fu - (1.0 - centre)):
            leg = 0.5 * _profile(x, w) * (0.4 + 0.6 * env) - 0.15 * (1 - env)
            leg = torch.where(inside & (_profile(x, w) > 0), leg, torch.full_like(u, -0.15))
            best = torch.maximum(best, leg)
    yarn = torch.clamp((best + 0.15) / 0.2, 0.0, 1.0)
    return best, yarn, a, b


def fbm_noise(white: Tensor, beta: Tensor, cutoff: float | Tensor = 1.0) -> Tensor:
    """Periodic fractional-Brownian noise: white noise shaped to a ``1/f**beta`` power spectrum.

    Parameters
    ----------
    white : (B, H, W)
        Gaussian white noise (drawn by the caller from its seeded generator).
    beta : (B,)
        Spectral exponent (2 = Brownian, larger = smoother).
    cutoff : float or (B,)
        Frequencies above ``cutoff * Nyquist`` are removed (1 keeps all).

    Returns
    -------
    (B, H, W)
        Zero mean, unit standard deviation, tileable.
    """
    _, H, W = white.shape
    spec = torch.fft.rfft2(white)
    fy = torch.fft.fftfreq(H, dtype=white.dtype, device=white.device).view(1, H, 1)
    fx = torch.fft.rfftfreq(W, dtype=white.dtype, device=white.device).view(1, 1, -1)
    f = torch.sqrt(fx ** 2 + fy ** 2)
    f = torch.where(f > 0, f, torch.ones_like(f))
    amp = f.pow(-0.5 * beta.view(-1, 1, 1))
    amp = amp * (f <= 0.5 * torch.as_tensor(cutoff, dtype=white.dtype, device=white.device).view(-1, 1, 1))
    amp[:, 0, 0] = 0.0
    out = torch.fft.irfft2(spec * amp, s=(H, W))
    return out / out.flatten(1).std(dim=1).clamp_min(1e-12).view(-1, 1, 1)


def periodic_blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Circular Gaussian blur of ``x : (B, C, H, W)`` with per-sample ``sigma : (B,)`` in pixels (FFT)."""
    H, W = x.shape[-2:]
    fy = torch.fft.fftfreq(H, dtype=x.dtype, device=x.device).view(1, 1, H, 1)
    fx = torch.fft.rfftfreq(W, dtype=x.dtype, device=x.device).view(1, 1, 1, -1)
    s2 = (sigma.to(x.dtype).view(-1, 1, 1, 1) * 2 * math.pi) ** 2
    gain = torch.exp(-0.5 * s2 * (fx ** 2 + fy ** 2))
    return torch.fft.irfft2(torch.fft.rfft2(x) * gain, s=(H, W))


def hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """Convert hue/saturation/value in [0, 1], each ``(B,)``, to RGB ``(B, 3)``."""
    k = torch.tensor([5.0, 3.0, 1.0], dtype=h.dtype, device=h.device)
    kk = torch.remainder(k.view(1, 3) + 6.0 * h.view(-1, 1), 6.0)
    f = torch.clamp(torch.minimum(kk, 4.0 - kk), 0.0, 1.0)
    return v.view(-1, 1) - v.view(-1, 1) * s.view(-1, 1) * f
