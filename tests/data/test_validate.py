"""The array checks: each accepts good input and refuses bad input with one message that names
the source and says what is wrong."""

import io

import numpy as np
import pytest

from soscope.data.validate import (
    check_counts,
    check_edges,
    check_finite,
    check_matrix,
    check_subspot_rows,
    load_npy,
    to_float32,
)
from soscope.errors import SoScopeInputError

SOURCE = "some/dir/label.npy"


def refused(call, *args, **kwargs) -> SoScopeInputError:
    """The error `call` raises; it must be exactly one SoScopeInputError."""
    with pytest.raises(SoScopeInputError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_error_message_names_source_then_problem():
    err = SoScopeInputError("a/b.npy", "is broken")
    assert str(err) == "a/b.npy: is broken" and err.source == "a/b.npy"
    assert isinstance(err, ValueError)


# load_npy


@pytest.mark.parametrize(
    "array",
    [np.arange(6.0).reshape(2, 3), np.arange(4, dtype=np.int32), np.array([True, False])],
)
def test_load_npy_reads_numeric_arrays(tmp_path, array):
    np.save(tmp_path / "a.npy", array)
    loaded = load_npy(tmp_path / "a.npy")
    np.testing.assert_array_equal(loaded, array)
    assert loaded.dtype == array.dtype


def test_load_npy_returns_native_byte_order(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(3, dtype=">f8"))
    loaded = load_npy(tmp_path / "a.npy")
    assert loaded.dtype.isnative and loaded.tolist() == [0.0, 1.0, 2.0]


def test_load_npy_missing_file(tmp_path):
    err = refused(load_npy, tmp_path / "absent.npy")
    assert "absent.npy" in str(err) and "not found" in str(err)


def test_load_npy_directory_is_not_a_file(tmp_path):
    (tmp_path / "dir.npy").mkdir()
    assert "not found" in str(refused(load_npy, tmp_path / "dir.npy"))


@pytest.mark.parametrize("keep", [0.5, 0.9, 8])
def test_load_npy_truncated_file(tmp_path, keep):
    path = tmp_path / "label.npy"
    np.save(path, np.arange(40.0).reshape(8, 5))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[:keep])
    err = refused(load_npy, path)
    assert "label.npy" in str(err)
    assert "truncated" in str(err) or "corrupt" in str(err)


@pytest.mark.parametrize("shape", [(10**12,), (10**9, 10**9), (3, 5)])
def test_load_npy_header_promising_more_data_than_the_file_holds(tmp_path, shape):
    path = tmp_path / "label.npy"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    path.write_bytes(header.getvalue() + bytes(8 * 14))
    err = refused(load_npy, path)
    missing = 8 * (int(np.prod(shape, dtype=object)) - 14)
    assert "label.npy" in str(err) and f"lacks {missing} bytes" in str(err)


@pytest.mark.parametrize("content", [b"", b"0,1,1\n", b"\x00" * 64])
def test_load_npy_not_an_npy_file(tmp_path, content):
    path = tmp_path / "adj.npy"
    path.write_bytes(content)
    err = refused(load_npy, path)
    assert "adj.npy" in str(err) and "not a .npy" in str(err)


def test_load_npy_refuses_pickled_objects(tmp_path):
    path = tmp_path / "support_feature.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    err = refused(load_npy, path)
    assert "support_feature.npy" in str(err) and "Python objects" in str(err)


@pytest.mark.parametrize(
    "array", [np.array([["a", "b"]]), np.array([b"x"]), np.array([1 + 2j]), np.array(["2020"])]
)
def test_load_npy_refuses_non_real_dtypes(tmp_path, array):
    np.save(tmp_path / "label.npy", array)
    err = refused(load_npy, tmp_path / "label.npy")
    assert "label.npy" in str(err) and "not real numbers" in str(err)


# check_matrix


def test_check_matrix_accepts_and_returns_the_array():
    array = np.ones((3, 2))
    assert check_matrix(array, SOURCE) is array
    assert check_matrix(array, SOURCE, ncols=2) is array


@pytest.mark.parametrize("shape", [(3,), (2, 3, 1), ()])
def test_check_matrix_wrong_ndim(shape):
    err = refused(check_matrix, np.ones(shape), SOURCE)
    assert SOURCE in str(err) and "2-D" in str(err) and str(shape) in str(err)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0)])
def test_check_matrix_empty(shape):
    err = refused(check_matrix, np.ones(shape), SOURCE)
    assert SOURCE in str(err) and "empty" in str(err)


def test_check_matrix_wrong_number_of_columns():
    err = refused(check_matrix, np.ones((3, 2)), SOURCE, ncols=3)
    assert str(err) == f"{SOURCE}: expected 3 columns, found 2"


# check_finite / to_float32


def test_check_finite_accepts_finite():
    array = np.array([[0.0, -1.0], [1e300, 2.0]])
    assert check_finite(array, SOURCE) is array


def test_check_finite_counts_nan_and_inf_and_gives_the_first_position():
    array = np.zeros((3, 4))
    array[1, 2] = np.nan
    array[2, 0] = np.inf
    array[2, 3] = -np.inf
    err = refused(check_finite, array, SOURCE)
    assert str(err) == (f"{SOURCE}: has 1 NaN and 2 infinite values (the first at row 1, column 2)")


def test_check_finite_position_in_1d_and_3d():
    assert "the first at row 2)" in str(refused(check_finite, np.array([0, 1, np.inf]), SOURCE))
    cube = np.zeros((2, 2, 2))
    cube[1, 0, 1] = np.nan
    assert "index (1, 0, 1)" in str(refused(check_finite, cube, SOURCE))


def test_to_float32_converts_and_refuses_overflow():
    out = to_float32(np.array([[1, 2]], dtype=np.int64), SOURCE)
    assert out.dtype == np.float32 and out.tolist() == [[1.0, 2.0]]
    err = refused(to_float32, np.array([[1.0, -1e300]]), SOURCE)
    assert SOURCE in str(err) and "float32 range" in str(err) and "row 0, column 1" in str(err)
    assert "NaN" in str(refused(to_float32, np.array([np.nan]), SOURCE))


# check_edges

EDGES = np.array([[0, 1, 0.5], [1, 0, 0.5], [1, 2, 0.0]])


def test_check_edges_returns_index_and_weight():
    index, weight = check_edges(EDGES, 3, SOURCE)
    assert index.dtype == np.int64 and index.tolist() == [[0, 1, 1], [1, 0, 2]]
    assert weight.dtype == np.float32 and weight.tolist() == [0.5, 0.5, 0.0]


@pytest.mark.parametrize("shape", [(4, 2), (4, 4), (3,), (2, 3, 1)])
def test_check_edges_wrong_shape(shape):
    err = refused(check_edges, np.zeros(shape), 3, SOURCE)
    assert SOURCE in str(err) and "E × 3" in str(err) and str(shape) in str(err)


def test_check_edges_transposed_three_by_e_is_refused():
    err = refused(check_edges, np.zeros((3, 5)), 6, SOURCE)
    assert "E × 3" in str(err) and "(3, 5)" in str(err)


def test_check_edges_empty_edge_list():
    err = refused(check_edges, np.zeros((0, 3)), 3, SOURCE)
    assert str(err) == f"{SOURCE}: is an empty graph (no edges)"


def test_check_edges_non_integer_indices():
    err = refused(check_edges, np.array([[0, 1, 1.0], [1, 1.5, 1.0]]), 3, SOURCE)
    assert SOURCE in str(err) and "must be integers" in str(err) and "row 1" in str(err)
    assert "1.5" in str(err)


@pytest.mark.parametrize("bad", [[0, 3, 1.0], [-1, 0, 1.0], [7, 9, 1.0]])
def test_check_edges_index_out_of_range(bad):
    err = refused(check_edges, np.vstack([EDGES, [bad]]), 3, SOURCE)
    message = str(err)
    assert SOURCE in message and "1 edges point outside the 3 nodes [0, 3)" in message
    assert f"row 3, {[int(v) for v in bad[:2]]}" in message


def test_check_edges_negative_weight():
    err = refused(check_edges, np.array([[0, 1, 1.0], [1, 0, -0.25]]), 2, SOURCE)
    assert SOURCE in str(err) and "≥ 0" in str(err) and "-0.25 in row 1" in str(err)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_check_edges_non_finite(bad):
    edges = EDGES.copy()
    edges[2, 0] = bad
    err = refused(check_edges, edges, 3, SOURCE)
    assert SOURCE in str(err) and "the first at row 2, column 0" in str(err)


# check_counts

NAMES = ["CD3E", "MS4A1", "EPCAM", "KRT19"]


def test_check_counts_accepts_integer_totals_with_float32_rounding():
    check_counts(np.array([[0.0, 3.0, 12.0, 1.0]]), SOURCE, NAMES)
    total = np.float64(np.float32(123457.0 / 7)) * 7  # label·K after a float32 round trip
    check_counts(np.array([[total]]), SOURCE)


def test_check_counts_negative_names_features():
    totals = np.array([[0.0, -2.0, 1.0, 1.0], [1.0, 1.0, 1.0, -1.0]])
    err = refused(check_counts, totals, SOURCE, NAMES)
    assert str(err).startswith(f"{SOURCE}: negative counts in 2 features: MS4A1, KRT19;")
    assert "likelihood=gaussian" in str(err)


def test_check_counts_fractional_by_column_index():
    totals = np.array([[0.0, 1.0, 2.5, 1.0], [0.5, 1.0, 1.0, 1.0]])
    err = refused(check_counts, totals, SOURCE)
    assert "non-integer counts in 2 features: column 0, column 2;" in str(err)
    assert SOURCE in str(err)


def test_check_counts_fractional_by_name():
    err = refused(check_counts, np.array([[0.0, 1.0, 2.0, 0.3]]), SOURCE, NAMES)
    assert "non-integer counts in 1 features: KRT19;" in str(err)


def test_check_counts_summarises_more_than_five_features():
    names = [f"g{i}" for i in range(8)]
    err = refused(check_counts, np.full((2, 8), 0.5), SOURCE, names)
    assert "non-integer counts in 8 features: g0, g1, g2, g3, g4 and 3 more;" in str(err)
    err = refused(check_counts, np.full((1, 6), -1.0), SOURCE)
    assert (
        "negative counts in 6 features: column 0, column 1, column 2, column 3, column 4 "
        "and 1 more;"
    ) in str(err)
    five = refused(check_counts, np.full((1, 5), -1.0), SOURCE)
    assert "more" not in str(five) and "column 4;" in str(five)


# check_subspot_rows


def test_check_subspot_rows_returns_k():
    assert check_subspot_rows(21, 3, SOURCE) == 7
    assert check_subspot_rows(3, 3, SOURCE) == 1


@pytest.mark.parametrize("rows, spots", [(7, 3), (0, 3), (3, 0), (2, 3)])
def test_check_subspot_rows_not_a_multiple(rows, spots):
    err = refused(check_subspot_rows, rows, spots, "d/support_feature.npy", "label.npy")
    assert str(err) == (
        f"d/support_feature.npy: has {rows} rows, not a positive multiple of the {spots} spots "
        "in label.npy"
    )
