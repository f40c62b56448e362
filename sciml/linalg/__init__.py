"""Linear operators and Krylov methods on torch tensors, CPU and CUDA alike.

Operators: :class:`LinearOperator` (protocol), :class:`Dense`, :class:`SparseCSR`,
:class:`Diagonal`, :class:`Identity`, :class:`PoissonStencil` (matrix-free 7-point
Laplacian with obstacles) and lazy sums / products / scalings.

Imaging forward operators (:mod:`sciml.linalg.imaging`): :class:`GaussianBlur`,
:class:`InpaintingMask`, :func:`compressed_sensing`, :func:`radon_matrix` (sparse parallel-beam CT)
and :func:`filtered_back_projection`.

Solvers: :func:`cg`, :func:`pcg`, :func:`conjugate_directions` (pluggable direction
generator, where DCDM plugs in), :func:`lanczos`, :func:`eigsh`, :func:`lobpcg`.
Every linear solve returns a :class:`SolveResult`.
"""
from sciml.linalg._krylov_common import as_operator
from sciml.linalg.cg import cg, pcg
from sciml.linalg.conjugate_directions import conjugate_directions, identity_direction
from sciml.linalg.dense import Dense, Diagonal, Identity
from sciml.linalg.eigsh import eigsh
from sciml.linalg.imaging import (GaussianBlur, InpaintingMask, compressed_sensing, filtered_back_projection,
                                  radon_matrix, random_mask)
from sciml.linalg.errors import NonFiniteError, NotSPDError
from sciml.linalg.lanczos import LanczosResult, lanczos
from sciml.linalg.lobpcg import lobpcg
from sciml.linalg.multigrid import GeometricMultigrid, mgpcg
from sciml.linalg.operator import LinearOperator, ProductOperator, ScaledOperator, SumOperator
from sciml.linalg.preconditioners import jacobi
from sciml.linalg.result import SolveResult
from sciml.linalg.sparse import SparseCSR
from sciml.linalg.stencil import FACES, PoissonStencil, enclosed_fluid

__all__ = [
    "as_operator", "LinearOperator", "Dense", "Diagonal", "Identity", "SparseCSR", "PoissonStencil", "SumOperator",
    "ProductOperator", "ScaledOperator", "FACES", "enclosed_fluid", "cg", "pcg", "conjugate_directions",
    "identity_direction", "lanczos", "LanczosResult", "eigsh", "lobpcg", "jacobi", "SolveResult",
    "NotSPDError", "NonFiniteError",
    "GeometricMultigrid", "mgpcg",
    "GaussianBlur", "InpaintingMask", "random_mask", "compressed_sensing", "radon_matrix", "filtered_back_projection",
]
