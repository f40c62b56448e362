"""Material maps and the procedural textile generator.

Conventions (used by every UMat module)
---------------------------------------
* Images and maps are ``(B, C, H, W)`` float tensors, channel-first, linear radiance.
* Pixel ``(i, j)``: row ``i`` grows **downwards**, column ``j`` grows to the right.
* Normal maps are unit tangent-space vectors in the **OpenGL convention**: ``+X`` points to
  the right (increasing ``j``), ``+Y`` points **up the image (towards row 0, decreasing ``i``)**,
  ``+Z`` points out of the surface towards the viewer.  DirectX maps negate ``Y``
  (:func:`flip_normal_convention` converts either way).
* With a height field ``h`` (pixel units, larger = closer to the viewer) the normal is
  ``normalize(-dh/dx, -dh/dy, 1)`` with ``dh/dx = (h[i, j+1] - h[i, j-1]) / 2`` and
  ``dh/dy = (h[i-1, j] - h[i+1, j]) / 2`` (circular differences, so tiles wrap).
* Roughness is the perceptual GGX roughness in ``[0.05, 1]`` (``alpha = roughness**2``);
  specular is the Fresnel reflectance ``F0`` at normal incidence in ``[0, 1]``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from solvers.umat.weaves import (
    WEAVE_REPEATS,
    cell_grid,
    fbm_noise,
    hsv_to_rgb,
    knit_height,
    periodic_blur,
    weave_height,
)

KINDS = ("plain", "twill", "satin", "knit", "noise")
ROUGHNESS_MIN = 0.05


@dataclass
class MaterialMaps:
    """A batch of spatially varying materials (all tensors on one device, one dtype).

    Attributes
    ----------
    albedo : (B, 3, H, W)
        Diffuse colour in [0, 1].
    normal : (B, 3, H, W)
        Unit normals, OpenGL convention (see module docstring), ``z > 0``.
    roughness : (B, 1, H, W)
        Perceptual GGX roughness in [0.05, 1].
    specular : (B, 1, H, W)
        Normal-incidence reflectance F0 in [0, 1].
    height : (B, 1, H, W) or None
        Zero-mean height in pixel units (used only for occlusion); ``None`` for predicted maps.
    """

    albedo: Tensor
    normal: Tensor
    roughness: Tensor
    specular: Tensor
    height: Tensor | None = None

    def _map(self, fn) -> MaterialMaps:
        return MaterialMaps(**{f.name: (None if getattr(self, f.name) is None else fn(getattr(self, f.name)))
                               for f in fields(self)})

    def to(self, device=None, dtype=None) -> MaterialMaps:
        """Move every map to ``device`` and/or cast it to ``dtype``."""
        return self._map(lambda t: t.to(device=device, dtype=dtype))

    def detach(self) -> MaterialMaps:
        """Detach every map from the autograd graph."""
        return self._map(lambda t: t.detach())

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(B, H, W)``."""
        B, _, H, W = self.albedo.shape
        return B, H, W

    def __len__(self) -> int:
        return self.albedo.shape[0]

    def crop(self, top: int, left: int, h: int, w: int) -> MaterialMaps:
        """Crop rows ``top:top+h`` and columns ``left:left+w``; indices wrap around (maps tile).

        Raises
        ------
        ValueError
            If ``h`` or ``w`` is not positive or exceeds the map size.
        """
        _, H, W = self.shape
        if not (0 < h <= H and 0 < w <= W):
            raise ValueError(f"crop size ({h}, {w}) must be positive and at most the map size ({H}, {W})")
        dev = self.albedo.device
        rows = torch.remainder(torch.arange(top, top + h, device=dev), H)
        cols = torch.remainder(torch.arange(left, left + w, device=dev), W)
        if 0 <= top and top + h <= H and 0 <= left and left + w <= W:
            return self._map(lambda t: t[:, :, top:top + h, left:left + w])
        return self._map(lambda t: t.index_select(2, rows).index_select(3, cols))

    def __getitem__(self, index) -> MaterialMaps:
        """Batch slicing; an integer index keeps the batch dimension (``maps[i]`` has ``B = 1``)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return self._map(lambda t: t[index])

    def flip_u(self) -> MaterialMaps:
        """Mirror horizontally (``u -> -u``): the flip that preserves the scanner light."""
        out = self._map(lambda t: t.flip(-1))
        out.normal = out.normal * out.normal.new_tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1)
        return out

    def targets(self) -> Tensor:
        """Network targets ``(B, 5, H, W)``: normal (3), roughness (1), specular (1)."""
        return torch.cat([self.normal, self.roughness, self.specular], dim=1)

    @classmethod
    def from_targets(cls, targets: Tensor, albedo: Tensor, height: Tensor | None = None) -> MaterialMaps:
        """Build maps from a ``(B, 5, H, W)`` prediction and an ``(B, 3, H, W)`` albedo (e.g. the input)."""
        return cls(albedo=albedo, normal=targets[:, 0:3], roughness=targets[:, 3:4],
                   specular=targets[:, 4:5], height=height)

    @classmethod
    def cat(cls, items: Sequence[MaterialMaps]) -> MaterialMaps:
        """Concatenate along the batch dimension."""
        def join(name):
            parts = [getattr(m, name) for m in items]
            return None if any(p is None for p in parts) else torch.cat(parts, dim=0)
        return cls(**{f.name: join(f.name) for f in fields(cls)})


def normals_from_height(height: Tensor, strength: float | Tensor = 1.0) -> Tensor:
    """Unit OpenGL normals from a height field with circular central differences.

    Parameters
    ----------
    height : (B, 1, H, W)
        Height in pixel units (larger = towards the viewer).
    strength : float or tensor broadcastable to (B, 1, H, W)
        Multiplies the slopes (1 = geometric normals of ``height``).

    Returns
    -------
    (B, 3, H, W)
        ``normalize(-s dh/dx, -s dh/dy, 1)`` with ``+Y`` towards row 0.
    """
    if height.dim() != 4 or height.shape[1] != 1:
        raise ValueError(f"height must have shape (B, 1, H, W), got {tuple(height.shape)}; "
                         "add the channel axis with height.unsqueeze(1)")
    dhdx = 0.5 * (torch.roll(height, -1, dims=3) - torch.roll(height, 1, dims=3))
    dhdy = 0.5 * (torch.roll(height, 1, dims=2) - torch.roll(height, -1, dims=2))  # +Y = up = row - 1
    gx, gy = -strength * dhdx, -strength * dhdy
    inv = torch.rsqrt(gx * gx + gy * gy + 1.0)
    return torch.cat([gx * inv, gy * inv, inv], dim=1)


def flip_normal_convention(normal: Tensor) -> Tensor:
    """Convert ``(B, 3, H, W)`` normals OpenGL <-> DirectX (negate the Y channel); an involution."""
    return normal * normal.new_tensor([1.0, -1.0, 1.0]).view(1, 3, 1, 1)


def _sample_seed(seed: int, index: int) -> int:
    return (int(seed) * 1_000_003 + int(index) * 7_919 + 12_345) % (2 ** 62)


def _draw_params(kind: str, g: torch.Generator, H: int, W: int) -> dict:
    """Scalar parameters and noise fields of one material, from its own generator (CPU, float64)."""
    def uni(lo, hi):
        return lo + (hi - lo) * torch.rand((), generator=g, dtype=torch.float64).item()

    def pick(n):
        return int(torch.randint(n, (), generator=g).item())

    def sign():
        return 2.0 * pick(2) - 1.0

    p = {"kind": kind}
    period = math.exp(uni(math.log(4.0), math.log(16.0)))  # thread period in pixels
    aspect = uni(0.8, 1.25)
    if kind in WEAVE_REPEATS:
        R, step, k = WEAVE_REPEATS[kind][pick(len(WEAVE_REPEATS[kind]))]
        p.update(repeat=R, step=step, k=k, swap=float(pick(2)), width=uni(0.7, 1.0), crimp=uni(0.15, 0.4))
        p["n_u"] = R * max(1, round(W / (period * R)))
        p["n_v"] = R * max(1, round(H / (period * aspect * R)))
    else:
        p.update(repeat=1, step=1, k=1, swap=0.0, width=uni(0.55, 0.9), crimp=0.0)
        p["n_u"] = max(1, round(W / period))
        p["n_v"] = max(1, round(H / (period * aspect * (0.8 if kind == "knit" else 1.0))))
    p.update(
        slope=uni(0.15, 1.0),          # RMS slope of the height field (normal strength)
        detail=uni(0.0, 0.25),          # fBm share of the height
        beta=uni(2.0, 3.2),
        blur=uni(0.35, 0.8),
        rough=uni(0.2, 0.9), rough_delta=sign() * uni(0.04, 0.15), rough_height=sign() * uni(0.06, 0.2),
        spec=math.exp(uni(math.log(0.02), math.log(0.3))), spec_ratio=uni(0.5, 1.0),
        spec_height=uni(0.3, 0.9),
        hue=uni(0, 1), sat=uni(0, 1) ** 1.5 * 0.85, val=uni(0.15, 0.9),
        same=float(pick(2)), hue2=uni(0, 1), sat2=uni(0, 1) ** 1.5 * 0.85, val2=uni(0.15, 0.9),
        gap_dark=uni(0.0, 0.35), jitter=uni(0.0, 0.12), mottle=uni(0.0, 0.15),
    )
    p["white"] = torch.randn(3, H, W, generator=g, dtype=torch.float64)
    p["thread_u"] = torch.randn(max(W, 16), generator=g, dtype=torch.float64)
    p["thread_v"] = torch.randn(max(H, 16), generator=g, dtype=torch.float64)
    return p


def _structure(P: dict, kinds: list[str], H: int, W: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Height (cell units), thread mask and thread indices ``(B, H, W)`` for all samples."""
    u, v = cell_grid(P["n_u"], P["n_v"], (H, W))
    B = len(kinds)
    height, mask = torch.zeros(B, H, W, dtype=u.dtype), torch.zeros(B, H, W, dtype=u.dtype)
    ia, ib = torch.zeros(B, H, W, dtype=torch.long), torch.zeros(B, H, W, dtype=torch.long)
    woven = torch.tensor([k in WEAVE_REPEATS for k in kinds])
    knit = torch.tensor([k == "knit" for k in kinds])
    if woven.any():
        idx = woven.nonzero().flatten()
        sw = P["swap"][idx].view(-1, 1, 1) > 0.5
        uu, vv = torch.where(sw, v[idx], u[idx]), torch.where(sw, u[idx], v[idx])
        h, m, a, b = weave_height(uu, vv, P["repeat"][idx], P["step"][idx], P["k"][idx],
                                  P["width"][idx], P["crimp"][idx])
        a, b = torch.where(sw, b, a), torch.where(sw, a, b)  # back to (column thread, row thread)
        height[idx], mask[idx], ia[idx], ib[idx] = h, m, a, b
    if knit.any():
        idx = knit.nonzero().flatten()
        h, m, a, b = knit_height(u[idx], v[idx], P["width"][idx])
        height[idx], mask[idx], ia[idx], ib[idx] = h, m, a, b
    return height, mask, ia, ib


def _col(x: Tensor) -> Tensor:
    """Per-sample parameter ``(B,)`` -> ``(B, 1, 1, 1)``."""
    return x.view(-1, 1, 1, 1)


def _height_field(P: dict, kinds: list[str], h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Final height ``(B, 1, H, W)`` in pixels (zero mean, RMS slope ``P["slope"]``), thread mask,
    and the normalised structure height ``h01`` in [0, 1] (before detail and blur)."""
    is_noise = torch.tensor([k == "noise" for k in kinds]).view(-1, 1, 1)
    h = torch.where(is_noise, fbm_noise(P["white"][:, 0], P["beta"]), h).unsqueeze(1)
    mask = torch.where(is_noise, torch.sigmoid(4.0 * fbm_noise(P["white"][:, 1], P["beta"], cutoff=0.25)), mask)
    lo = h.amin(dim=(2, 3), keepdim=True)
    h01 = (h - lo) / (h.amax(dim=(2, 3), keepdim=True) - lo).clamp_min(1e-9)
    detail = fbm_noise(P["white"][:, 2], P["beta"] - 0.8).unsqueeze(1)
    h = periodic_blur(h01 + 0.25 * _col(P["detail"]) * detail, P["blur"])
    gx = 0.5 * (torch.roll(h, -1, 3) - torch.roll(h, 1, 3))
    gy = 0.5 * (torch.roll(h, -1, 2) - torch.roll(h, 1, 2))
    rms = torch.sqrt((gx ** 2 + gy ** 2).mean(dim=(1, 2, 3), keepdim=True)).clamp_min(1e-9)
    height = (h - h.mean(dim=(2, 3), keepdim=True)) * _col(P["slope"]) / rms
    return height, mask.unsqueeze(1), h01


def _appearance(P: dict, mask: Tensor, h01: Tensor, ia: Tensor, ib: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Albedo ``(B, 3, H, W)``, roughness and specular ``(B, 1, H, W)`` from the thread mask and height."""
    B, _, H, W = mask.shape
    # two thread colours (the second a variation of the first, or independent)
    c1 = hsv_to_rgb(P["hue"], P["sat"], P["val"])
    alt = hsv_to_rgb(torch.remainder(P["hue"] + 0.1 * (P["hue2"] - 0.5), 1.0), P["sat"],
                     P["val"] * (0.6 + 0.6 * P["hue2"]))
    c2 = torch.where(P["same"].view(-1, 1) > 0.5, alt, hsv_to_rgb(P["hue2"], P["sat2"], P["val2"]))
    albedo = mask * c1.view(B, 3, 1, 1) + (1 - mask) * c2.view(B, 3, 1, 1)
    # per-thread brightness jitter, low-frequency mottling, darker gaps
    tu = torch.gather(P["thread_u"], 1, torch.remainder(ia, P["n_u"].long().view(-1, 1, 1)).flatten(1))
    tv = torch.gather(P["thread_v"], 1, torch.remainder(ib, P["n_v"].long().view(-1, 1, 1)).flatten(1))
    jitter = mask * tu.view(B, 1, H, W) + (1 - mask) * tv.view(B, 1, H, W)
    mottle = fbm_noise(P["white"][:, 1], torch.full_like(P["beta"], 3.0)).unsqueeze(1)
    albedo = albedo * (1 + _col(P["jitter"]) * jitter) * (1 + _col(P["mottle"]) * mottle)
    albedo = (albedo * (1 - _col(P["gap_dark"]) * (1 - h01))).clamp(0.01, 1.0)
    # roughness and specular follow the thread mask and the height
    rough = _col(P["rough"]) + _col(P["rough_delta"]) * (1 - mask) + _col(P["rough_height"]) * (h01 - 0.5)
    rough = (rough + 0.03 * mottle).clamp(ROUGHNESS_MIN, 1.0)
    spec = _col(P["spec"]) * (mask + _col(P["spec_ratio"]) * (1 - mask))
    spec = (spec * (1 + _col(P["spec_height"]) * (h01 - 0.5))).clamp(0.0, 1.0)
    return albedo, rough, spec


def generate_materials(n: int, size: int | tuple[int, int], *, kinds: Sequence[str] | str | None = None,
                       seed: int = 0, device=None, dtype: torch.dtype = torch.float32) -> MaterialMaps:
    """Procedural, tileable textile materials.

    Sample ``i`` depends only on ``(seed, i, size, its kind)``: it is drawn from its own
    generator, so ``generate_materials(8, s, seed=3)[5]`` equals the sixth material of any longer
    batch with the same seed and kinds.  Kind ``i`` is ``kinds[(seed + i) % len(kinds)]``.

    Each material has a height field (woven: plain/twill/satin over/under threads; knit: V
    stitches; noise: fBm), an fBm detail layer, a periodic blur, then normals from the height;
    the thread mask and the height drive the colour (two thread colours, darker gaps,
    per-thread jitter), the roughness and the specular.  Ranges: thread period 4..16 px
    (rounded so the tile wraps), RMS slope 0.15..1, base roughness 0.2..0.9, base specular
    0.02..0.3 (log-uniform).

    Parameters
    ----------
    n : int
        Number of materials.
    size : int or (H, W)
        Map size in pixels (any, odd included; at least 4).
    kinds : sequence of {"plain", "twill", "satin", "knit", "noise"}, optional
        Kinds to cycle through; all of them by default.
    seed : int
    device, dtype
        Where the maps live.  Random numbers are drawn on the CPU in float64; the maps are
        computed on the CPU in float64 when ``dtype`` is float64, else in float32, then moved.

    Returns
    -------
    MaterialMaps
        ``B = n`` maps of size ``(H, W)``.
    """
    H, W = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if n < 1 or H < 4 or W < 4:
        raise ValueError(f"need n >= 1 and a size of at least 4x4, got n={n}, size=({H}, {W})")
    kinds = KINDS if kinds is None else ((kinds,) if isinstance(kinds, str) else tuple(kinds))
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"unknown material kinds {bad}; choose from {KINDS}")
    kind_of = [kinds[(seed + i) % len(kinds)] for i in range(n)]
    params = [_draw_params(k, torch.Generator().manual_seed(_sample_seed(seed, i)), H, W)
              for i, k in enumerate(kind_of)]
    wd = torch.float64 if dtype == torch.float64 else torch.float32  # working precision
    P = {key: (torch.stack([p[key] for p in params]) if isinstance(params[0][key], Tensor)
               else torch.tensor([p[key] for p in params], dtype=torch.float64))
         for key in params[0] if key != "kind"}
    P = {key: (val.long() if key in ("repeat", "step", "k") else val.to(wd)) for key, val in P.items()}

    h, mask, ia, ib = _structure(P, kind_of, H, W)
    height, mask, h01 = _height_field(P, kind_of, h, mask)
    albedo, rough, spec = _appearance(P, mask, h01, ia, ib)
    normal = normals_from_height(height)
    maps = MaterialMaps(albedo=albedo, normal=normal, roughness=rough, specular=spec, height=height)
    return maps.to(device=device, dtype=dtype)
