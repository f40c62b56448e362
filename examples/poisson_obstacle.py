"""Solve a pressure Poisson system around an obstacle with sciml's CG and export it to ParaView.

Run:  python examples/poisson_obstacle.py [N]   (writes poisson_example.vti and prints the solve)
"""
import sys

import numpy as np
import torch

from sciml.io import write_vti
from sciml.linalg import PoissonStencil, cg, enclosed_fluid, pcg


def main(n: int = 48) -> None:
    centres = (np.arange(n) + 0.5) / n
    x, y, z = np.meshgrid(centres, centres, centres, indexing="ij")
    solid = (x - 0.5) ** 2 + (y - 0.5) ** 2 + (z - 0.4) ** 2 < 0.2 ** 2   # a sphere
    solid |= enclosed_fluid(solid, ["z+"])                                  # no sealed pockets
    A = PoissonStencil(n, solid, dirichlet=["z+"])                          # closed box, open top
    b = torch.from_numpy(np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y)).reshape(-1) * A.fluid.reshape(-1)

    result = cg(A, b, rtol=1e-8)
    print("matrix-free CG:", result)
    print("Jacobi PCG on the assembled CSR matrix:", pcg(A.to_csr(), b, rtol=1e-8))
    path = write_vti("poisson_example.vti", cell_data={"pressure": result.x.reshape(n, n, n),
                                                        "solid": torch.as_tensor(solid, dtype=torch.uint8)},
                     spacing=(1 / n,) * 3)
    print("wrote", path)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 48)
