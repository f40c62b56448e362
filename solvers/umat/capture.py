"""``capture``: material maps and their uncertainty from one scanner image, at any resolution.

>>> from solvers.umat.capture import capture
>>> result = capture(image)                        # image: (3, H, W) or (B, 3, H, W), linear radiance
>>> result.normal.shape, result.uncertainty.shape  # (B, 3, H, W), (B, 1, H, W)
>>> result.export("out/")                          # 16-bit PNGs + maps.json (OpenGL normals)
>>> preview = result.rerender([[0.5, 0.3, 0.81]])  # (B, 3, H, W), the input image as albedo

The image is processed in overlapping ``tile x tile`` windows
(:func:`solvers.umat.tiling.tiled_apply`), so memory is bounded by the tile size. With
``uncertainty="tta"`` (default) or ``"mc_dropout"`` every tile is predicted several times
(:mod:`solvers.umat.uncertainty`); the mean and the per-pixel score are blended like the maps.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from solvers.umat.uncertainty import (
    DEFAULT_SCORE,
    DEFAULT_SHIFTS,
    DEFAULT_SHRINK,
    per_material_score,
    predict_mc_dropout,
    predict_tta,
    shrink_score,
)

__all__ = ["CaptureResult", "capture", "check_image"]

logger = logging.getLogger(__name__)

UNCERTAINTY_METHODS = ("tta", "mc_dropout", None)


@dataclass
class CaptureResult:
    """Output of :func:`capture`.

    Attributes
    ----------
    normal : (B, 3, H, W)
        Unit normals, OpenGL tangent space (+x right, +y up the image, +z out of the surface).
    roughness : (B, 1, H, W)
        GGX perceptual roughness in [0.05, 1].
    specular : (B, 1, H, W)
        F0 reflectance in [0, 1].
    albedo : (B, 3, H, W)
        The input image (the scanner's near-diffuse light stands in for the albedo).
    uncertainty : (B, 1, H, W) or None
        Per-pixel score (:mod:`solvers.umat.uncertainty`: normal spread in radians + std of
        roughness and specular); ``None`` when ``uncertainty=None``.
    material_score : (B,) or None
        Mean of ``uncertainty`` per image.
    method : str or None
        The uncertainty estimator used.
    """

    normal: Tensor
    roughness: Tensor
    specular: Tensor
    albedo: Tensor
    uncertainty: Tensor | None = None
    material_score: Tensor | None = None
    method: str | None = None

    def prediction(self) -> Tensor:
        """The maps stacked as ``(B, 5, H, W)``: normal, roughness, specular."""
        return torch.cat([self.normal, self.roughness, self.specular], 1)

    def maps(self):
        """A :class:`~solvers.umat.materials.MaterialMaps` (zero height) for rendering."""
        from solvers.umat.materials import MaterialMaps
        return MaterialMaps(albedo=self.albedo, normal=self.normal, roughness=self.roughness,
                            specular=self.specular, height=torch.zeros_like(self.roughness))

    def export(self, out_dir: str | Path, *, index: int = 0, exr: bool = False,
               convention: str = "opengl") -> dict[str, Path]:
        """Write image ``index`` as 16-bit PNG maps (+ EXR if asked) and ``maps.json``.

        Returns the written paths by name (see :func:`solvers.umat.export.export_maps`).
        """
        from solvers.umat.export import export_maps
        if not -self.normal.shape[0] <= index < self.normal.shape[0]:
            raise ValueError(f"index={index} is out of range for a batch of {self.normal.shape[0]} images")
        index = index % self.normal.shape[0]

        def one(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[index:index + 1].detach().to("cpu", torch.float32)
        return export_maps(out_dir, one(self.normal), one(self.roughness), one(self.specular),
                           uncertainty=one(self.uncertainty), albedo=one(self.albedo.clamp(0, 1)),
                           convention=convention, exr=exr)

    def rerender(self, light_dirs: Any, light_colors: Any = None) -> Tensor:
        """Render the captured material under directional lights.

        Parameters
        ----------
        light_dirs : (L, 3) or (B, L, 3), array-like
            Unit directions towards the lights (normalised here).
        light_colors : optional, as for :func:`solvers.umat.render.render`

        Returns
        -------
        (B, 3, H, W) linear radiance, the input image used as albedo.
        """
        from solvers.umat.render import render
        dirs = torch.as_tensor(light_dirs, dtype=self.normal.dtype, device=self.normal.device)
        if dirs.ndim == 1:
            dirs = dirs[None]
        dirs = dirs / torch.linalg.vector_norm(dirs, dim=-1, keepdim=True).clamp_min(1e-12)
        with torch.no_grad():
            return render(self.maps(), dirs, light_colors)


def check_image(image: Any) -> Tensor:
    """Validate a scanner image and return it as ``(B, 3, H, W)`` floating tensor.

    Accepts a torch tensor ``(3, H, W)`` / ``(B, 3, H, W)`` or a numpy array ``(H, W, 3)``
    (channel-last, as image libraries return it) / ``(3, H, W)`` / ``(B, 3, H, W)``.

    Raises
    ------
    ValueError
        For integer dtypes, wrong rank or channel count, NaN/Inf or negative values.
    TypeError
        If ``image`` is neither a tensor nor a numpy array.
    """
    if isinstance(image, np.ndarray):
        if not np.issubdtype(image.dtype, np.floating):
            raise ValueError(f"image has dtype {image.dtype}; capture expects linear float radiance, "
                             "e.g. image.astype(np.float32) / 255 (and undo the sRGB gamma)")
        if image.ndim == 3 and image.shape[-1] == 3 and image.shape[0] != 3:
            image = np.ascontiguousarray(image.transpose(2, 0, 1))
        image = torch.from_numpy(image)
    if not isinstance(image, Tensor):
        raise TypeError(f"image is a {type(image).__name__}; pass a torch tensor (B, 3, H, W) or a numpy array")
    if not image.is_floating_point():
        raise ValueError(f"image has dtype {image.dtype}; capture expects linear float radiance, "
                         "e.g. image.float() / 255 (and undo the sRGB gamma)")
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"image has shape {tuple(image.shape)}; expected (3, H, W) or (B, 3, H, W) with 3 colour "
                         "channels (convert grey images with image.expand(3, -1, -1), drop alpha channels)")
    if image.shape[-1] < 1 or image.shape[-2] < 1:
        raise ValueError(f"image has an empty spatial size {tuple(image.shape[-2:])}")
    if not torch.isfinite(image).all():
        raise ValueError("image contains NaN or infinite values; fix or mask them before capture")
    if (image < 0).any():
        raise ValueError(f"image has negative values (min {float(image.min()):.3g}); radiance must be >= 0, "
                         "clamp with image.clamp_min(0)")
    return image


def capture(image: Any, model: nn.Module | str | Path | None = None, *, tile: int = 128, overlap: int = 32,
            uncertainty: str | None = "tta", shifts: Sequence[tuple[int, int]] = DEFAULT_SHIFTS,
            mc_samples: int = 8, seed: int = 0, shrink: float = DEFAULT_SHRINK, score: str = DEFAULT_SCORE,
            tile_batch: int = 4) -> CaptureResult:
    """Predict normal, roughness and specular maps (and their uncertainty) from a scanner image.

    Parameters
    ----------
    image : (3, H, W) or (B, 3, H, W) tensor, or (H, W, 3) numpy array
        Linear (not gamma-encoded) radiance >= 0, any ``H, W``.
    model : UMatNet, str or Path, optional
        A network, a shipped name or a ``.safetensors`` path; the shipped ``"umat"`` by default.
        It runs in eval mode on the image's device and dtype (a copy is converted if needed;
        the caller's model keeps its device, dtype and train/eval mode).
    tile, overlap : int
        Tiled inference window and overlap (memory is bounded by the tile size).
    uncertainty : ``"tta"``, ``"mc_dropout"`` or None
        Test-time augmentation (u-flip x ``shifts``), MC dropout (``mc_samples`` passes), or none.
    shifts : sequence of (dy, dx)
        TTA shifts relative to the stride grid.
    mc_samples : int
    seed : int
        Seed of the MC-dropout masks.
    shrink : float
        Pull of the pixel score towards its mean over the whole image (after blending the
        tiles), see :func:`solvers.umat.uncertainty.shrink_score`; 0 keeps the raw spread.
    score : {"normal", "combined"}
        Spread of the normals only, or plus roughness and specular
        (:func:`solvers.umat.uncertainty.summarize_samples`).
    tile_batch : int
        Tiles per network call.

    Returns
    -------
    CaptureResult
    """
    image = check_image(image)
    if uncertainty not in UNCERTAINTY_METHODS:
        raise ValueError(f"uncertainty={uncertainty!r}; choose 'tta', 'mc_dropout' or None (ensembles: "
                         "solvers.umat.uncertainty.predict_ensemble)")
    if model is None or isinstance(model, (str, Path)):
        from solvers.umat.training import load_model
        model = load_model(model or "umat", image.device)
    param = next(model.parameters(), None)
    if param is not None and (param.device != image.device or param.dtype != image.dtype):
        model = copy.deepcopy(model).to(device=image.device, dtype=image.dtype)  # leave the caller's model alone
    was_training = model.training
    model.eval()
    generator = None
    if uncertainty == "mc_dropout":
        generator = torch.Generator(device=image.device).manual_seed(seed)

    def per_tile(x: Tensor) -> Tensor:
        if uncertainty is None:
            return model(x)
        if uncertainty == "tta":
            mean, spread = predict_tta(model, x, shifts=shifts, shrink=0.0, score=score)
        else:
            mean, spread = predict_mc_dropout(model, x, mc_samples, generator=generator, shrink=0.0,
                                              score=score)
        return torch.cat([mean, spread], 1)

    from solvers.umat.tiling import tiled_apply
    try:
        with torch.no_grad():
            out = tiled_apply(per_tile, image, tile=tile, overlap=overlap, batch_size=tile_batch,
                              renormalize_channels=slice(0, 3))
    finally:
        model.train(was_training)
    score = shrink_score(out[:, 5:6], shrink) if uncertainty is not None else None
    return CaptureResult(normal=out[:, 0:3], roughness=out[:, 3:4], specular=out[:, 4:5], albedo=image,
                         uncertainty=score, material_score=per_material_score(score) if score is not None else None,
                         method=uncertainty)
