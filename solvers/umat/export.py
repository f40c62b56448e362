"""Export material maps: 16-bit PNG (always), 32-bit float EXR (when ``OpenEXR`` is installed).

PNG files are written by a small numpy + zlib encoder (Pillow and imageio cannot write 16-bit
RGB PNGs) and read back by the matching decoder, which handles any non-interlaced 8/16-bit
grey, grey+alpha, RGB or RGBA PNG. Values are linear (no gamma curve is applied or recorded);
16-bit quantisation is ``round(v * 65535)``, so a round trip is exact to ``0.5 / 65535``.

Normal maps are encoded as ``(n + 1) / 2`` in the OpenGL tangent-space convention (+X right,
+Y up = towards image row 0, +Z out of the surface; see :mod:`solvers.umat.materials`).
``maps.json`` records the convention, encodings and value ranges. EXR stores float32 values
unencoded (normals in [-1, 1]) and round-trips bit-exactly; it needs the optional PyPI
package ``openexr`` (``pip install openexr``). Every file is written atomically
(:func:`sciml.io.atomic_path`).
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sciml.io import atomic_path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}          # channels -> PNG colour type
_CHANNELS = {v: k for k, v in _COLOR_TYPES.items()}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png16(array: np.ndarray, *, compression: int = 6) -> bytes:
    """Encode ``(H, W)`` or ``(H, W, C)`` floats in [0, 1] (C in 1..4) as a 16-bit PNG.

    Values are clipped to [0, 1] and quantised to ``round(v * 65535)``. Rows use the PNG
    "Up" filter (good compression for smooth maps).
    """
    a = np.asarray(array, dtype=np.float64)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in _COLOR_TYPES or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"PNG data must be (H, W) or (H, W, C) with C in 1..4 and H, W >= 1, got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("PNG data contains NaN or inf; clean the map (e.g. np.nan_to_num) before saving")
    h, w, c = a.shape
    q = np.rint(np.clip(a, 0.0, 1.0) * 65535.0).astype(">u2")
    raw = q.reshape(h, w * c).view(np.uint8).reshape(h, w * c * 2)
    filtered = raw.copy()
    filtered[1:] = raw[1:] - raw[:-1]              # uint8 arithmetic wraps mod 256 (PNG "Up")
    types = np.full((h, 1), 2, dtype=np.uint8)
    types[0] = 0
    body = np.concatenate([types, filtered], axis=1).tobytes()
    ihdr = struct.pack(">IIBBBBB", w, h, 16, _COLOR_TYPES[c], 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(body, compression))
            + _chunk(b"IEND", b""))


def _unfilter(data: np.ndarray, h: int, stride: int, bpp: int) -> np.ndarray:
    rows = data.reshape(h, stride + 1)
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(h):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            cur = line.copy()
        elif kind == 1:       # Sub: cumulative sum per byte lane, mod 256
            cur = np.cumsum(line.reshape(-1, bpp).astype(np.int64), axis=0).astype(np.uint8).reshape(-1)
        elif kind == 2:       # Up
            cur = line + prev
        elif kind in (3, 4):  # Average / Paeth: sequential along the row
            cur = line.astype(np.int64)
            p = prev.astype(np.int64)
            for x in range(stride):
                left = cur[x - bpp] if x >= bpp else 0
                if kind == 3:
                    cur[x] = (cur[x] + (left + p[x]) // 2) & 0xFF
                else:
                    ul = p[x - bpp] if x >= bpp else 0
                    est = left + p[x] - ul
                    pa, pb, pc = abs(est - left), abs(est - p[x]), abs(est - ul)
                    pred = left if pa <= pb and pa <= pc else (p[x] if pb <= pc else ul)
                    cur[x] = (cur[x] + pred) & 0xFF
            cur = cur.astype(np.uint8)
        else:
            raise ValueError(f"corrupt PNG: unknown filter type {kind} in row {y}")
        out[y] = cur
        prev = cur
    return out


def decode_png(data: bytes) -> np.ndarray:
    """Decode a non-interlaced 8- or 16-bit grey/grey-alpha/RGB/RGBA PNG to floats in [0, 1].

    Returns
    -------
    ndarray, (H, W) float64 for one channel, else (H, W, C)
    """
    if data[:8] != PNG_SIGNATURE:
        raise ValueError("not a PNG file (bad signature)")
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("corrupt PNG: no IHDR chunk")
    w, h, depth, ctype, _, _, interlace = header
    if ctype not in _CHANNELS or depth not in (8, 16) or interlace:
        raise ValueError(f"unsupported PNG (bit depth {depth}, colour type {ctype}, interlace {interlace}); "
                         "only non-interlaced 8/16-bit grey/RGB(A) is read")
    c = _CHANNELS[ctype]
    bpp = c * depth // 8
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    if raw.size != h * (w * bpp + 1):
        raise ValueError(f"corrupt PNG: {raw.size} bytes of pixel data for a {w}x{h} image")
    pix = _unfilter(raw, h, w * bpp, bpp)
    if depth == 16:
        vals = pix.reshape(h, w * c * 2).view(">u2").astype(np.float64) / 65535.0
    else:
        vals = pix.astype(np.float64) / 255.0
    vals = vals.reshape(h, w, c)
    return vals[:, :, 0] if c == 1 else vals


def _to_numpy(array) -> np.ndarray:
    if isinstance(array, Tensor):
        array = array.detach().to("cpu", torch.float64).numpy()
    return np.asarray(array)


def save_png16(path: str | os.PathLike, array) -> Path:
    """Write ``array`` ((H, W) or (H, W, C), floats in [0, 1]) as a 16-bit PNG, atomically."""
    path = Path(path)
    data = encode_png16(_to_numpy(array))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def load_png16(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG written by :func:`save_png16` (or any 8/16-bit PNG) as floats in [0, 1]."""
    return decode_png(Path(path).read_bytes())


def exr_available() -> bool:
    """True when the optional ``OpenEXR`` Python package (PyPI ``openexr``) can be imported."""
    try:
        import OpenEXR  # noqa: F401
    except ImportError:
        return False
    return True


def _openexr():
    try:
        import OpenEXR
    except ImportError as err:
        raise ImportError("EXR export needs the optional package 'openexr' (pip install openexr); "
                          "or export 16-bit PNG only (exr=False)") from err
    return OpenEXR


def save_exr(path: str | os.PathLike, array) -> Path:
    """Write ``(H, W)`` or ``(H, W, C)`` (C in 1, 3, 4) float32 data as a ZIP-compressed EXR, atomically.

    One channel is stored as ``Y``, three as ``RGB``, four as ``RGBA``; values are stored
    exactly (float32). Raises ImportError naming the package when ``OpenEXR`` is missing.
    """
    exr = _openexr()
    a = np.ascontiguousarray(_to_numpy(array), dtype=np.float32)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    name = "Y" if a.ndim == 2 else {3: "RGB", 4: "RGBA"}.get(a.shape[2]) if a.ndim == 3 else None
    if name is None:
        raise ValueError(f"EXR data must be (H, W) or (H, W, C) with C in 1, 3, 4; got {a.shape}")
    header = {"compression": exr.ZIP_COMPRESSION, "type": exr.scanlineimage}
    path = Path(path)
    with atomic_path(path) as tmp, exr.File(header, {name: a}) as f:
        f.write(str(tmp))
    return path


def load_exr(path: str | os.PathLike) -> np.ndarray:
    """Read an EXR written by :func:`save_exr`: (H, W) for ``Y``, else (H, W, C) float32."""
    exr = _openexr()
    with exr.File(str(path)) as f:
        channels = f.channels()
        for name in ("RGBA", "RGB", "Y"):
            if name in channels:
                return np.array(channels[name].pixels, dtype=np.float32)
        raise ValueError(f"{path}: no Y/RGB/RGBA channel (found {sorted(channels)})")


def _image(t: Tensor, name: str, channels: int) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) tensor -> (H, W) or (H, W, C) numpy."""
    a = _to_numpy(t)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise ValueError(f"{name}: export one material at a time (batch of 1), got batch {a.shape[0]}")
        a = a[0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[0] != channels:
        raise ValueError(f"{name} must be ({channels}, H, W) or (1, {channels}, H, W), got {tuple(t.shape)}")
    return a[0] if channels == 1 else np.moveaxis(a, 0, -1)


def export_maps(out_dir: str | os.PathLike, normal: Tensor, roughness: Tensor, specular: Tensor, *,
                uncertainty: Tensor | None = None, albedo: Tensor | None = None, convention: str = "opengl",
                exr: bool = False) -> dict[str, Path]:
    """Write the maps of one material as 16-bit PNGs (and EXRs) plus ``maps.json``.

    Parameters
    ----------
    out_dir : path
        Folder (created if missing).
    normal : (1, 3, H, W) or (3, H, W)
        Unit tangent-space normals in the OpenGL convention (+Y up); written as ``(n + 1) / 2``.
        ``convention="directx"`` flips Y before writing (DirectX, +Y down).
    roughness, specular : (1, 1, H, W) or (1, H, W) or (H, W)
        Values in [0, 1] (roughness in [0.05, 1]).
    uncertainty : (1, 1, H, W), optional
        Per-pixel uncertainty (>= 0); the PNG stores ``u / max(u)``, the scale goes in maps.json
        (the EXR stores raw values).
    albedo : (1, 3, H, W), optional
        Linear albedo in [0, 1].
    convention : {"opengl", "directx"}
    exr : bool
        Also write float32 ``*.exr`` files (needs ``openexr``; ImportError naming it otherwise).

    Returns
    -------
    dict[str, Path]
        ``{"normal": ..., "roughness": ..., ..., "maps_json": ...}`` (EXR files as ``"normal_exr"`` etc.).
    """
    if convention not in ("opengl", "directx"):
        raise ValueError(f"convention must be 'opengl' (+Y up) or 'directx' (+Y down), got {convention!r}")
    if exr:
        _openexr()
    out_dir = Path(out_dir)
    n = _image(normal, "normal", 3).astype(np.float64)
    if convention == "directx":
        n = n * np.array([1.0, -1.0, 1.0])
    rough, spec = _image(roughness, "roughness", 1), _image(specular, "specular", 1)
    maps = {"normal": (n, (n + 1.0) / 2.0), "roughness": (rough, rough), "specular": (spec, spec)}
    meta: dict = {
        "format": "16-bit PNG, linear (no gamma), value = round(v * 65535)",
        "normal_convention": convention,
        "normal_axes": ("+X right, +Y up (towards image row 0), +Z out of the surface" if convention == "opengl"
                        else "+X right, +Y down (towards the last image row), +Z out of the surface"),
        "size": [int(n.shape[0]), int(n.shape[1])],
        "maps": {
            "normal": {"file": "normal.png", "encoding": "(n + 1) / 2", "range": [-1.0, 1.0], "channels": "XYZ"},
            "roughness": {"file": "roughness.png", "encoding": "identity", "range": [0.05, 1.0],
                          "meaning": "GGX perceptual roughness; alpha = roughness**2"},
            "specular": {"file": "specular.png", "encoding": "identity", "range": [0.0, 1.0],
                         "meaning": "F0 reflectance at normal incidence"},
        },
    }
    if albedo is not None:
        a = _image(albedo, "albedo", 3)
        maps["albedo"] = (a, a)
        meta["maps"]["albedo"] = {"file": "albedo.png", "encoding": "identity (linear)", "range": [0.0, 1.0]}
    if uncertainty is not None:
        u = _image(uncertainty, "uncertainty", 1).astype(np.float64)
        scale = float(u.max()) if u.size and u.max() > 0 else 1.0
        maps["uncertainty"] = (u, u / scale)
        meta["maps"]["uncertainty"] = {"file": "uncertainty.png", "encoding": "u / scale", "scale": scale,
                                       "range": [0.0, scale],
                                       "meaning": "per-pixel uncertainty (higher = less trusted)"}
    paths: dict[str, Path] = {}
    for name, (raw, encoded) in maps.items():
        paths[name] = save_png16(out_dir / f"{name}.png", encoded)
        if exr:
            paths[f"{name}_exr"] = save_exr(out_dir / f"{name}.exr", raw)
            meta["maps"][name]["exr"] = f"{name}.exr (float32, unencoded values)"
    with atomic_path(out_dir / "maps.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    paths["maps_json"] = out_dir / "maps.json"
    return paths
