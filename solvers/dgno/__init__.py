"""DGNO (Zang & Koutsourelakis 2025), MultiONet and DeepONet for Darcy flow, forward and inverse.

* :mod:`solvers.dgno.darcy` -- scikit-fem P1 data: two-phase and log-normal coefficients, cache, self-check.
* :mod:`solvers.dgno.operators` -- :class:`DeepONet`, :class:`MultiONet` (one module, exact reduction).
* :mod:`solvers.dgno.weak_form` -- Wendland CSRBF test functions and weak residuals.
* :mod:`solvers.dgno.model` -- :class:`DGNO` (encoder, decoders, physics-only loss), :func:`train_dgno`.
* :mod:`solvers.dgno.inverse` -- latent-space inverse solve with an ensemble spread.
* :mod:`solvers.dgno.latent` -- empirical latent prior, frozen decoders with cached trunk features.
* :mod:`solvers.dgno.refine` -- optional second training stage (latent refinement; not the authors').
* :mod:`solvers.dgno.baselines` -- data-driven DeepONet / MultiONet.
* :mod:`solvers.dgno.bench`, :mod:`solvers.dgno.demo`, :mod:`solvers.dgno.commands` -- bench, demo, train.
"""
from sciml.registry import SolverEntry, register


def _bench(argv):
    from solvers.dgno.bench import run
    return run(argv)


def _train(argv):
    from solvers.dgno.commands import train
    return train(argv)


def _demo(out, device):
    from solvers.dgno.demo import demo
    return demo(out, device)


ENTRY = register(SolverEntry(name="dgno", summary="DGNO weak-form neural operator (Zang & Koutsourelakis 2025) "
                             "forward/inverse Darcy vs data-driven DeepONet and MultiONet",
                             bench=_bench, demo=_demo, train=_train,
                             api="solvers.dgno.model:DGNO"))
