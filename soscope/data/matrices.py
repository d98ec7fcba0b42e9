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


class BlockRows:
    """One output matrix, its row blocks kept in their smaller form (CSR when at most half of
    a block is non-zero) until `assemble` lays them out."""

    def __init__(self, n_rows: int) -> None:
        self.n_rows, self.width = n_rows, 0
        self.blocks: list[tuple[np.ndarray, Matrix]] = []
        self.nonzero = 0

    def add(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Keep `values` (len(rows) × width) for `rows`."""
        values = np.asarray(values, dtype=np.float32)
        nonzero = int(np.count_nonzero(values))
        self.nonzero += nonzero
        self.width = values.shape[1]
        kept = sparse.csr_matrix(values) if 2 * nonzero < values.size else values
        self.blocks.append((rows, kept))

    @property
    def size(self) -> int:
        """Entries of the whole matrix."""
        return self.n_rows * self.width

    def assemble(self, as_sparse: bool) -> Matrix:
        """The matrix, CSR or dense; each block is released once it is in place."""
        blocks, self.blocks = self.blocks, []
        shape = (self.n_rows, self.width)
        return csr_from_blocks(blocks, shape) if as_sparse else dense_from_blocks(blocks, shape)


def dense_from_blocks(
    blocks: list[tuple[np.ndarray, Matrix]], shape: tuple[int, int]
) -> np.ndarray:
    """A dense matrix from (rows, values) blocks, emptying `blocks` as it goes (its pages are
    only touched as blocks land, so memory moves from the blocks to the matrix)."""
    out = np.zeros(shape, dtype=np.float32)
    while blocks:
        rows, values = blocks.pop()
        out[rows] = values.toarray() if sparse.issparse(values) else values
    return out


def csr_from_blocks(
    blocks: list[tuple[np.ndarray, Matrix]], shape: tuple[int, int]
) -> sparse.csr_matrix:
    """A CSR matrix from (rows, values) blocks, each block's non-zeros copied straight into
    place (rows in any order), emptying `blocks` as it goes."""
    lengths = np.zeros(shape[0], dtype=np.int64)
    for rows, values in blocks:
        sparse_block = sparse.issparse(values)
        lengths[rows] = np.diff(values.indptr) if sparse_block else np.count_nonzero(values, 1)
    index = np.int32 if max(int(lengths.sum()), shape[1]) < INT32_LIMIT else np.int64
    indptr = np.zeros(shape[0] + 1, dtype=index)
    np.cumsum(lengths, out=indptr[1:])
    indices, data = np.empty(indptr[-1], dtype=index), np.empty(indptr[-1], dtype=np.float32)
    while blocks:
        rows, values = blocks.pop()
        block = sparse.csr_matrix(values)
        starts = indptr[rows].astype(np.int64) - block.indptr[:-1]
        at = np.repeat(starts, np.diff(block.indptr)) + np.arange(block.nnz)
        indices[at], data[at] = block.indices, block.data
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
    matrices: dict[str, BlockRows] = {}
    for block in blocks:
        for name, values in block.values.items():
            matrices.setdefault(name, BlockRows(n_rows)).add(block.rows, values)
    as_sparse = sparse_output
    if as_sparse == "auto":
        as_sparse = 2 * matrices["enhanced"].nonzero <= matrices["enhanced"].size
    return {name: matrix.assemble(as_sparse) for name, matrix in matrices.items()}


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
