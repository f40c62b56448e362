"""Small matplotlib helpers (Agg backend, atomic PNG writes) shared by the demos."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sciml.io.atomic import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (imported lazily)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: str | Path, title: str | None = None, dpi: int | None = None) -> Path:
    """Give ``fig`` its title, lay it out, write it atomically as a PNG and close it.

    Parameters
    ----------
    fig : matplotlib Figure
    path : str or Path
    title : str, optional
        Figure title (``suptitle``); none when ``None``.
    dpi : int, optional
        Resolution; the figure's own by default.

    Returns
    -------
    Path
    """
    if title is not None:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    pyplot().close(fig)
    return Path(path)


def convergence_plot(histories: dict[str, "np.ndarray"], path: str | Path, title: str = "",
                     ylabel: str = "relative residual ||b - Ax|| / ||b||") -> Path:
    """Plot residual histories on a log scale and save them as a PNG.

    Parameters
    ----------
    histories : dict of label -> (iterations + 1,) array
    path : str or Path
        Destination ``.png`` (written atomically).
    title, ylabel : str
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, values in histories.items():
        values = np.asarray(values, dtype=float)
        ax.semilogy(np.arange(values.size), values, label=f"{label} ({values.size - 1} it.)")
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def slice_plot(images: dict[str, "np.ndarray"], path: str | Path, title: str = "") -> Path:
    """Show 2-D arrays side by side with colour bars and save them as a PNG.

    Parameters
    ----------
    images : dict of label -> (H, W) array
    path : str or Path
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, len(images), figsize=(4 * len(images), 3.6), dpi=120, squeeze=False)
    for ax, (label, image) in zip(axes[0], images.items()):
        shown = ax.imshow(np.asarray(image).T, origin="lower", cmap="viridis")
        ax.set_title(label)
        fig.colorbar(shown, ax=ax, shrink=0.8)
    return save_figure(fig, path, title)
