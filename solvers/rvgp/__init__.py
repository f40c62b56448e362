"""RVGP: Gaussian processes for tangent vector fields on point-cloud manifolds (Peach et al., ICLR 2024).

The geometry (kNN graph, local-PCA or jet-refined frames, Procrustes transport, connection
Laplacian) is in :mod:`geometry.manifold`; here:

* :mod:`solvers.rvgp.model` -- :class:`RVGP`: exact low-rank (Woodbury) inference, linear in ``N``;
* :mod:`solvers.rvgp.kernel` -- :class:`RVGPKernel`, the gpytorch kernel (Matern / SE spectral filters);
* :mod:`solvers.rvgp.variational` -- :class:`VariationalRVGP`, the sparse variational option;
* :mod:`solvers.rvgp.spectrum` -- eigenpairs through ``sciml.linalg.eigsh``;
* :mod:`solvers.rvgp.baseline` -- the component-wise Euclidean RBF GP peer;
* :mod:`solvers.rvgp.fields`, :mod:`solvers.rvgp.metrics` -- analytic test fields and scores;
* :mod:`solvers.rvgp.export` -- ParaView ``.vtp`` output;
* :mod:`solvers.rvgp.bench`, :mod:`solvers.rvgp.demo` -- ``sciml bench rvgp`` / ``sciml demo rvgp``.

Example::

    from solvers.rvgp import RVGP
    gp = RVGP.from_points(points, n_eigenpairs=100).fit(train_index, vectors[train_index])
    pred = gp.predict()            # pred.mean (N, D) tangent vectors, pred.variance (N,)
"""

from sciml.registry import SolverEntry, lazy, register


def __getattr__(name):
    if name == "RVGP":
        from solvers.rvgp.model import RVGP

        return RVGP
    if name == "VariationalRVGP":
        from solvers.rvgp.variational import VariationalRVGP

        return VariationalRVGP
    if name == "RVGPKernel":
        from solvers.rvgp.kernel import RVGPKernel

        return RVGPKernel
    raise AttributeError(f"module 'solvers.rvgp' has no attribute {name!r}")


ENTRY = register(
    SolverEntry(
        name="rvgp",
        summary="RVGP vector-field GPs on point-cloud manifolds (Peach et al. 2024) "
        "vs a component-wise Euclidean RBF GP",
        demo=lazy("solvers.rvgp.demo:demo"),
        bench=lazy("solvers.rvgp.bench:run"),
        api="solvers.rvgp.model:RVGP",
    )
)
