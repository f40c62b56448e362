"""``sciml bench dcdm``: DCDM against classical Poisson solvers on held-out scenes, in one run.

For every grid size and held-out scene (never used in training) the same float64 matrix
and right-hand side (divergence of a random smooth velocity) go to

* DCDM with each shipped network (``dcdm-paper``: the paper's CNN; ``dcdm-unet``,
  ``dcdm-recursive`` and ``dcdm-recursive-gpu``: ours),
* our CG (matrix-free stencil) and our geometric-multigrid PCG (``sciml.linalg.multigrid``),
* ``scipy.sparse.linalg.cg`` and pyamg smoothed-aggregation PCG (CPU only, ``bench`` extra).

Every row reports iterations, setup / solve / total time and the *true* final residual;
DCDM rows also split their time into network, matvec and orthogonalisation.
"""
from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from sciml.benchmarks.linalg import mgpcg_row, pyamg_row, result_row, scipy_cg_row, true_residual
from sciml.benchmarks.table import format_table, number
from sciml.benchmarks.timing import median_time, synchronize
from sciml.linalg import cg
from solvers.dcdm.network import RecursiveUNetDCDMNet
from solvers.dcdm.solver import DCDMSolver

logger = logging.getLogger(__name__)


def _dcdm_row(label: str, solver: DCDMSolver, A, b, tol: float, maxiter: int, A_scipy, b_np) -> dict:
    warmup = 1 if torch.device(solver.device).type == "cuda" else 0  # CUDA/cuDNN start-up is not solve time
    seconds, res = median_time(lambda: solver.solve(A, b, tol=tol, maxiter=maxiter), 1, warmup=warmup,
                               device=solver.device)
    info = res.info
    return result_row(label, res.iterations, seconds, true_residual(A_scipy, res.x.cpu().numpy(), b_np),
                      setup_s=0.0, converged=res.converged, fallback=info["fallback"],
                      dcdm_iterations=info["dcdm_iterations"], dcdm_residual=info["dcdm_residual"],
                      fallback_iterations=info["fallback_iterations"], network_s=info["network_s"],
                      matvec_s=info["matvec_s"], orthogonalisation_s=info["orthogonalisation_s"])


def bench_scene(name: str, n: int, device: str, solvers: dict[str, DCDMSolver], tol: float, repeats: int,
                maxiter: int) -> list[dict]:
    """All methods on one scene at ``n^3``; one row each."""
    from solvers.dcdm.scenes import get_scene
    scene = get_scene(name).at(n)
    A = scene.stencil(dtype=torch.float64, device=device)
    b = scene.rhs(seed=0).to(device)
    A_scipy, b_np = A.to_csr().to_scipy(), b.cpu().numpy()
    rows = []
    for label, solver in solvers.items():
        rows.append(_dcdm_row(label, solver, A, b, tol, maxiter, A_scipy, b_np))
    seconds, res = median_time(lambda: cg(A, b, rtol=tol), repeats, device=device)
    rows.append(result_row("sciml cg", res.iterations, seconds,
                           true_residual(A_scipy, res.x.cpu().numpy(), b_np), setup_s=0.0, converged=res.converged))
    rows.append(mgpcg_row(A, b, tol, repeats, A_scipy, b_np, device))
    if torch.device(device).type == "cpu":
        rows.append({**scipy_cg_row(A_scipy, b_np, tol, repeats), "setup_s": 0.0})
        amg = pyamg_row(A_scipy, b_np, A.fluid.reshape(-1).cpu().numpy(), tol, repeats)
        if amg is not None:
            rows.append(amg)
    cg_row = rows[len(solvers)]
    for row in rows:
        row.update(scene=name, n=n, device=device)
        row["setup_total_s"] = row.get("setup_s", 0.0) + row["total_s"]
        row["iterations_vs_cg"] = row["iterations"] / cg_row["iterations"]
        row["time_vs_cg"] = row["setup_total_s"] / cg_row["total_s"]
    return rows


def summarise(rows: list[dict], labels: list[str], tol: float) -> dict:
    """Acceptance numbers per DCDM model and size.

    ``solved_by_dcdm`` counts solves that met ``tol`` without the fallback; the iteration
    ratios to CG are given over those only (``dcdm_alone_max_iterations_vs_cg``) and over all
    solves including fallback iterations (``with_fallback_max_iterations_vs_cg``).
    """
    summary = {}
    for label in labels:
        mine = [r for r in rows if r["method"] == label]
        by_size = {}
        for r in mine:
            by_size.setdefault(r["n"], []).append(r)
        alone = {n: [r for r in rs if r["fallback"] is None] for n, rs in by_size.items()}
        summary[label] = {
            "failures": sum(not r["converged"] or r["true_residual"] > tol * 1.001 for r in mine),
            "solved_by_dcdm": {n: f"{len(alone[n])}/{len(rs)}" for n, rs in by_size.items()},
            "dcdm_alone_max_iterations_vs_cg": {n: max((r["iterations_vs_cg"] for r in rs), default=None)
                                                for n, rs in alone.items()},
            "dcdm_alone_mean_iterations": {n: float(np.mean([r["iterations"] for r in rs])) if rs else None
                                           for n, rs in alone.items()},
            "median_residual_at_fallback": {n: float(np.median([r["dcdm_residual"] for r in rs if r["fallback"]]))
                                            if any(r["fallback"] for r in rs) else None
                                            for n, rs in by_size.items()},
            "with_fallback_max_iterations_vs_cg": {n: max(r["iterations_vs_cg"] for r in rs)
                                                   for n, rs in by_size.items()},
        }
    return summary


def _split(row: dict) -> str:
    if "network_s" not in row:
        return "-"
    return f"{row['network_s']:.2f}/{row['matvec_s']:.2f}/{row['orthogonalisation_s']:.2f}"


COLUMNS = [("N", 4, number("n", "d")), ("scene", -14, lambda r: r["scene"][:14]),
           ("method", -14, lambda r: r["method"][:14]),
           ("iters", 6, number("iterations", "d")), ("vs cg", 6, number("iterations_vs_cg", ".2f")),
           ("setup s", 8, number("setup_s", ".3f")), ("solve s", 8, number("total_s", ".3f")),
           ("total s", 8, number("setup_total_s", ".3f")), ("true res", 9, number("true_residual", ".1e")),
           ("net/mv/orth s", 16, _split)]


def run(argv: list[str] | None = None) -> dict:
    """Parse ``sciml bench dcdm`` options, run, and return the JSON-ready results."""
    from solvers.dcdm.scenes import heldout_scenes
    parser = argparse.ArgumentParser(prog="sciml bench dcdm", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--scenes", nargs="+", default=None, help="held-out scene names (default: all)")
    parser.add_argument("--models", nargs="+",
                        default=["dcdm-recursive-gpu", "dcdm-recursive", "dcdm-unet", "dcdm-paper"])
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--maxiter", type=int, default=100, help="DCDM iterations before the fallback")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--network-dtype", choices=("float32", "bfloat16"), default="float32",
                        help="precision of the networks (the Krylov vectors stay float64)")
    parser.add_argument("--tf32", action="store_true", help="let cuDNN run the networks' convolutions in TF32")
    parser.add_argument("--max-depth", type=int, default=None,
                        help="cap the weight-shared networks' poolings (e.g. 4, their depth at 64^3)")
    parser.add_argument("--n-orth", type=int, default=None,
                        help="A-orthogonalise each direction against this many previous ones (the paper: 2; "
                             "default: the solver's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.network_dtype)
    extra = {} if args.n_orth is None else {"n_orth": args.n_orth}
    solvers = {name: DCDMSolver.from_pretrained(name, device=args.device, tf32=args.tf32, network_dtype=dtype,
                                                **extra)
               for name in args.models}
    if args.max_depth is not None:
        for solver in solvers.values():
            if isinstance(solver.model, RecursiveUNetDCDMNet):
                solver.model.max_depth = args.max_depth
    scenes = args.scenes or [s if isinstance(s, str) else s.name for s in heldout_scenes()]
    started = time.perf_counter()
    rows = []
    for n in args.sizes:
        for name in scenes:
            logger.info("dcdm bench: %s at %d^3", name, n)
            rows += bench_scene(name, n, args.device, solvers, args.tol, args.repeats, args.maxiter)
    synchronize(args.device)
    return {"benchmark": "dcdm", "tol": args.tol, "max_depth": args.max_depth,
            "n_orth": {name: solver.n_orth for name, solver in solvers.items()},
            "network_dtype": args.network_dtype, "tf32": args.tf32, "device": args.device,
            "sizes": args.sizes, "scenes": scenes, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "rows": rows,
            "summary": summarise(rows, list(solvers), args.tol), "wall_s": time.perf_counter() - started,
            "table": format_table(rows, COLUMNS)}
