"""OReX: shape reconstruction from planar cross-sections (Sawdayee, Vaxman, Bermano, CVPR 2023).

* :mod:`solvers.orex.model` -- :class:`OReX` (``fit(slices)``, ``field``, ``mesh``) and :class:`OReXConfig`
  (``cpu()`` default, ``paper()`` full configuration, ``tiny()`` for tests).
* :mod:`solvers.orex.network` -- learnable-frequency encoding and the iterated MLP.
* :mod:`solvers.orex.sampling` -- hierarchical near-contour, plane and hull samples.
* :mod:`solvers.orex.baseline` -- classical baseline (interpolated slice signed distances).
* :mod:`solvers.orex.metrics`, :mod:`solvers.orex.shapes` -- scores and offline test shapes.
* :mod:`solvers.orex.bench`, :mod:`solvers.orex.demo` -- ``sciml bench orex`` and ``sciml demo orex``.
"""

from sciml.registry import SolverEntry, lazy, register


def __getattr__(name):
    if name in ("OReX", "OReXConfig"):
        from solvers.orex import model

        return getattr(model, name)
    raise AttributeError(name)


ENTRY = register(
    SolverEntry(
        name="orex",
        summary="OReX neural reconstruction from cross-sections on arbitrary "
        "planes (Sawdayee et al. 2023) vs interpolated slice distances",
        demo=lazy("solvers.orex.demo:demo"),
        bench=lazy("solvers.orex.bench:run"),
        api="solvers.orex.model:OReX",
    )
)
