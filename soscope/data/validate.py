"""Checks of input arrays: each failure is one `SoScopeInputError` naming the file and the problem.

The helpers are small and composable: `load_npy` reads a file, the `check_*` functions test one
property each and say what was expected and what was found, `to_float32` and `check_edges`
also return the array in the form the model uses.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from soscope.errors import SoScopeInputError

COUNT_ATOL = 1e-3
COUNT_RTOL = 1e-6
"""Spot totals within `COUNT_ATOL + COUNT_RTOL·|total|` of an integer count as integers: the
labels are per-subspot means stored as float32, so total = label·K carries rounding error."""

NPY_MAGIC = b"\x93NUMPY"
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _missing_data_bytes(fh: BinaryIO) -> int:
    """Bytes of array data that a `.npy` header promises beyond the end of the file.

    Checked before loading, so a corrupt header claiming a huge shape is reported as such
    instead of NumPy trying to allocate that much memory.
    """
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    if dtype.hasobject:
        return 0  # pickled objects have no fixed size; np.load refuses them
    available = os.fstat(fh.fileno()).st_size - fh.tell()
    return max(math.prod(shape) * dtype.itemsize - available, 0)


def load_npy(path: str | Path) -> np.ndarray:
    """Read a numeric `.npy` file (bool, integer or real) in native byte order.

    Missing, truncated or corrupt files, pickled objects and non-numeric dtypes are refused.
    """
    path = Path(path)
    if not path.is_file():
        raise SoScopeInputError(path, "file not found")
    try:
        with open(path, "rb") as fh:
            is_npy = fh.read(len(NPY_MAGIC)) == NPY_MAGIC
            fh.seek(0)
            missing = _missing_data_bytes(fh) if is_npy else 0
        array = np.load(path, allow_pickle=False) if is_npy and not missing else None
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise SoScopeInputError(path, "holds Python objects, not numbers") from None
        raise SoScopeInputError(path, f"is truncated or corrupt: {err}") from None
    except (OSError, EOFError) as err:
        raise SoScopeInputError(path, f"cannot be read (truncated or corrupt?): {err}") from None
    if missing:
        raise SoScopeInputError(
            path,
            f"is truncated or corrupt: it lacks {missing} bytes of the data its header promises",
        )
    if array is None:
        raise SoScopeInputError(path, "is empty or not a .npy file (no NumPy header)")
    array = check_numeric(array, path)
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def check_numeric(array: np.ndarray, source: str | Path) -> np.ndarray:
    """Bool, integer or real values only: text, objects and complex numbers are refused."""
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise SoScopeInputError(source, f"holds {array.dtype} values, not real numbers")
    return array


def check_unique(names: Sequence[str], source: str | Path, what: str) -> None:
    """No name twice (spot barcodes, feature names): rows would be ambiguous downstream."""
    seen: set[str] = set()
    twice = [name for name in names if name in seen or seen.add(name)]
    if twice:
        raise SoScopeInputError(
            source, f"duplicate {what}: {_list_some(sorted(set(map(str, twice))))}"
        )


def check_matrix(array: np.ndarray, source: str | Path, ncols: int | None = None) -> np.ndarray:
    """A 2-D array with at least one row and column (exactly `ncols` columns when given)."""
    if array.ndim != 2:
        raise SoScopeInputError(source, f"expected a 2-D array, found shape {array.shape}")
    rows, cols = array.shape
    if rows == 0 or cols == 0:
        raise SoScopeInputError(source, f"is empty (shape {array.shape})")
    if ncols is not None and cols != ncols:
        raise SoScopeInputError(source, f"expected {ncols} columns, found {cols}")
    return array


def _position(index: np.ndarray) -> str:
    if len(index) == 1:
        return f"row {index[0]}"
    if len(index) == 2:
        return f"row {index[0]}, column {index[1]}"
    return f"index {tuple(int(i) for i in index)}"


def check_finite(array: np.ndarray, source: str | Path) -> np.ndarray:
    """No NaN or infinite values; the message counts each kind and gives the first position."""
    bad = ~np.isfinite(array)
    if bad.any():
        n_nan = int(np.isnan(array).sum())
        raise SoScopeInputError(
            source,
            f"has {n_nan} NaN and {int(bad.sum()) - n_nan} infinite values "
            f"(the first at {_position(np.argwhere(bad)[0])})",
        )
    return array


def to_float32(array: np.ndarray, source: str | Path) -> np.ndarray:
    """The array as float32, the precision the model uses; refuses NaN, inf and overflow."""
    check_finite(array, source)
    too_large = np.abs(array.astype(np.float64)) > FLOAT32_MAX
    if too_large.any():
        raise SoScopeInputError(
            source,
            f"has {int(too_large.sum())} values beyond the float32 range ±{FLOAT32_MAX:.3g} "
            f"(the first at {_position(np.argwhere(too_large)[0])})",
        )
    return array.astype(np.float32)


def check_edges(
    array: np.ndarray, n_nodes: int, source: str | Path
) -> tuple[np.ndarray, np.ndarray]:
    """Validate E×3 edge rows `i, j, w`; returns (edge_index int64 2×E, edge_weight float32 E).

    Indices must be integers in [0, n_nodes), weights finite and non-negative, E at least 1.
    """
    if array.ndim != 2 or array.shape[1] != 3:
        raise SoScopeInputError(
            source, f"expected E × 3 rows (i, j, weight), found shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise SoScopeInputError(source, "is an empty graph (no edges)")
    check_finite(array, source)
    index = array[:, :2].astype(np.float64)
    fractional = index != np.round(index)
    if fractional.any():
        row = int(np.argwhere(fractional)[0][0])
        raise SoScopeInputError(
            source,
            f"node indices (columns 0, 1) must be integers, found {index[row].tolist()} "
            f"in row {row}",
        )
    outside = ((index < 0) | (index >= n_nodes)).any(axis=1)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise SoScopeInputError(
            source,
            f"{int(outside.sum())} edges point outside the {n_nodes} nodes [0, {n_nodes}) "
            f"(the first: row {row}, {index[row].astype(np.int64).tolist()})",
        )
    weight = to_float32(array[:, 2], source)
    if (weight < 0).any():
        row = int(np.flatnonzero(weight < 0)[0])
        raise SoScopeInputError(
            source, f"edge weights (column 2) must be ≥ 0, found {weight[row]} in row {row}"
        )
    return index.T.astype(np.int64), weight


def _list_some(labels: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(labels[:limit])
    return shown if len(labels) <= limit else f"{shown} and {len(labels) - limit} more"


def check_counts(
    totals: np.ndarray, source: str | Path, feature_names: Sequence[str] | None = None
) -> None:
    """Spot totals (N×G) of a count likelihood must be non-negative integers.

    The message names the offending features: by `feature_names` when given, else by column.
    """
    totals = np.asarray(totals, dtype=np.float64)
    off_integer = ~np.isclose(totals, np.round(totals), rtol=COUNT_RTOL, atol=COUNT_ATOL)
    for problem, bad in (("negative", totals < 0), ("non-integer", off_integer)):
        columns = np.flatnonzero(bad.any(axis=0))
        if len(columns):
            labels = [
                feature_names[c] if feature_names is not None else f"column {c}" for c in columns
            ]
            raise SoScopeInputError(
                source,
                f"{problem} counts in {len(columns)} features: {_list_some(labels)}; a count "
                "likelihood needs non-negative integer spot totals (use likelihood=gaussian "
                "for non-count data)",
            )


def check_subspot_rows(
    n_sub_rows: int, n_spots: int, source: str | Path, spots_source: str | Path = "the labels"
) -> int:
    """Subspot rows must be a positive multiple of the spots; returns K, subspots per spot."""
    if n_spots <= 0 or n_sub_rows <= 0 or n_sub_rows % n_spots:
        raise SoScopeInputError(
            source,
            f"has {n_sub_rows} rows, not a positive multiple of the {n_spots} spots "
            f"in {spots_source}",
        )
    return n_sub_rows // n_spots
