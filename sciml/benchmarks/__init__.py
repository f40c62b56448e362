"""Benchmarks of the core itself, registered under their names for ``sciml bench``."""
from sciml.registry import SolverEntry, register


def _bench_linalg(argv):
    from sciml.benchmarks.linalg import run
    return run(argv)


register(SolverEntry(name="linalg", summary="CG on 7-point Poisson with an obstacle vs scipy and pyamg",
                     bench=_bench_linalg, api="sciml.linalg:cg"))
