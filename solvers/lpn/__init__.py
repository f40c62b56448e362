"""Learned proximal networks (Fang, Buchanan & Sulam, ICLR 2024) and plug-and-play solvers.

* :class:`sciml.nn.icnn.LPN` -- the fully convolutional network whose output is the gradient
  of a convex potential, hence exactly a proximal operator on images of any size;
  ``LPN(architecture="global")`` is the paper's fixed-size MNIST network (:mod:`sciml.nn.icnn_global`).
* :mod:`solvers.lpn.training` -- proximal-matching loss and the paper's schedule.
* :mod:`solvers.lpn.prior` -- the learned regulariser ``R(x)`` by inverting the prox.
* :mod:`solvers.lpn.pnp` -- plug-and-play ADMM and proximal gradient descent.
* :mod:`solvers.lpn.laplace` -- the 1-D Laplacian experiment (ideal prox: soft-thresholding).
* :mod:`solvers.lpn.data` -- bundled images, faces, MNIST-like digits, ellipse and Shepp-Logan phantoms.
* :mod:`solvers.lpn.bench`, :mod:`solvers.lpn.demo`, :mod:`solvers.lpn.commands` -- the CLI.
"""

from sciml.registry import SolverEntry, lazy, register


ENTRY = register(
    SolverEntry(
        name="lpn",
        summary="learned proximal networks (Fang et al. 2024): exact convex-gradient "
        "denoiser, learned prior R(x), PnP ADMM/PGD vs TV and FBP",
        demo=lazy("solvers.lpn.demo:demo"),
        bench=lazy("solvers.lpn.bench:run"),
        train=lazy("solvers.lpn.commands:train"),
        api="solvers.lpn.pnp:pnp_admm",
    )
)
