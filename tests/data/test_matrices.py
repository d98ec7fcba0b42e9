"""Output matrices assembled from row blocks, dense or CSR, and read back either way."""

import numpy as np
import pytest
from scipy import sparse

from soscope.data.matrices import (
    RowBlock,
    as_float32,
    assemble,
    check_sparse_output,
    dense,
    dense_column,
)
from soscope.errors import SoScopeInputError


def blocks_of(values: dict[str, np.ndarray], parts: int) -> list[RowBlock]:
    """`values` cut into `parts` blocks of runs of 5 rows in scrambled order, as tiles hand
    them over."""
    runs = np.arange(len(next(iter(values.values())))).reshape(-1, 5)
    order = runs[np.random.default_rng(0).permutation(len(runs))]
    return [
        RowBlock(rows.ravel(), {name: matrix[rows.ravel()] for name, matrix in values.items()})
        for rows in np.array_split(order, parts)
    ]


def mostly_zero(shape: tuple[int, int], fraction: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, size=shape).astype(np.float32)
    values[rng.random(shape) < fraction] = 0
    return values


def mixed(shape: tuple[int, int]) -> np.ndarray:
    """Rows mostly zero and rows mostly not, in alternate runs of 5 (dense and sparse blocks)."""
    values = mostly_zero(shape, 0.1)
    runs = (np.arange(shape[0]) // 5) % 2 == 0
    values[runs] = mostly_zero((int(runs.sum()), shape[1]), 0.9, seed=2)
    return values


@pytest.mark.parametrize("kind", ["sparse", "dense", "mixed"])
def test_sparse_and_dense_assembly_give_the_same_values(kind):
    enhanced = {
        "sparse": mostly_zero((50, 7), 0.9),
        "dense": mostly_zero((50, 7), 0.3),
        "mixed": mixed((50, 7)),
    }[kind]
    values = {"enhanced": enhanced, "sd": mostly_zero((50, 7), 0.5, seed=1)}
    as_sparse = assemble(blocks_of(values, 10), 50, sparse_output=True)
    as_dense = assemble(blocks_of(values, 10), 50, sparse_output=False)
    for name, expected in values.items():
        assert sparse.isspmatrix_csr(as_sparse[name]) and as_sparse[name].dtype == np.float32
        as_sparse[name].check_format(full_check=True)
        assert as_sparse[name].nnz == np.count_nonzero(expected)
        np.testing.assert_array_equal(as_sparse[name].toarray(), expected)
        assert isinstance(as_dense[name], np.ndarray) and as_dense[name].dtype == np.float32
        np.testing.assert_array_equal(as_dense[name], expected)


def test_auto_is_sparse_when_at_least_half_of_the_enhanced_entries_are_zero():
    sd = mostly_zero((40, 10), 0.0)  # the layers follow the enhanced matrix
    for zeros, expect_sparse in [(0.9, True), (0.5, True), (0.2, False)]:
        enhanced = np.zeros((40, 10), dtype=np.float32)
        enhanced.flat[: int(400 * (1 - zeros))] = 1
        found = assemble(blocks_of({"enhanced": enhanced, "sd": sd}, 3), 40)
        assert sparse.issparse(found["enhanced"]) == sparse.issparse(found["sd"]) == expect_sparse


def test_an_unknown_sparse_output_is_refused():
    for mode in ("auto", True, False):
        check_sparse_output(mode)
    for mode in ("yes", 1, None):
        with pytest.raises(SoScopeInputError, match="sparse_output"):
            check_sparse_output(mode)


def test_readers_take_dense_or_csr_alike():
    values = mostly_zero((6, 4), 0.6)
    csr = sparse.csr_matrix(values.astype(np.float64))
    assert as_float32(csr).dtype == np.float32 and sparse.issparse(as_float32(csr))
    np.testing.assert_array_equal(dense(csr), values)
    np.testing.assert_array_equal(dense_column(csr, 2), values[:, 2])
    np.testing.assert_array_equal(dense_column(values, 2), values[:, 2])
    float32 = np.ones((2, 2), dtype=np.float32)
    assert as_float32(float32) is float32
