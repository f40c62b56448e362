"""Regularised neural ODEs on torchdiffeq (Pal et al., ICML 2021 "Opening the Blackbox";
"Locally Regularized Neural Differential Equations", 2023).

* :mod:`solvers.node.ode` -- :class:`NeuralODE` (NFE / step statistics, forward or adjoint,
  global or local regulariser).
* :mod:`solvers.node.recorder` -- reads the solver's own error estimate and stages.
* :mod:`solvers.node.local` -- the local regulariser's single extra step.
* :mod:`solvers.node.tableau` -- dopri5 / tsit5 tableaus, ``method="tsit5"`` for torchdiffeq,
  and the torchdiffeq==0.2.5 pin.
* :mod:`solvers.node.schedule` -- the papers' weight schedules.
* :mod:`solvers.node.tasks` -- digits classifier and noisy-oscillator fitting.
* :mod:`solvers.node.bench`, :mod:`solvers.node.demo` -- ``sciml bench node``, ``sciml demo node``.
"""

from sciml.registry import SolverEntry, lazy, register


ENTRY = register(
    SolverEntry(
        name="node",
        summary="regularised neural ODEs (Pal et al. 2021/2023): global and local "
        "error-estimate regularisers on torchdiffeq vs vanilla",
        demo=lazy("solvers.node.demo:demo"),
        bench=lazy("solvers.node.bench:run"),
        api="solvers.node.ode:NeuralODE",
    )
)
