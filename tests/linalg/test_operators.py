"""Operator protocol: adjointness, composition algebra, batching, checks and conversions."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from sciml.linalg import (FACES, Dense, Diagonal, Identity, LinearOperator, PoissonStencil, ProductOperator,
                          ScaledOperator, SparseCSR, SumOperator)
from sciml.linalg.operator import TransposeOperator

from ._problems import PROPERTY, random_mask, randn, sprandn

dims = st.integers(1, 8)
seeds = st.integers(0, 2**32 - 1)


def assert_adjoint(A: LinearOperator, seed: int, k: int | None = None) -> None:
    """``<A x, y> == <x, A^T y>`` up to rounding, for vectors (k None) or blocks of k columns."""
    m, n = A.shape
    extra = () if k is None else (k,)
    x = randn(n, *extra, seed=seed, device=A.device, dtype=A.dtype)
    y = randn(m, *extra, seed=seed + 1, device=A.device, dtype=A.dtype)
    Ax, ATy = A.matvec(x), A.rmatvec(y)
    assert Ax.shape == (m, *extra) and ATy.shape == (n, *extra)
    lhs, rhs = float((Ax * y).sum()), float((x * ATy).sum())
    scale = float(torch.linalg.norm(A.to_dense()) * torch.linalg.norm(x) * torch.linalg.norm(y))
    assert abs(lhs - rhs) <= 1e-12 * max(scale, 1e-300), (lhs, rhs)


# ----------------------------------------------------------------------------- adjointness
@PROPERTY
@given(m=dims, n=dims, seed=seeds)
def test_dense_adjoint(m, n, seed):
    A = Dense(randn(m, n, seed=seed))
    assert_adjoint(A, seed)
    assert_adjoint(A, seed, k=3)


@PROPERTY
@given(m=dims, n=dims, seed=seeds)
def test_sparse_csr_adjoint_nonsymmetric(m, n, seed):
    A = SparseCSR.from_scipy(sprandn(m, n, seed))
    assert_adjoint(A, seed)
    assert_adjoint(A, seed, k=2)


@PROPERTY
@given(n=dims, seed=seeds)
def test_diagonal_adjoint(n, seed):
    assert_adjoint(Diagonal(randn(n, seed=seed)), seed)
    assert_adjoint(Diagonal(randn(n, seed=seed)), seed, k=4)


@PROPERTY
@given(m=dims, n=dims, p=dims, seed=seeds, scale=st.one_of(st.just(0.0), st.floats(0.01, 3), st.floats(-3, -0.01)))
def test_composite_operators_adjoint_and_dense(m, n, p, seed, scale):
    """Sums, differences, products, scalings and transposes: adjoint, and equal to the matrix algebra."""
    a, c, d = randn(m, n, seed=seed), randn(n, p, seed=seed + 2), randn(m, seed=seed + 3)
    b_sp = sprandn(m, n, seed + 4)
    b = torch.as_tensor(b_sp.toarray())
    A, B, C, D = Dense(a), SparseCSR.from_scipy(b_sp), Dense(c), Diagonal(d)
    cases = {
        "A + B": (A + B, a + b),
        "A - B": (A - B, a - b),
        "(A + B) @ C": ((A + B) @ C, (a + b) @ c),
        "scale * A": (scale * A, scale * a),
        "A * scale": (A * scale, a * scale),
        "-B": (-B, -b),
        "A.T": (A.T, a.T),
        "B.T": (B.T, b.T),
        "(B @ C).T": ((B @ C).T, (b @ c).T),
        "D @ A @ C": (D @ A @ C, torch.diag(d) @ a @ c),
        "A.T @ B + C.T @ C": (A.T @ B + C @ C.T, a.T @ b + c @ c.T),
        "2 * (D - D) + D": (2 * (D - D) + D, torch.diag(d)),
    }
    for name, (op, dense) in cases.items():
        assert op.shape == tuple(dense.shape), name
        torch.testing.assert_close(op.to_dense(), dense, rtol=1e-12, atol=1e-12, msg=name)
        assert_adjoint(op, seed)
        assert_adjoint(op, seed, k=2)


@PROPERTY
@given(shape=st.tuples(*(st.integers(1, 5),) * 3), density=st.floats(0, 0.6), seed=seeds,
       faces=st.sets(st.sampled_from(FACES)))
def test_poisson_stencil_adjoint(shape, density, seed, faces):
    A = PoissonStencil(shape, random_mask(shape, density, seed), tuple(sorted(faces)), allow_singular=True)
    assert_adjoint(A, seed)
    assert_adjoint(A, seed, k=3)
    assert_adjoint(A.T, seed)
    assert_adjoint(A + 0.5 * A, seed)


# ----------------------------------------------------------------------------- algebra
def test_composites_are_lazy_and_flattened():
    A = Dense(randn(4, 4, seed=0))
    B = Diagonal(randn(4, seed=1))
    s = A + B + A
    assert isinstance(s, SumOperator) and len(s.terms) == 3
    p = A @ B @ A
    assert isinstance(p, ProductOperator) and len(p.factors) == 3
    assert isinstance(2 * A, ScaledOperator) and isinstance(-A, ScaledOperator)
    assert isinstance(A.T, TransposeOperator)
    assert A.T.T is A
    x = randn(4, seed=2)
    torch.testing.assert_close(A @ x, A.matrix @ x)


def test_symmetric_flags_and_transpose():
    sym = randn(5, 5, seed=0)
    sym = sym + sym.T
    S, N, D = Dense(sym), Dense(randn(5, 5, seed=1)), Diagonal(randn(5, seed=2))
    assert S.symmetric and not N.symmetric and D.symmetric
    assert S.T is S and D.T is D
    assert (S + D).symmetric and not (S + N).symmetric
    assert (3 * S).symmetric
    assert Dense(randn(3, 5, seed=3)).symmetric is False
    assert Dense(N.matrix, symmetric=True).symmetric  # declaration wins


def test_diagonal_of_sums_scalings_and_transposes():
    a = randn(5, 5, seed=0)
    d = randn(5, seed=1)
    A, D = Dense(a), Diagonal(d)
    torch.testing.assert_close((A + 2 * D).diagonal(), torch.diagonal(a) + 2 * d)
    torch.testing.assert_close(A.T.diagonal(), torch.diagonal(a))
    torch.testing.assert_close(Identity(5).diagonal(), torch.ones(5, dtype=torch.float64))
    with pytest.raises(NotImplementedError, match="preconditioner"):
        (A @ D).diagonal()


def test_identity_operator():
    eye = Identity(6)
    x = randn(6, 2, seed=0)
    assert torch.equal(eye.matvec(x), x) and torch.equal(eye.rmatvec(x), x)
    assert torch.equal(eye.to_dense(), torch.eye(6, dtype=torch.float64))
    assert eye.to(dtype=torch.float32).dtype == torch.float32


@pytest.mark.parametrize("make", [
    lambda: Dense(randn(4, 3, seed=0)),
    lambda: SparseCSR.from_scipy(sprandn(4, 3, 0)),
    lambda: Diagonal(randn(4, seed=0)),
    lambda: Identity(4),
    lambda: Dense(randn(4, 4, seed=0)) + Diagonal(randn(4, seed=1)),
    lambda: Dense(randn(4, 3, seed=0)) @ Dense(randn(3, 3, seed=1)),
    lambda: 2.0 * Dense(randn(3, 4, seed=0)).T,
    lambda: PoissonStencil((2, 2, 1), dirichlet=FACES),
], ids=["dense", "csr", "diagonal", "identity", "sum", "product", "scaled-transpose", "stencil"])
def test_to_moves_dtype_and_device(make, device):
    A = make()
    B = A.to(device=device, dtype=torch.float32)
    assert B.dtype == torch.float32 and B.device.type == device and B.shape == A.shape
    x = randn(A.shape[1], seed=5)
    y = B.matvec(x.to(device=device, dtype=torch.float32))
    assert y.dtype == torch.float32 and y.device.type == device
    torch.testing.assert_close(y.cpu().double(), A.matvec(x), rtol=1e-5, atol=1e-5)
    assert A.dtype == torch.float64  # the original is untouched


@pytest.mark.parametrize("kind", ["dense", "csr", "diagonal", "stencil"])
def test_batched_matvec_equals_columnwise(kind, device):
    n = 8
    A = {"dense": lambda: Dense(randn(n, n, seed=0, device=device)),
         "csr": lambda: SparseCSR.from_scipy(sprandn(n, n, 1), device=device),
         "diagonal": lambda: Diagonal(randn(n, seed=2, device=device)),
         "stencil": lambda: PoissonStencil((2, 2, 2), dirichlet=("x-",), device=device)}[kind]()
    X = randn(n, 3, seed=4, device=device)
    for apply in (A.matvec, A.rmatvec):
        Y = apply(X)
        for j in range(3):
            torch.testing.assert_close(Y[:, j], apply(X[:, j].contiguous()), rtol=1e-14, atol=1e-14)


# ----------------------------------------------------------------------------- checks
def test_shape_mismatch_names_both_shapes():
    A = Dense(randn(4, 3, seed=0))
    with pytest.raises(ValueError, match=r"shape \(4,\).*operator of shape \(4, 3\).*expected \(3,\)"):
        A.matvec(randn(4, seed=1))
    with pytest.raises(ValueError, match=r"shape \(3,\).*operator of shape \(4, 3\).*expected \(4,\)"):
        A.rmatvec(randn(3, seed=1))
    with pytest.raises(ValueError, match=r"shape \(3, 2, 1\)"):
        A.matvec(randn(3, 2, 1, seed=1))


def test_dtype_mismatch_names_both_dtypes():
    A = Dense(randn(3, 3, seed=0))
    with pytest.raises(ValueError, match=r"dtype mismatch.*torch\.float32.*torch\.float64"):
        A.matvec(randn(3, seed=1, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"dtype mismatch.*torch\.float32.*torch\.float64"):
        PoissonStencil(3, dirichlet=FACES).rmatvec(randn(27, seed=1, dtype=torch.float32))


@pytest.mark.gpu
def test_device_mismatch_names_both_devices():
    A = Dense(randn(3, 3, seed=0))
    with pytest.raises(ValueError, match=r"device mismatch.*cuda.*cpu"):
        A.matvec(randn(3, seed=1, device="cuda"))
    S = PoissonStencil(3, dirichlet=FACES, device="cuda")
    with pytest.raises(ValueError, match=r"device mismatch.*cpu.*cuda"):
        S.matvec(randn(27, seed=1))
    # "cuda" and "cuda:0" are the same device
    assert S.matvec(randn(27, seed=1, device="cuda:0")).device == S.device
    assert Identity(3, device="cuda").matvec(randn(3, seed=1, device="cuda")).shape == (3,)


def test_non_tensor_operand_is_a_type_error():
    with pytest.raises(TypeError, match="torch.as_tensor"):
        Dense(randn(3, 3, seed=0)).matvec(np.ones(3))


def test_incompatible_composites_raise():
    A, B = Dense(randn(3, 4, seed=0)), Dense(randn(4, 3, seed=1))
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(4, 3\)"):
        A + B
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(3, 4\)"):
        A @ A
    with pytest.raises(ValueError, match=r"torch\.float64.*torch\.float32"):
        A + A.to(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"torch\.float64.*torch\.float32"):
        A @ B.to(dtype=torch.float32)
    with pytest.raises(ValueError, match="2-D"):
        Dense(randn(3, seed=0))
    with pytest.raises(ValueError, match="1-D"):
        Diagonal(randn(3, 3, seed=0))


def test_operator_without_rmatvec_says_so():
    class OnlyMatvec(LinearOperator):
        shape, dtype, device = (2, 2), torch.float64, torch.device("cpu")

        def _matvec(self, x):
            return 2 * x

    op = OnlyMatvec()
    assert torch.equal(op.matvec(torch.ones(2, dtype=torch.float64)), torch.full((2,), 2.0, dtype=torch.float64))
    with pytest.raises(NotImplementedError, match="OnlyMatvec does not implement rmatvec"):
        op.rmatvec(torch.ones(2, dtype=torch.float64))
