"""Orthogonal convolutions with exact orthogonality measures (Achour, Malgouyres & Mamalet, JMLR 2022).

The layers and measures live in the core (:mod:`sciml.nn.orthogonal`,
:mod:`sciml.nn.orthogonal_fft`, :mod:`sciml.nn.conv_spectrum`); this package holds

* :mod:`solvers.orthoconv.classifier` -- a 1-Lipschitz convolutional classifier and its
  certified robust accuracy (``margin / sqrt(2) > radius``);
* :mod:`solvers.orthoconv.checks`, :mod:`solvers.orthoconv.compare`, :mod:`solvers.orthoconv.bench`
  -- ``sciml bench orthoconv``;
* :mod:`solvers.orthoconv.demo` -- ``sciml demo orthoconv``.
"""

from sciml.registry import SolverEntry, lazy, register


ENTRY = register(
    SolverEntry(
        name="orthoconv",
        summary="orthogonal convolutions (Achour et al. 2022): exact "
        "singular values, existence, Lorth, exact layers vs orthogonium",
        demo=lazy("solvers.orthoconv.demo:demo"),
        bench=lazy("solvers.orthoconv.bench:run"),
        api="sciml.nn.orthogonal:OrthoConv2d",
    )
)
