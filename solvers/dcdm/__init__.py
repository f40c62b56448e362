"""Deep conjugate-direction method (DCDM) for the pressure Poisson equation with obstacles.

Kaneda et al., ICML 2023: conjugate directions whose search directions come from a CNN
applied to the normalised residual, trained on Ritz vectors of training matrices.

* :mod:`solvers.dcdm.solver` -- :class:`DCDMSolver` (``solve``, ``from_pretrained``).
* :mod:`solvers.dcdm.network` -- the paper's CNN and our multi-level U-Net.
* :mod:`solvers.dcdm.data`, :mod:`solvers.dcdm.training` -- Ritz-vector data and the loss.
* :mod:`solvers.dcdm.scenes` -- obstacle scenes (training and held-out) and right-hand sides.
* :mod:`solvers.dcdm.plume` -- a small smoke-plume simulation that calls the solver each step.
* :mod:`solvers.dcdm.bench` -- ``sciml bench dcdm``.
"""

from sciml.registry import SolverEntry, lazy, register


ENTRY = register(
    SolverEntry(
        name="dcdm",
        summary="deep conjugate-direction Poisson solver (Kaneda et al. 2023) vs CG, multigrid PCG, scipy and pyamg",
        demo=lazy("solvers.dcdm.demo:demo"),
        bench=lazy("solvers.dcdm.bench:run"),
        train=lazy("solvers.dcdm.commands:train"),
        api="solvers.dcdm.solver:DCDMSolver",
    )
)
