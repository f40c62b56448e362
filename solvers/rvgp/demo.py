"""``sciml demo rvgp``: inpaint a vector field around a singularity on a sphere."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from sciml.registry import DemoRow


def _plot(path: Path, points, truth, pred, variance, train, hole) -> Path:
    from sciml.plot import pyplot, save_figure
    plt = pyplot()

    top = points[:, 2] > 0.3
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    for ax, field, title in ((axes[0], truth, "truth (dots: training points)"),
                             (axes[1], pred, "RVGP mean (colour: posterior variance)")):
        sel = top
        if field is pred:
            sc = ax.scatter(points[sel, 0], points[sel, 1], c=variance[sel], s=8, cmap="viridis")
            fig.colorbar(sc, ax=ax, shrink=0.8)
        else:
            tr = np.zeros(len(points), bool)
            tr[train] = True
            ax.scatter(points[sel & tr, 0], points[sel & tr, 1], s=3, c="0.6")
        ax.quiver(points[sel, 0], points[sel, 1], field[sel, 0], field[sel, 1], angles="xy", width=0.003)
        theta = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.sin(hole) * np.cos(theta), np.sin(hole) * np.sin(theta), "r--", lw=1)
        ax.set_aspect("equal")
        ax.set_title(title)
    return save_figure(fig, path, "sphere seen from +z; red: removed cap around the index +1 zero", dpi=110)


def demo(out: Path, device: str = "cpu", n: int = 1500, cap: float = 0.35) -> list[DemoRow]:
    """Fit RVGP to the source field on a sphere with a cap removed around the north pole.

    Writes ``rvgp_sphere.vtp`` (prediction, variance, training points, truth) and
    ``rvgp_sphere.png``; the row compares the winding number on a ring inside the hole and
    the relative L2 error in the hole with the Euclidean RBF GP.
    """
    from solvers.rvgp.experiments import singularity_inpainting
    from solvers.rvgp.export import write_prediction
    from solvers.rvgp.fields import cap_mask
    from solvers.rvgp.metrics import relative_l2
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    row = singularity_inpainting("sphere-source", n=n, cap=cap, device=device, rank=80,
                                 euclid_kwargs={"max_iter": 20, "lengthscales": [0.5]})
    seconds = time.perf_counter() - start
    gp = row["_gp"]
    points = gp.manifold.points
    truth = np.array([0.0, 0.0, 1.0]) - points[:, 2:3] * points
    pred = gp.predict()
    train = gp._data["index"].cpu().numpy()
    hole = np.flatnonzero(cap_mask(points, [0, 0, 1], cap))
    vtp = write_prediction(out / "rvgp_sphere.vtp", points, pred, train, truth[train], truth=truth)
    png = _plot(out / "rvgp_sphere.png", points, truth, pred.mean.cpu().numpy(), pred.variance.cpu().numpy(), train,
                cap)
    err = relative_l2(pred.mean.cpu().numpy()[hole], truth[hole])
    return [DemoRow("rvgp", f"sphere source field, {cap} rad cap removed", "winding in hole", row["winding_rvgp"],
                    "Euclidean RBF GP", row.get("winding_euclid", float("nan")), seconds, [vtp, png]),
            DemoRow("rvgp", f"sphere source field, {cap} rad cap removed", "rel. L2 in hole", err,
                    "Euclidean RBF GP", row.get("euclid_rel_l2", float("nan")), seconds, [])]
