"""Input checks and small helpers shared by the Krylov solvers."""
from __future__ import annotations

import math
import time
from typing import Callable

import scipy.sparse as sp
import torch

from sciml.linalg.dense import Dense
from sciml.linalg.errors import NonFiniteError
from sciml.linalg.operator import LinearOperator
from sciml.linalg.sparse import SparseCSR


def as_operator(A) -> LinearOperator:
    """Accept a :class:`LinearOperator`, a dense tensor or a scipy sparse matrix."""
    if isinstance(A, LinearOperator):
        return A
    if isinstance(A, torch.Tensor):
        if A.layout == torch.sparse_csr:
            return SparseCSR(A.crow_indices(), A.col_indices(), A.values(), tuple(A.shape))
        return Dense(A)
    if sp.issparse(A):
        return SparseCSR.from_scipy(A)
    raise TypeError(f"expected a LinearOperator, a torch tensor or a scipy sparse matrix, got {type(A).__name__}")


class Problem:
    """A square system ``A x = b`` prepared for a Krylov method.

    Vectors live in the working dtype ``dtype`` on ``A.device``; the operator is
    applied in its own dtype (e.g. a float32 network or matrix under float64
    Krylov vectors) through :meth:`apply`.
    """

    def __init__(self, A, b: torch.Tensor, x0: torch.Tensor | None, dtype: torch.dtype | None):
        self.A = A = as_operator(A)
        if A.shape[0] != A.shape[1]:
            raise ValueError(f"Krylov solvers need a square operator, got shape {A.shape}")
        if not isinstance(b, torch.Tensor):
            raise TypeError(f"b must be a torch.Tensor, got {type(b).__name__}")
        if b.shape != (A.shape[0],):
            raise ValueError(f"right-hand side of shape {tuple(b.shape)} does not fit operator of shape "
                             f"{A.shape}; expected ({A.shape[0]},) (flatten grids with b.reshape(-1))")
        if b.device != A.device:
            raise ValueError(f"device mismatch: b is on {b.device} but the operator is on {A.device}; "
                             f"use b.to('{A.device}') or A.to('{b.device}')")
        if b.is_complex() or A.dtype.is_complex:
            raise ValueError(f"complex systems are not supported (b: {b.dtype}, A: {A.dtype})")
        self.dtype = dtype or torch.promote_types(b.dtype, A.dtype)
        self.b = b.to(self.dtype)
        if not torch.isfinite(self.b).all():
            raise NonFiniteError("b contains NaN or infinity; check the right-hand side assembly")
        if x0 is None:
            self.x = torch.zeros_like(self.b)
        else:
            if x0.shape != b.shape or x0.device != b.device:
                raise ValueError(f"x0 has shape {tuple(x0.shape)} on {x0.device}, expected {tuple(b.shape)} "
                                 f"on {b.device}")
            self.x = x0.to(self.dtype).clone()
        self.bnorm = float(torch.linalg.vector_norm(self.b.double()))
        if self.bnorm == 0:
            self.x.zero_()  # A x = 0 is solved exactly by x = 0, whatever x0 was (scipy's rule)
        self.applications = 0
        self.start = time.perf_counter()

    def apply(self, v: torch.Tensor) -> torch.Tensor:
        """``A v`` in the working dtype."""
        self.applications += 1
        if v.dtype == self.A.dtype:
            return self.A._matvec(v)
        return self.A._matvec(v.to(self.A.dtype)).to(self.dtype)

    def true_residual(self) -> torch.Tensor:
        """``b - A x`` for the current iterate."""
        return self.b - self.apply(self.x)

    def relative(self, norm: float) -> float:
        """Norm divided by ``||b||`` (1 for a zero ``b``)."""
        return norm / self.bnorm if self.bnorm > 0 else norm

    def elapsed(self) -> float:
        """Seconds since the problem was set up, after synchronising the device."""
        if self.A.device.type == "cuda":
            torch.cuda.synchronize(self.A.device)
        return time.perf_counter() - self.start


def as_preconditioner(M, A: LinearOperator) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Turn ``None``, ``"jacobi"``, a :class:`LinearOperator` or a callable into ``r -> M r``."""
    if M is None:
        return None
    if isinstance(M, str):
        if M.lower() != "jacobi":
            raise ValueError(f"unknown preconditioner {M!r}; use 'jacobi', a LinearOperator or a callable r -> z")
        from sciml.linalg.preconditioners import jacobi
        M = jacobi(A)
    if isinstance(M, LinearOperator):
        return M._matvec
    if callable(M):
        return M
    raise TypeError(f"preconditioner must be None, 'jacobi', a LinearOperator or a callable, got {type(M).__name__}")


def check_finite(value: float, what: str, iteration: int) -> None:
    """Raise :class:`NonFiniteError` naming the quantity and the iteration."""
    if not math.isfinite(value):
        raise NonFiniteError(f"{what} became {value} at iteration {iteration}; the operator or preconditioner "
                             "produced NaN/inf (check for division by zero in its coefficients)")


def default_check_every(device: torch.device, preconditioned: bool = False) -> int:
    """Iterations between host synchronisations: every one on CPU, every 8 on GPU.

    Preconditioned solves check every iteration on GPU too: a preconditioner such as a
    multigrid V-cycle costs far more than the synchronisation, and iterating past
    convergence until the next check would waste whole V-cycles.
    """
    return 1 if device.type == "cpu" or preconditioned else 8
