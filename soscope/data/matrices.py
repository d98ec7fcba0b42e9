"""A section's output matrices (one row per subspot), dense or CSR float32.

Inference hands them over a block of rows at a time (one view of the section); `assemble` puts
the blocks in place without holding more than the finished matrices, and builds a CSR matrix
from the blocks' non-zeros alone, as real sections at thousands of genes are mostly zeros.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from soscope.errors import SoScopeInputError

Matrix = np.ndarray | sparse.csr_matrix
INT32_LIMIT = 2**31


@dataclass(frozen=True)
class RowBlock:
    """Some rows of a section's output matrices: their row numbers and each matrix's values."""

    rows: np.ndarray
    values: dict[str, np.ndarray]


class OutputMatrix:
    """One output matrix filled a block of rows at a time: a block more than half non-zero is
    written straight into a dense matrix (whose pages are only touched as rows land), a sparser
    one kept as CSR, until `dense` or `csr` gives the whole matrix."""

    def __init__(self, n_rows: int) -> None:
        self.values: np.ndarray | None = None  # the dense matrix, made with the first block
        self.dense_rows: list[np.ndarray] = []
        self.sparse_blocks: list[tuple[np.ndarray, sparse.csr_matrix]] = []
        self.row_nonzero = np.zeros(n_rows, dtype=np.int64)

    def add(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Set `values` (len(rows) × width) at `rows`."""
        values = np.asarray(values, dtype=np.float32)
        if self.values is None:
            self.values = np.zeros((len(self.row_nonzero), values.shape[1]), dtype=np.float32)
        counts = np.count_nonzero(values, axis=1)
        self.row_nonzero[rows] = counts
        if 2 * counts.sum() < values.size:
            self.sparse_blocks.append((rows, sparse.csr_matrix(values)))
        else:
            self.values[rows] = values
            self.dense_rows.append(rows)

    def zero_fraction(self) -> float:
        """The share of the matrix's entries that are zero."""
        return 1 - self.row_nonzero.sum() / self.values.size

    def dense(self) -> np.ndarray:
        """The matrix as a dense float32 array."""
        while self.sparse_blocks:
            rows, block = self.sparse_blocks.pop()
            self.values[rows] = block.toarray()
        return self.values

    def csr(self) -> sparse.csr_matrix:
        """The matrix as CSR float32, each block's non-zeros copied straight into place (rows
        in any order); the dense rows are released once they are in."""
        nonzero = int(self.row_nonzero.sum())
        index = np.int32 if max(nonzero, self.values.shape[1]) < INT32_LIMIT else np.int64
        indptr = np.zeros(len(self.row_nonzero) + 1, dtype=index)
        np.cumsum(self.row_nonzero, out=indptr[1:])
        indices, data = np.empty(nonzero, dtype=index), np.empty(nonzero, dtype=np.float32)
        blocks = [*self.sparse_blocks, *((rows, None) for rows in self.dense_rows)]
        self.sparse_blocks, self.dense_rows = [], []
        while blocks:
            rows, block = blocks.pop()
            block = sparse.csr_matrix(self.values[rows]) if block is None else block
            starts = indptr[rows].astype(np.int64) - block.indptr[:-1]
            at = np.repeat(starts, np.diff(block.indptr)) + np.arange(block.nnz)
            indices[at], data[at] = block.indices, block.data
        shape, self.values = self.values.shape, None
        return sparse.csr_matrix((data, indices, indptr), shape=shape)


def check_sparse_output(mode: object) -> None:
    """Refuse a `sparse_output` that is not auto, true or false."""
    if mode != "auto" and not isinstance(mode, bool):
        raise SoScopeInputError(
            "config", f"sparse_output must be auto, true or false, got {mode!r}"
        )


def assemble(
    blocks: Iterable[RowBlock], n_rows: int, sparse_output: str | bool = "auto"
) -> dict[str, Matrix]:
    """Every matrix of `blocks`, CSR or dense as `sparse_output` says: true, false, or auto —
    CSR when at least half of the entries of the matrix `enhanced` are zero."""
    check_sparse_output(sparse_output)
    matrices: dict[str, OutputMatrix] = {}
    for block in blocks:
        for name, values in block.values.items():
            matrices.setdefault(name, OutputMatrix(n_rows)).add(block.rows, values)
    as_sparse = sparse_output
    if as_sparse == "auto":
        as_sparse = matrices["enhanced"].zero_fraction() >= 0.5
    return {name: m.csr() if as_sparse else m.dense() for name, m in matrices.items()}


def as_float32(values: Matrix) -> Matrix:
    """`values`, dense or CSR, in float32 (no copy where they already are)."""
    if sparse.issparse(values):
        return sparse.csr_matrix(values).astype(np.float32, copy=False)
    return np.asarray(values, dtype=np.float32)


def dense(values: Matrix) -> np.ndarray:
    """`values` as a dense array (what the metrics compute on)."""
    return values.toarray() if sparse.issparse(values) else np.asarray(values)


def dense_column(values: Matrix, j: int) -> np.ndarray:
    """Column `j` of `values` (dense or sparse) as a dense vector."""
    if sparse.issparse(values):
        return values[:, [j]].toarray().ravel()
    return np.asarray(values)[:, j]
