"""Exceptions raised by the linear-algebra core."""


class NotSPDError(ValueError):
    """The operator (or the preconditioner) is not symmetric positive definite."""


class NonFiniteError(FloatingPointError):
    """A NaN or an infinity appeared in the right-hand side, the operator output or an iterate."""
