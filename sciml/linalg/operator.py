"""The linear-operator protocol and its composite forms.

A :class:`LinearOperator` is anything with a ``shape`` ``(m, n)``, a ``dtype``, a
``device``, ``matvec`` (``x -> A x``), ``rmatvec`` (``y -> A^T y``) and ``to``.
Vectors have shape ``(n,)``; blocks of ``k`` vectors have shape ``(n, k)`` and are
accepted by every operator in this package (LOBPCG and block Lanczos use them).

Operators compose with ``+``, ``-``, ``@`` and multiplication by a scalar; the
results are lazy :class:`SumOperator`, :class:`ProductOperator` and
:class:`ScaledOperator` objects that never assemble a matrix.
"""
from __future__ import annotations

from typing import Sequence

import torch


class LinearOperator:
    """Base class of every linear operator on torch tensors.

    Subclasses set ``shape``, ``dtype`` and ``device`` and implement ``_matvec``
    (and ``_rmatvec`` unless ``symmetric`` is true). The public ``matvec`` and
    ``rmatvec`` check shapes, dtypes and devices and raise a ``ValueError`` that
    names both sides of any mismatch.

    Attributes
    ----------
    shape : tuple of int
        ``(m, n)``: ``matvec`` maps ``(n,)`` or ``(n, k)`` to ``(m,)`` or ``(m, k)``.
    dtype : torch.dtype
    device : torch.device
    symmetric : bool
        True when ``A^T = A``; then ``rmatvec`` is ``matvec``.
    """

    shape: tuple[int, int]
    dtype: torch.dtype
    device: torch.device
    symmetric: bool = False

    # -- to be implemented by subclasses ---------------------------------------------
    def _matvec(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _rmatvec(self, y: torch.Tensor) -> torch.Tensor:
        if self.symmetric:
            return self._matvec(y)
        raise NotImplementedError(f"{type(self).__name__} does not implement rmatvec (A^T y)")

    def to(self, device=None, dtype: torch.dtype | None = None) -> "LinearOperator":
        """Return a copy of the operator on ``device`` with ``dtype``."""
        raise NotImplementedError

    # -- public, checked interface ---------------------------------------------------
    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the operator.

        Parameters
        ----------
        x : (n,) or (n, k) tensor
            Same dtype and device as the operator.

        Returns
        -------
        (m,) or (m, k) tensor
        """
        check_operand(self, x, self.shape[1], "matvec")
        return self._matvec(x)

    def rmatvec(self, y: torch.Tensor) -> torch.Tensor:
        """Apply the transpose: ``y : (m,) or (m, k) -> A^T y : (n,) or (n, k)``."""
        check_operand(self, y, self.shape[0], "rmatvec")
        return self._rmatvec(y)

    def diagonal(self) -> torch.Tensor:
        """Main diagonal, shape ``(min(m, n),)`` (used by the Jacobi preconditioner)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no diagonal(); pass an explicit preconditioner instead of 'jacobi'")

    def to_dense(self) -> torch.Tensor:
        """Assemble the ``(m, n)`` matrix by applying the operator to the identity.

        Meant for tests and small sizes only (``n`` matvecs).
        """
        eye = torch.eye(self.shape[1], dtype=self.dtype, device=self.device)
        return self._matvec(eye)

    @property
    def T(self) -> "LinearOperator":
        """The transposed operator (lazy)."""
        return self if self.symmetric else TransposeOperator(self)

    # -- algebra ----------------------------------------------------------------------
    def __matmul__(self, other):
        if isinstance(other, LinearOperator):
            return ProductOperator([self, other])
        if isinstance(other, torch.Tensor):
            return self.matvec(other)
        return NotImplemented

    def __add__(self, other):
        if isinstance(other, LinearOperator):
            return SumOperator([self, other])
        return NotImplemented

    def __sub__(self, other):
        if isinstance(other, LinearOperator):
            return SumOperator([self, ScaledOperator(other, -1.0)])
        return NotImplemented

    def __mul__(self, scalar):
        if isinstance(scalar, (int, float)):
            return ScaledOperator(self, float(scalar))
        return NotImplemented

    __rmul__ = __mul__

    def __neg__(self):
        return ScaledOperator(self, -1.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype}, device={self.device})"


def resolve_device(device=None) -> torch.device:
    """The ``torch.device`` that tensors created on ``device`` report (``"cuda"`` -> ``cuda:0``).

    ``torch.device("cuda") != torch.device("cuda:0")``, but a tensor made on ``"cuda"`` is on
    ``cuda:<current index>``; operators store the resolved form so that the device checks of
    :func:`check_operand` compare like with like.
    """
    device = torch.device("cpu" if device is None else device)
    if device.type != "cpu" and device.index is None:
        device = torch.empty(0, device=device).device
    return device


def check_operand(op: LinearOperator, x: torch.Tensor, size: int, where: str) -> None:
    """Raise a ``ValueError`` naming both sides if ``x`` does not fit ``op``.

    Parameters
    ----------
    op : LinearOperator
    x : tensor
        The operand, expected shape ``(size,)`` or ``(size, k)``.
    size : int
    where : str
        Name of the calling method, for the message.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor, got {type(x).__name__}; "
                        f"convert with torch.as_tensor(x, dtype={op.dtype}, device='{op.device}')")
    if x.ndim not in (1, 2) or x.shape[0] != size:
        raise ValueError(f"{where}: operand of shape {tuple(x.shape)} does not fit operator of shape "
                         f"{op.shape}; expected ({size},) or ({size}, k)")
    if x.dtype != op.dtype:
        raise ValueError(f"{where}: dtype mismatch, operand is {x.dtype} but operator is {op.dtype}; "
                         f"use x.to({op.dtype}) or A.to(dtype={x.dtype})")
    if x.device != op.device:
        raise ValueError(f"{where}: device mismatch, operand is on {x.device} but operator is on "
                         f"{op.device}; use x.to('{op.device}') or A.to('{x.device}')")


def _check_compatible(ops: Sequence[LinearOperator], kind: str) -> None:
    first = ops[0]
    for op in ops[1:]:
        if op.dtype != first.dtype or op.device != first.device:
            raise ValueError(f"cannot form a {kind} of operators with {first.dtype} on {first.device} "
                             f"and {op.dtype} on {op.device}; move them with .to() first")


class SumOperator(LinearOperator):
    """``A_1 + A_2 + ...`` applied term by term."""

    def __init__(self, terms: Sequence[LinearOperator]):
        terms = [t for op in terms for t in (op.terms if isinstance(op, SumOperator) else [op])]
        for t in terms[1:]:
            if t.shape != terms[0].shape:
                raise ValueError(f"cannot add operators of shapes {terms[0].shape} and {t.shape}")
        _check_compatible(terms, "sum")
        self.terms = terms
        self.shape, self.dtype, self.device = terms[0].shape, terms[0].dtype, terms[0].device
        self.symmetric = all(t.symmetric for t in terms)

    def _matvec(self, x):
        out = self.terms[0]._matvec(x)
        for t in self.terms[1:]:
            out = out + t._matvec(x)
        return out

    def _rmatvec(self, y):
        out = self.terms[0]._rmatvec(y)
        for t in self.terms[1:]:
            out = out + t._rmatvec(y)
        return out

    def diagonal(self):
        return sum(t.diagonal() for t in self.terms)

    def to(self, device=None, dtype=None):
        return SumOperator([t.to(device, dtype) for t in self.terms])


class ProductOperator(LinearOperator):
    """``A_1 A_2 ... A_p`` applied right to left."""

    def __init__(self, factors: Sequence[LinearOperator]):
        factors = [f for op in factors for f in (op.factors if isinstance(op, ProductOperator) else [op])]
        for left, right in zip(factors[:-1], factors[1:]):
            if left.shape[1] != right.shape[0]:
                raise ValueError(f"cannot multiply operators of shapes {left.shape} and {right.shape}")
        _check_compatible(factors, "product")
        self.factors = factors
        self.shape = (factors[0].shape[0], factors[-1].shape[1])
        self.dtype, self.device = factors[0].dtype, factors[0].device

    def _matvec(self, x):
        for f in reversed(self.factors):
            x = f._matvec(x)
        return x

    def _rmatvec(self, y):
        for f in self.factors:
            y = f._rmatvec(y)
        return y

    def to(self, device=None, dtype=None):
        return ProductOperator([f.to(device, dtype) for f in self.factors])


class ScaledOperator(LinearOperator):
    """``c A`` for a Python scalar ``c``."""

    def __init__(self, op: LinearOperator, scale: float):
        self.op, self.scale = op, float(scale)
        self.shape, self.dtype, self.device, self.symmetric = op.shape, op.dtype, op.device, op.symmetric

    def _matvec(self, x):
        return self.op._matvec(x) * self.scale

    def _rmatvec(self, y):
        return self.op._rmatvec(y) * self.scale

    def diagonal(self):
        return self.op.diagonal() * self.scale

    def to(self, device=None, dtype=None):
        return ScaledOperator(self.op.to(device, dtype), self.scale)


class TransposeOperator(LinearOperator):
    """``A^T``, applied through ``A.rmatvec``."""

    def __init__(self, op: LinearOperator):
        self.op = op
        self.shape = (op.shape[1], op.shape[0])
        self.dtype, self.device = op.dtype, op.device

    def _matvec(self, x):
        return self.op._rmatvec(x)

    def _rmatvec(self, y):
        return self.op._matvec(y)

    def diagonal(self):
        return self.op.diagonal()

    def to(self, device=None, dtype=None):
        return TransposeOperator(self.op.to(device, dtype))

    @property
    def T(self):
        return self.op
