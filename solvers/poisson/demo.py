"""``sciml demo poisson``: CG on a 32^3 box with a sphere and a plate, written for ParaView."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import scipy.sparse.linalg as spla
import torch

from sciml.benchmarks.linalg import sphere_obstacle_problem
from sciml.io import write_vti
from sciml.linalg import cg, pcg
from sciml.plot import convergence_plot, slice_plot
from sciml.registry import DemoRow


def demo(out: Path, device: str = "cpu", n: int = 32, rtol: float = 1e-6) -> list[DemoRow]:
    """Solve the demo Poisson problem with CG and Jacobi-PCG, compare with scipy, write files.

    Parameters
    ----------
    out : Path
        Output folder (``poisson.vti``, ``convergence.png``, ``slice.png``).
    device : str
    n : int
        Grid cells per side.
    rtol : float

    Returns
    -------
    list of DemoRow
    """
    out = Path(out)
    stencil, b = sphere_obstacle_problem(n, seed=0, device=device, smooth=2.0)
    start = time.perf_counter()
    result = cg(stencil, b, rtol=rtol)
    seconds = time.perf_counter() - start
    jacobi = pcg(stencil, b, rtol=rtol)
    scipy_history = _scipy_history(stencil.to_csr().to_scipy(), b.cpu().numpy(), rtol)

    grid = (n, n, n)
    solid = stencil.solid.cpu().numpy()
    pressure = result.x.reshape(grid).cpu()
    files = [
        write_vti(out / "poisson.vti", cell_data={"pressure": pressure, "rhs": b.reshape(grid).cpu(),
                                                  "solid": stencil.solid.cpu().to(torch.uint8)},
                  spacing=(1.0 / n,) * 3),
        convergence_plot({"sciml cg (stencil)": result.residuals, "sciml pcg (Jacobi)": jacobi.residuals,
                          "scipy cg": scipy_history}, out / "convergence.png",
                         title=f"Poisson {n}^3, sphere + plate, open top"),
        slice_plot({"pressure, plane y = 1/2 (x right, z up)": np.where(solid[:, n // 2, :], np.nan,
                                                                         pressure[:, n // 2, :].numpy()),
                    "solid cells": solid[:, n // 2, :]}, out / "slice.png"),
    ]
    return [DemoRow(solver="poisson", problem=f"{n}^3 sphere+plate, open top", metric="CG iterations to 1e-6",
                    value=result.iterations, baseline="scipy cg", baseline_value=len(scipy_history) - 1,
                    seconds=seconds, files=files)]


def _scipy_history(A, b: np.ndarray, rtol: float) -> np.ndarray:
    """Relative true residuals of ``scipy.sparse.linalg.cg`` after each iteration."""
    bnorm = np.linalg.norm(b)
    history = [1.0]
    spla.cg(A, b, rtol=rtol, maxiter=10 * b.size,
            callback=lambda xk: history.append(np.linalg.norm(b - A @ xk) / bnorm))
    return np.asarray(history)
