"""``sciml demo lpn``: denoise and deblur a held-out photograph with the shipped LPN, beside TV."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from sciml.linalg.imaging import GaussianBlur
from sciml.registry import DemoRow
from solvers.lpn import experiments as ex
from solvers.lpn.bench import SETTINGS
from solvers.lpn.data import heldout_images
from solvers.lpn.model import load_lpn
from solvers.lpn.pnp import lpn_denoiser, psnr


def image_panel(rows: list[dict[str, np.ndarray]], path: str | Path, title: str = "") -> Path:
    """Grayscale images in a grid (one row per dict, titles from the keys), saved as a PNG."""
    from sciml.plot import pyplot, save_figure
    plt = pyplot()
    cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.8 * cols, 2.9 * len(rows)), dpi=110, squeeze=False)
    for ax_row, row in zip(axes, rows):
        for ax in ax_row:
            ax.axis("off")
        for ax, (label, image) in zip(ax_row, row.items()):
            ax.imshow(np.clip(np.asarray(image), 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_title(label, fontsize=8)
    return save_figure(fig, path, title)


def demo(out: Path, device: str = "cpu", image: str = "camera", size: int = 128, sigma: float = 0.1,
         seed: int = 0) -> list[DemoRow]:
    """Denoise (sigma 0.1) and deblur (Gaussian sigma 1, noise 0.02) a held-out image.

    Parameters
    ----------
    out : Path
        Output folder: ``lpn_panel.png`` (clean / degraded / LPN / TV for both problems) and
        ``convergence.png`` (``||x_{k+1} - x_k|| / ||x_k||`` of PnP-ADMM).
    device : str
    image : str
        A held-out image name (``camera``, ``astronaut``, ``coffee``).
    size : int
        Centre crop of the half-resolution image.

    Returns
    -------
    list of DemoRow
        PSNR of the LPN and of the TV baseline for denoising and deblurring.
    """
    out = Path(out)
    model = load_lpn(device=device)
    full = heldout_images(256)[image]
    top, left = (full.shape[0] - size) // 2, (full.shape[1] - size) // 2
    clean = full[top:top + size, left:left + size]
    rng = np.random.default_rng(seed)
    noisy = clean + sigma * rng.standard_normal(clean.shape)
    start = time.perf_counter()
    denoised = lpn_denoiser(model)(torch.as_tensor(noisy)).numpy()
    seconds = time.perf_counter() - start
    from skimage.restoration import denoise_tv_chambolle
    tv_psnr, tv_weight = ex._tv_oracle(noisy, clean)
    tv = denoise_tv_chambolle(noisy, weight=tv_weight)
    A = GaussianBlur(clean.shape, 1.0, device=device)
    deblur = ex.inverse_problem(model, A, clean, 0.02, maxiter=30, seed=seed, tv_weights=(0.005, 0.01, 0.02),
                                **SETTINGS["deblurring"])
    res = deblur["results"]
    c = torch.as_tensor(clean)
    panel = image_panel([
        {"clean": clean, f"noisy {psnr(torch.as_tensor(noisy), c):.2f} dB": noisy,
         f"LPN {psnr(torch.as_tensor(denoised), c):.2f} dB": denoised, f"TV (best weight) {tv_psnr:.2f} dB": tv},
        {"clean": clean, f"blurred+noise {psnr(res['measured'], c):.2f} dB": res["measured"].numpy(),
         f"LPN PnP-ADMM {deblur['lpn_admm']['psnr']:.2f} dB": res["lpn_admm"].numpy(),
         f"TV-ADMM {deblur['tv_admm']['psnr']:.2f} dB": res["tv_admm"].numpy()},
    ], out / "lpn_panel.png",
        title=f"held-out '{image}': denoising (sigma {sigma}) and deblurring (blur 1, noise 0.02)")
    from sciml.plot import convergence_plot
    conv = convergence_plot({"LPN PnP-ADMM": deblur["lpn_admm"]["relative_step"],
                             "LPN PnP-PGD": deblur["lpn_pgd"]["relative_step"],
                             "TV-ADMM": deblur["tv_admm"]["relative_step"]}, out / "convergence.png",
                            title="deblurring: iterate change", ylabel="||x_{k+1} - x_k|| / ||x_k||")
    files = [panel, conv]
    return [DemoRow("lpn", f"denoise '{image}' {size}^2, sigma {sigma}", "PSNR [dB]",
                    psnr(torch.as_tensor(denoised), c), "TV (best weight)", tv_psnr, seconds, files),
            DemoRow("lpn", f"deblur '{image}' {size}^2, blur 1, noise 0.02", "PSNR [dB]", deblur["lpn_admm"]["psnr"],
                    "TV-ADMM", deblur["tv_admm"]["psnr"], deblur["lpn_admm"]["seconds"], files)]
