"""``sciml bench linalg``: CG on the 7-point Poisson problem with an obstacle against scipy and pyamg.

For each grid size the same matrix and right-hand side go to

* ``sciml cg (CSR)`` -- :func:`sciml.linalg.cg` on the assembled :class:`SparseCSR`;
* ``sciml cg (stencil)`` -- :func:`sciml.linalg.cg` on the matrix-free :class:`PoissonStencil`;
* ``sciml mg-pcg`` -- :func:`sciml.linalg.pcg` with the geometric multigrid V-cycle
  (:mod:`sciml.linalg.multigrid`), setup time reported separately;
* ``scipy cg`` -- ``scipy.sparse.linalg.cg`` on the same CSR matrix;
* ``pyamg SA-PCG`` -- smoothed-aggregation AMG as a CG preconditioner (the ``bench``
  extra), on the matrix restricted to fluid cells (AMG needs non-empty rows; the
  system is the same). Its setup time is reported separately.

All run in float64 to ``rtol`` on ``||b - A x|| / ||b||``, checked afterwards as
the true residual. Times are medians of ``--repeats`` runs after a warm-up.
Per-iteration times are compared with the *memory-bandwidth floor*: the bytes an
iteration must move at least (matrix, vectors) divided by the measured copy bandwidth.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse.linalg as spla
import torch

from sciml.benchmarks.table import format_table, number
from sciml.benchmarks.timing import median_time, synchronize
from sciml.linalg import PoissonStencil, cg, pcg
from sciml.linalg.stencil import enclosed_fluid


def sphere_obstacle_problem(n: int, seed: int = 0, dtype=torch.float64, device="cpu", smooth: float = 0.0):
    """The benchmark problem: an ``n^3`` box, open top, sphere plus plate obstacle.

    Parameters
    ----------
    n : int
        Cells per side.
    seed : int
        Seed of the right-hand side.
    smooth : float
        Width (in cells) of a Gaussian filter applied to the random right-hand
        side; 0 keeps white noise (the hardest case for CG).

    Returns
    -------
    stencil : PoissonStencil
    b : (n^3,) tensor
        Random values (unit variance before smoothing) on fluid cells, zero on solid cells.
    """
    c = (np.arange(n) + 0.5) / n
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    solid = (x - 0.5) ** 2 + (y - 0.5) ** 2 + (z - 0.4) ** 2 < 0.2 ** 2
    solid |= (np.abs(z - 0.75) < 1.0 / n) & (x < 0.6)
    solid |= enclosed_fluid(solid, ("z+",))
    stencil = PoissonStencil(n, solid, ("z+",), dtype=dtype, device=device)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, n, n, generator=g, dtype=torch.float64).numpy()
    if smooth > 0:
        noise = ndi.gaussian_filter(noise, smooth, mode="nearest")
    b = torch.from_numpy(noise).reshape(-1) * stencil.fluid.reshape(-1).cpu()
    return stencil, b.to(device=device, dtype=dtype)


def copy_bandwidth(device: torch.device, megabytes: int = 256, repeats: int = 5) -> float:
    """Measured device copy bandwidth in bytes/s (read + write counted)."""
    src = torch.empty(megabytes * 2 ** 20 // 8, dtype=torch.float64, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    times = []
    for _ in range(repeats + 1):
        synchronize(device)
        t = time.perf_counter()
        dst.copy_(src)
        synchronize(device)
        times.append(time.perf_counter() - t)
    return 2 * src.numel() * 8 / min(times[1:])


def cg_bytes_per_iteration(n: int, nnz: int, kind: str) -> int:
    """Lower bound of bytes one float64 CG iteration moves.

    CSR SpMV: values (8) + int32 column indices (4) per entry, row pointers, the
    input and output vectors; matrix-free stencil: the input, the output and the
    diagonal (the face links are bit masks in a fused kernel). Vector work: two dot
    products and three axpys, 12 vector reads/writes of 8 bytes.
    """
    spmv = 12 * nnz + 4 * (n + 1) + 16 * n if kind == "csr" else 24 * n + 3 * n // 8
    return spmv + 12 * 8 * n


def result_row(method, iterations, seconds, residual, floor_s=None, **extra):
    """One benchmark row: iterations, total and per-iteration time, true residual, optional floor."""
    per_it = seconds / max(iterations, 1)
    row = {"method": method, "iterations": int(iterations), "total_s": seconds, "ms_per_iteration": per_it * 1e3,
           "true_residual": float(residual)}
    if floor_s is not None:
        row["floor_ms_per_iteration"] = floor_s * 1e3
        row["ratio_to_floor"] = per_it / floor_s
    row.update(extra)
    return row


def true_residual(A_scipy, x, b) -> float:
    """``||b - A x|| / ||b||`` in float64 with numpy."""
    return float(np.linalg.norm(b - A_scipy @ x) / np.linalg.norm(b))


def bench_size(n: int, device: str, rtol: float, repeats: int, bandwidth: float) -> list[dict]:
    """Run every method on one grid size; returns one row per method."""
    stencil, b = sphere_obstacle_problem(n, device=device)
    csr = stencil.to_csr()
    A_scipy, b_np = csr.to_scipy(), b.cpu().numpy()
    fluid = int(stencil.fluid.sum())
    rows = []
    for label, op, kind in (("sciml cg (CSR)", csr, "csr"), ("sciml cg (stencil)", stencil, "stencil")):
        seconds, res = median_time(lambda: cg(op, b, rtol=rtol), repeats, device=device)
        floor = cg_bytes_per_iteration(n ** 3, csr.nnz, kind) / bandwidth
        rows.append(result_row(label, res.iterations, seconds, true_residual(A_scipy, res.x.cpu().numpy(), b_np),
                         floor, device=device))
    rows.append(mgpcg_row(stencil, b, rtol, repeats, A_scipy, b_np, device))
    if torch.device(device).type == "cpu":
        floor = cg_bytes_per_iteration(n ** 3, csr.nnz, "csr") / bandwidth
        rows.append(scipy_cg_row(A_scipy, b_np, rtol, repeats, floor))
        amg = pyamg_row(A_scipy, b_np, stencil.fluid.reshape(-1).cpu().numpy(), rtol, repeats)
        if amg is not None:
            rows.append(amg)
        scipy_row = next(r for r in rows if r["method"] == "scipy cg")
        for row in rows:
            row["ms_per_iteration_vs_scipy"] = row["ms_per_iteration"] / scipy_row["ms_per_iteration"]
            row["total_vs_scipy"] = (row["total_s"] + row.get("setup_s", 0.0)) / scipy_row["total_s"]
    for row in rows:
        row.update(n=n, unknowns=n ** 3, fluid_cells=fluid)
    return rows


def mgpcg_row(A: PoissonStencil, b, rtol, repeats, A_scipy, b_np, device) -> dict:
    """Our geometric-multigrid PCG (matrix-free V-cycle): a result row with its setup time."""
    from sciml.linalg.multigrid import GeometricMultigrid
    setup_s, M = median_time(lambda: GeometricMultigrid(A), repeats, device=device)
    seconds, res = median_time(lambda: pcg(A, b, M=M, rtol=rtol), repeats, device=device)
    return result_row("sciml mg-pcg", res.iterations, seconds, true_residual(A_scipy, res.x.cpu().numpy(), b_np),
                      device=device, setup_s=setup_s, converged=res.converged)


def scipy_cg_row(A, b, rtol, repeats, floor_s=None):
    """``scipy.sparse.linalg.cg`` on the scipy matrix ``A`` and numpy ``b``: a result row."""
    def run():
        count = [0]
        x, _ = spla.cg(A, b, rtol=rtol, maxiter=10 * A.shape[0], callback=lambda _: count.__setitem__(0, count[0] + 1))
        return x, count[0]
    seconds, (x, iterations) = median_time(run, repeats)
    return result_row("scipy cg", iterations, seconds, true_residual(A, x, b), floor_s, device="cpu")


def pyamg_row(A, b, fluid_mask, rtol, repeats):
    """pyamg smoothed-aggregation PCG on the fluid rows of ``A``: a result row (None without pyamg)."""
    try:
        import pyamg
    except ImportError:
        return None
    A_fluid = A[fluid_mask][:, fluid_mask].tocsr()
    b_fluid = b[fluid_mask]
    setup_s, ml = median_time(lambda: pyamg.smoothed_aggregation_solver(A_fluid), repeats)

    def run():
        residuals = []
        x = ml.solve(b_fluid, tol=rtol, accel="cg", residuals=residuals)
        return x, len(residuals) - 1
    seconds, (x, iterations) = median_time(run, repeats)
    return result_row("pyamg SA-PCG", iterations, seconds, true_residual(A_fluid, x, b_fluid), device="cpu",
                setup_s=setup_s, levels=len(ml.levels))


def run(argv: list[str] | None = None) -> dict:
    """Parse ``sciml bench linalg`` options and run the benchmark; returns the JSON dict."""
    parser = argparse.ArgumentParser(prog="sciml bench linalg", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="grid sizes N (default 32 64 on CPU, plus 128 when CUDA is present)")
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = {"benchmark": "linalg", "rtol": args.rtol, "repeats": args.repeats,
               "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": [], "bandwidth_GBps": {}}
    for device in devices:
        bandwidth = copy_bandwidth(torch.device(device))
        results["bandwidth_GBps"][device] = bandwidth / 1e9
        sizes = args.sizes or ([32, 64] if device == "cpu" else [32, 64, 128])
        for n in sizes:
            results["rows"].append(bench_size(n, device, args.rtol, args.repeats, bandwidth))
    results["rows"] = [row for group in results["rows"] for row in group]
    results["table"] = format_table(results["rows"], COLUMNS)
    return results


COLUMNS = [("N", 4, number("n", "d")), ("device", 6, number("device", "s")), ("method", -20, number("method", "s")),
           ("iters", 6, number("iterations", "d")), ("ms/iter", 9, number("ms_per_iteration", ".3f")),
           ("setup s", 8, number("setup_s", ".3f")), ("total s", 9, number("total_s", ".3f")),
           ("true res", 9, number("true_residual", ".1e")),
           ("vs scipy", 9, number("ms_per_iteration_vs_scipy", ".2f")),
           ("floor ms", 9, number("floor_ms_per_iteration", ".3f"))]
