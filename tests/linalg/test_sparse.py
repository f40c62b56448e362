"""SparseCSR: scipy round trips, index dtype, transpose products, diagonal, symmetry detection."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from sciml.linalg import SparseCSR
from sciml.linalg._krylov_common import as_operator

from ._problems import PROPERTY, randn, sprandn



@PROPERTY
@given(m=st.integers(1, 12), n=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_scipy_round_trip_is_exact(m, n, seed):
    B = sprandn(m, n, seed)
    A = SparseCSR.from_scipy(B)
    C = A.to_scipy()
    assert isinstance(C, sp.csr_matrix) and C.shape == B.shape and C.dtype == np.float64
    B.sort_indices()
    np.testing.assert_array_equal(C.indptr, B.indptr)
    np.testing.assert_array_equal(C.indices, B.indices)
    np.testing.assert_array_equal(C.data, B.data)
    assert A.nnz == B.nnz
    assert torch.equal(A.to_dense(), torch.as_tensor(B.toarray()))


def test_from_scipy_accepts_any_format_and_sums_duplicates():
    rows, cols, vals = np.array([2, 0, 2, 1]), np.array([1, 2, 1, 0]), np.array([1.0, 2.0, 3.0, -4.0])
    coo = sp.coo_matrix((vals, (rows, cols)), shape=(3, 3))  # (2, 1) stored twice, rows unsorted
    dense = coo.toarray()
    for fmt in ("coo", "csr", "csc", "lil", "dok"):
        A = SparseCSR.from_scipy(coo.asformat(fmt))
        assert torch.equal(A.to_dense(), torch.as_tensor(dense)), fmt
        assert A.nnz == 3
    assert torch.equal(SparseCSR.from_scipy(sp.csr_array(dense)).to_dense(), torch.as_tensor(dense))


def test_indices_are_int32():
    A = SparseCSR.from_scipy(sprandn(6, 5, 0))
    assert A.matrix.crow_indices().dtype == torch.int32
    assert A.matrix.col_indices().dtype == torch.int32
    B = A.to(dtype=torch.float32)
    assert B.matrix.crow_indices().dtype == torch.int32 and B.dtype == torch.float32
    # int64 input indices are narrowed too
    C = SparseCSR(torch.tensor([0, 1, 2], dtype=torch.int64), torch.tensor([1, 0], dtype=torch.int64),
                  torch.tensor([2.0, 3.0], dtype=torch.float64), (2, 2))
    assert C.matrix.col_indices().dtype == torch.int32
    assert torch.equal(C.to_dense(), torch.tensor([[0.0, 2.0], [3.0, 0.0]], dtype=torch.float64))


@pytest.mark.parametrize("m, n", [(7, 7), (9, 4), (3, 8)])
def test_rmatvec_of_nonsymmetric_matrix_uses_the_transpose(m, n, device):
    B = sprandn(m, n, 3, density=0.5)
    A = SparseCSR.from_scipy(B, device=device)
    assert not A.symmetric
    y = randn(m, seed=1, device=device)
    Y = randn(m, 3, seed=2, device=device)
    expected = torch.as_tensor(B.T @ y.cpu().numpy(), device=device)
    torch.testing.assert_close(A.rmatvec(y), expected, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(A.rmatvec(Y), torch.as_tensor(B.T @ Y.cpu().numpy(), device=device),
                               rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(A.T.matvec(y), expected, rtol=1e-14, atol=1e-14)
    x = randn(n, seed=3, device=device)
    torch.testing.assert_close(A.matvec(x), torch.as_tensor(B @ x.cpu().numpy(), device=device),
                               rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("m, n", [(6, 6), (8, 5), (4, 7)])
def test_diagonal_matches_scipy(m, n):
    B = sprandn(m, n, 11, density=0.5).tolil()
    B[0, 0] = 0.0  # an explicit-zero/missing diagonal entry
    B = B.tocsr()
    B.eliminate_zeros()
    d = SparseCSR.from_scipy(B).diagonal()
    assert d.shape == (min(m, n),)
    np.testing.assert_array_equal(d.numpy(), B.diagonal())


def test_symmetry_detection():
    B = sprandn(6, 6, 5)
    S = B + B.T
    assert SparseCSR.from_scipy(S).symmetric
    assert not SparseCSR.from_scipy(B).symmetric
    assert not SparseCSR.from_scipy(sprandn(6, 4, 5)).symmetric
    nearly = S.tolil()
    nearly[0, 1] += 1e-15 if nearly[0, 1] != 0 else 1.0
    assert not SparseCSR.from_scipy(nearly.tocsr()).symmetric  # checked exactly
    assert SparseCSR.from_scipy(B, symmetric=True).symmetric  # declaration wins
    sym = SparseCSR.from_scipy(S)
    assert sym.T is sym
    y = randn(6, seed=0)
    torch.testing.assert_close(sym.rmatvec(y), sym.matvec(y))


def test_from_scipy_rejects_dense_arrays():
    with pytest.raises(TypeError, match="Dense"):
        SparseCSR.from_scipy(np.eye(3))


def test_from_scipy_dtype_and_device(device):
    B = sprandn(5, 5, 1)
    A = SparseCSR.from_scipy(B, dtype=torch.float32, device=device)
    assert A.dtype == torch.float32 and A.device.type == device
    x = torch.ones(5, dtype=torch.float32, device=device)
    torch.testing.assert_close(A.matvec(x).cpu().double(), torch.as_tensor(B @ np.ones(5)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(A.to_scipy().toarray(), B.toarray(), rtol=1e-7)


def test_as_operator_accepts_scipy_and_torch_sparse():
    B = sprandn(5, 5, 2)
    x = randn(5, seed=0)
    expected = torch.as_tensor(B @ x.numpy())
    A1 = as_operator(B)
    A2 = as_operator(SparseCSR.from_scipy(B).matrix)
    A3 = as_operator(torch.as_tensor(B.toarray()))
    for A in (A1, A2, A3):
        torch.testing.assert_close(A.matvec(x), expected, rtol=1e-14, atol=1e-14)
    with pytest.raises(TypeError, match="LinearOperator"):
        as_operator([[1.0]])
