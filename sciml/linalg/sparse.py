"""Sparse matrices in torch's CSR format, CPU and CUDA alike."""
from __future__ import annotations

import warnings

import scipy.sparse as sp
import torch

from sciml.linalg.operator import LinearOperator


def _csr_tensor(crow, col, values, shape) -> torch.Tensor:
    """Build a torch CSR tensor without the 'beta' warning (indices kept as given)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size=shape)


class SparseCSR(LinearOperator):
    """A sparse matrix in compressed-sparse-row form backed by ``torch.sparse_csr_tensor``.

    Indices are stored as int32 when they fit (about 2x faster SpMV on CPU than
    int64). ``rmatvec`` uses ``A`` itself when the matrix is symmetric and a lazily
    built CSR copy of ``A^T`` otherwise.

    Parameters
    ----------
    crow : (m + 1,) integer tensor
        Row pointers.
    col : (nnz,) integer tensor
        Column indices, sorted within each row.
    values : (nnz,) tensor
    shape : (int, int)
    symmetric : bool
        Declare ``A^T = A`` (see :meth:`from_scipy`, which checks it).
    """

    def __init__(self, crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor,
                 shape: tuple[int, int], symmetric: bool = False):
        index_dtype = torch.int32 if max(shape) < 2**31 - 1 and values.numel() < 2**31 - 1 else torch.int64
        crow = crow.to(device=values.device, dtype=index_dtype)
        col = col.to(device=values.device, dtype=index_dtype)
        self.matrix = _csr_tensor(crow, col, values, shape)
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype, self.device = values.dtype, values.device
        self.symmetric = symmetric
        self._transpose: torch.Tensor | None = None

    # -- conversion ----------------------------------------------------------------------
    @classmethod
    def from_scipy(cls, matrix: sp.spmatrix | sp.sparray, dtype: torch.dtype = torch.float64, device=None,
                   symmetric: bool | None = None) -> "SparseCSR":
        """Convert a ``scipy.sparse`` matrix (any format).

        Parameters
        ----------
        matrix : scipy sparse matrix, shape (m, n)
        dtype, device : torch dtype and device of the result.
        symmetric : bool, optional
            Checked exactly (``A != A^T`` has no stored entries) when ``None``.
        """
        if not sp.issparse(matrix):
            raise TypeError(f"from_scipy expects a scipy.sparse matrix, got {type(matrix).__name__}; "
                            "use Dense(torch.as_tensor(...)) for dense arrays")
        csr = sp.csr_matrix(matrix)
        csr.sum_duplicates()
        csr.sort_indices()
        if symmetric is None:
            symmetric = csr.shape[0] == csr.shape[1] and (csr != csr.T).nnz == 0
        values = torch.as_tensor(csr.data).to(device=device, dtype=dtype)
        return cls(torch.as_tensor(csr.indptr), torch.as_tensor(csr.indices), values, csr.shape, symmetric)

    def to_scipy(self) -> sp.csr_matrix:
        """Return a ``scipy.sparse.csr_matrix`` copy on the CPU (float64 stays float64)."""
        crow = self.matrix.crow_indices().cpu().numpy()
        col = self.matrix.col_indices().cpu().numpy()
        values = self.matrix.values().cpu().numpy()
        return sp.csr_matrix((values, col, crow), shape=self.shape)

    # -- operator interface ------------------------------------------------------------------
    def _matvec(self, x):
        if x.ndim == 1:
            return torch.mv(self.matrix, x)
        return self.matrix @ x

    def _rmatvec(self, y):
        if self.symmetric:
            return self._matvec(y)
        if self._transpose is None:
            csc = self.matrix.to_sparse_csc()
            self._transpose = _csr_tensor(csc.ccol_indices(), csc.row_indices(), csc.values(),
                                          (self.shape[1], self.shape[0]))
        return torch.mv(self._transpose, y) if y.ndim == 1 else self._transpose @ y

    def diagonal(self):
        crow = self.matrix.crow_indices().long()
        col = self.matrix.col_indices().long()
        rows = torch.repeat_interleave(torch.arange(self.shape[0], device=self.device), crow.diff())
        on_diag = rows == col
        diag = torch.zeros(min(self.shape), dtype=self.dtype, device=self.device)
        diag.index_add_(0, rows[on_diag], self.matrix.values()[on_diag])
        return diag

    @property
    def nnz(self) -> int:
        """Number of stored entries."""
        return int(self.matrix.values().numel())

    def to_dense(self):
        return self.matrix.to_dense()

    def to(self, device=None, dtype=None):
        m = self.matrix
        values = m.values().to(device=device, dtype=dtype)
        return SparseCSR(m.crow_indices(), m.col_indices(), values, self.shape, self.symmetric)
