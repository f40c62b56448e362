"""``sciml demo umat``: capture a generated 1024 x 1024 textile with the shipped model.

Writes the 16-bit PNG maps (``normal.png``, ``roughness.png``, ``specular.png``,
``uncertainty.png``, ``albedo.png`` + ``maps.json``), a re-rendering under a held-out light
(``rerender.png``, ``rerender_truth.png``) and a side-by-side figure (``capture.png``).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from sciml.plot import pyplot, save_figure
from sciml.registry import DemoRow

DEMO_SEED = 2_000_100  # held-out range (>= training.TRAIN_SEED_LIMIT)


def _display(rgb: torch.Tensor) -> np.ndarray:
    """Linear ``(3, H, W)`` radiance -> sRGB-ish ``(H, W, 3)`` in [0, 1] for viewing."""
    x = rgb.detach().float().clamp_min(0).permute(1, 2, 0).cpu().numpy()
    x = x / max(float(np.percentile(x, 99.5)), 1e-6)
    return np.clip(x, 0, 1) ** (1 / 2.2)


def demo(out: Path, device: str = "cpu", size: int = 1024, kind: str = "twill", weights: str = "umat",
         tile: int = 128, overlap: int = 32, shifts: tuple = ((0, 0),)) -> list[DemoRow]:
    """Generate a held-out textile, capture it with TTA uncertainty, write maps and previews.

    Parameters
    ----------
    out : Path
        Output folder.
    device : str
    size : int
        Image side in pixels.
    kind : str
        Material kind of :func:`~solvers.umat.materials.generate_materials`.
    weights : str
        Shipped model name or path.
    tile, overlap : int
        Tiled inference.
    shifts : sequence of (dy, dx)
        TTA shifts, each run with and without the horizontal flip (default: the flip alone,
        2 passes, to stay under a minute on one CPU core).

    Returns
    -------
    list of DemoRow
        Normal angular error (degrees) of the capture vs the flat-normal baseline.
    """
    from solvers.umat.capture import capture
    from solvers.umat.export import save_png16
    from solvers.umat.materials import generate_materials
    from solvers.umat.render import heldout_lights, render, scanner_image
    from solvers.umat.training import load_model
    from solvers.umat.uncertainty import angular_error_deg

    out = Path(out)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    maps = generate_materials(1, size, kinds=(kind,), seed=DEMO_SEED, device=device)
    image = scanner_image(maps)
    model = load_model(weights, device)
    started = time.perf_counter()
    result = capture(image, model, tile=tile, overlap=overlap, uncertainty="tta", shifts=shifts)
    seconds = time.perf_counter() - started
    files = list(result.export(out).values())
    light = heldout_lights(device=device, dtype=image.dtype)[:1]
    preview = result.rerender(light)
    with torch.no_grad():
        truth = render(maps, light)
    files.append(save_png16(out / "rerender.png", _display(preview[0])))
    files.append(save_png16(out / "rerender_truth.png", _display(truth[0])))
    files.append(save_png16(out / "input.png", _display(image[0])))
    error = angular_error_deg(result.normal, maps.normal)
    flat = torch.zeros_like(maps.normal)
    flat[:, 2] = 1
    flat_error = float(angular_error_deg(flat, maps.normal).mean())

    plt = pyplot()
    def rgb(normal: torch.Tensor) -> np.ndarray:
        return (normal[0].permute(1, 2, 0).cpu().numpy() + 1) / 2
    panels = [("scanner input", _display(image[0])), ("normal (pred)", rgb(result.normal)),
              ("normal (truth)", rgb(maps.normal)),
              ("roughness", result.roughness[0, 0].cpu().numpy()), ("specular", result.specular[0, 0].cpu().numpy()),
              ("uncertainty", result.uncertainty[0, 0].cpu().numpy()),
              ("normal error [deg]", error[0, 0].cpu().numpy()),
              ("re-render (pred)", _display(preview[0])), ("re-render (truth)", _display(truth[0]))]
    fig, axes = plt.subplots(3, 3, figsize=(12, 12), dpi=100)
    crop = slice(0, min(size, 256))  # zoom on a corner so the weave is visible
    for ax, (title, img) in zip(axes.flat, panels):
        shown = ax.imshow(img[crop, crop], cmap="viridis" if img.ndim == 2 else None,
                          vmin=0 if img.ndim == 2 and title in ("roughness", "specular") else None,
                          vmax=1 if img.ndim == 2 and title in ("roughness", "specular") else None)
        ax.set_title(title)
        ax.axis("off")
        if img.ndim == 2:
            fig.colorbar(shown, ax=ax, shrink=0.8)
    files.append(save_figure(fig, out / "capture.png",
                             title=f"UMat capture of a {size}x{size} {kind} (top-left 256 px shown): normal error "
                                   f"{float(error.mean()):.1f} deg vs flat {flat_error:.1f} deg"))
    return [DemoRow("umat", f"{kind} textile {size}x{size}, tiled TTA capture", "normal error [deg]",
                    float(error.mean()), "flat normals", flat_error, seconds, files)]
