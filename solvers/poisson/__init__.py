"""Classical Krylov solvers for the pressure Poisson equation, as a registered solver.

This is the baseline every learned Poisson solver (``solvers.dcdm``) is compared
with, and the foundation demo: CG and Jacobi-PCG from :mod:`sciml.linalg` on a
voxel grid with obstacles, checked against ``scipy.sparse.linalg.cg``.
"""
from solvers.poisson.demo import demo
from sciml.registry import SolverEntry, register

ENTRY = register(SolverEntry(name="poisson", summary="CG / Jacobi-PCG on the 7-point pressure Poisson system "
                             "with obstacles (baseline of dcdm)", demo=demo, api="sciml.linalg:cg"))
