"""UMat: single-image material capture with uncertainty (Rodriguez-Pardo et al., CVPR 2023).

From one near-diffuse (flatbed-scanner) image, predict normal, specular and roughness maps,
and score per pixel how far the prediction can be trusted.

* :mod:`solvers.umat.materials` -- procedural textiles (weaves, knit, noise) with all maps.
* :mod:`solvers.umat.render` -- differentiable Lambert + GGX renderer and the scanner light.
* :mod:`solvers.umat.model` -- the attention U-Net generator; :mod:`solvers.umat.discriminator`.
* :mod:`solvers.umat.uncertainty` -- test-time augmentation, MC dropout, ensembles.
* :mod:`solvers.umat.tiling` -- tiled inference at any resolution.
* :mod:`solvers.umat.export` -- 16-bit PNG / EXR maps with their normal convention.
"""

from sciml.registry import SolverEntry, lazy, register


ENTRY = register(
    SolverEntry(
        name="umat",
        summary="single-image material capture (normals, specular, roughness) with per-pixel uncertainty",
        demo=lazy("solvers.umat.demo:demo"),
        bench=lazy("solvers.umat.bench:run"),
        train=lazy("solvers.umat.commands:train"),
        api="solvers.umat.capture:capture",
    )
)
