"""A buoyant smoke plume around a moving sphere, with CG or DCDM as the pressure solver.

Run:  python examples/smoke_plume.py [--n 32] [--steps 20] [--out smoke_plume] [--solver cg|dcdm]

Writes ``OUT/plume_XXXX.vti`` frames and ``OUT/plume.pvd`` (open the .pvd in ParaView and
press play), and prints the pressure solve of every step and a summary.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sciml.linalg import cg
from solvers.dcdm.plume import PlumeResult, simulate_plume

WEIGHTS = Path(__file__).resolve().parents[1] / "data" / "dcdm-recursive-gpu.safetensors"


def choose_solver(name: str, rtol: float):
    """The ``(A, b) -> SolveResult`` callable for ``name``, and the name actually used."""
    if name == "dcdm":
        if WEIGHTS.exists():
            from solvers.dcdm.solver import DCDMSolver
            solver = DCDMSolver.from_pretrained(WEIGHTS)
            return (lambda A, b: solver.solve(A, b, tol=rtol)), "dcdm"
        print(f"DCDM weights not found at {WEIGHTS}; train them with 'sciml train dcdm'. "
              "Falling back to CG.")
    return (lambda A, b: cg(A, b, rtol=rtol)), "cg"


def main(argv: list[str] | None = None) -> PlumeResult:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="cells per side (default 32)")
    parser.add_argument("--steps", type=int, default=20, help="time steps (default 20)")
    parser.add_argument("--out", type=Path, default=Path("smoke_plume"), help="output folder")
    parser.add_argument("--solver", choices=("cg", "dcdm"), default="cg", help="pressure solver")
    parser.add_argument("--rtol", type=float, default=1e-6, help="relative residual of each solve")
    parser.add_argument("--every", type=int, default=1, help="write a frame every EVERY steps")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(torch.get_num_threads(), 4))

    solve, used = choose_solver(args.solver, args.rtol)
    print(f"smoke plume {args.n}^3, {args.steps} steps, pressure solver: {used}")
    result = simulate_plume(args.n, args.steps, pressure_solve=solve, out_dir=args.out, every=args.every)
    print(f"{'step':>4} {'iters':>6} {'residual':>9} {'max|div|':>9} {'div ratio':>9} {'solve s':>8} "
          f"{'smoke z':>7}")
    for s in range(args.steps):
        print(f"{s + 1:>4} {result.iterations[s]:>6} {result.residuals[s]:>9.1e} {result.divergence[s]:>9.1e} "
              f"{result.divergence_ratio[s]:>9.1e} {result.solve_seconds[s]:>8.3f} {result.smoke_height[s]:>7.3f}"
              + ("" if result.converged[s] else "  NOT CONVERGED"))
    if args.steps:
        print(f"summary: {sum(result.converged)}/{args.steps} solves converged, mean "
              f"{sum(result.iterations) / args.steps:.1f} iterations, {sum(result.solve_seconds):.2f} s in "
              f"pressure solves, worst divergence ratio "
              f"{max(result.divergence_ratio):.1e}, smoke height {result.smoke_height[0]:.3f} -> "
              f"{result.smoke_height[-1]:.3f}")
    print(f"wrote {len(result.files)} frames and {result.pvd}")
    return result


if __name__ == "__main__":
    main()
