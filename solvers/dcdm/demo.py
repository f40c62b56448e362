"""``sciml demo dcdm``: the shipped DCDM model on a held-out scene and in a short smoke plume."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from sciml.io import write_vti
from sciml.linalg import cg
from sciml.linalg.multigrid import mgpcg
from sciml.plot import convergence_plot
from sciml.registry import DemoRow
from solvers.dcdm.plume import simulate_plume
from solvers.dcdm.scenes import get_scene
from solvers.dcdm.solver import DCDMSolver


def demo(out: Path, device: str = "cpu", n: int = 32, scene: str = "torus", plume_n: int = 24,
         plume_steps: int = 8) -> list[DemoRow]:
    """Solve one held-out scene with DCDM, CG and MG-PCG; run a short plume with DCDM.

    Parameters
    ----------
    out : Path
        Output folder: ``solution.vti``, ``convergence.png``, ``plume/plume.pvd`` (+ frames).
    device : str
    n : int
        Grid size of the single solve.
    scene : str
        Held-out scene name.
    plume_n, plume_steps : int
        Size and length of the smoke-plume run.

    Returns
    -------
    list of DemoRow
        The single solve (iterations vs CG, split into DCDM and multigrid-fallback
        iterations) and the plume (mean iterations per step vs CG, and how many steps
        needed the fallback).
    """
    out = Path(out)
    solver = DCDMSolver.from_pretrained(device=device)
    spec = get_scene(scene).at(n)
    A, b = spec.stencil(device=device), spec.rhs(seed=0).to(device)
    start = time.perf_counter()
    result = solver.solve(A, b, tol=1e-6)
    seconds = time.perf_counter() - start
    reference = cg(A, b, rtol=1e-6)
    multigrid = mgpcg(A, b, rtol=1e-6)
    files = [
        write_vti(out / "solution.vti", cell_data={"pressure": result.x.reshape(spec.shape).cpu(),
                                                   "rhs": b.reshape(spec.shape).cpu(),
                                                   "solid": torch.as_tensor(spec.solid, dtype=torch.uint8)},
                  spacing=(1.0 / n,) * 3),
        convergence_plot({"DCDM (U-Net)": result.residuals, "CG": reference.residuals,
                          "multigrid PCG": multigrid.residuals}, out / "convergence.png",
                         title=f"held-out scene '{scene}', {n}^3, true residuals"),
    ]
    split = f"{result.info['dcdm_iterations']} DCDM + {result.info['fallback_iterations']} MG"
    rows = [DemoRow("dcdm", f"{scene} {n}^3 held out: {split}", "iterations to 1e-6", result.iterations, "cg",
                    reference.iterations, seconds, files)]
    fallbacks = []

    def pressure_solve(A_, b_):
        solved = solver.solve(A_, b_, tol=1e-6)
        fallbacks.append(solved.info["fallback"] is not None)
        return solved
    plume = simulate_plume(plume_n, plume_steps, pressure_solve=pressure_solve, out_dir=out / "plume", device=device)
    baseline = simulate_plume(plume_n, plume_steps, device=device)
    rows.append(DemoRow("dcdm", f"plume {plume_n}^3: {sum(fallbacks)}/{plume_steps} steps used MG",
                        "mean iterations / step", sum(plume.iterations) / plume_steps, "cg",
                        sum(baseline.iterations) / plume_steps, sum(plume.solve_seconds), [plume.pvd]))
    return rows
