"""Checks of input arrays: each failure is one `SoScopeInputError` naming the file and the problem."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from soscope.errors import SoScopeInputError

COUNT_TOLERANCE = 1e-3


def load_npy(path: str | Path) -> np.ndarray:
    """Load a numeric `.npy` file; missing, truncated, pickled or non-numeric files are refused."""
    path = Path(path)
    if not path.is_file():
        raise SoScopeInputError(path, "file not found")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:
        problem = (
            "holds Python objects (pickled), not numbers" if "pickle" in str(err) else str(err)
        )
        raise SoScopeInputError(path, f"cannot be read as a .npy array: {problem}") from None
    except (OSError, EOFError) as err:
        raise SoScopeInputError(
            path, f"cannot be read as a .npy array (truncated?): {err}"
        ) from None
    if not isinstance(array, np.ndarray) or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == bool
    ):
        raise SoScopeInputError(path, f"holds {array.dtype} values, not numbers")
    return array


def _describe(values: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(values[:limit])
    return shown if len(values) <= limit else f"{shown} and {len(values) - limit} more"


def check_matrix(array: np.ndarray, source: str | Path, ncols: int | None = None) -> np.ndarray:
    """A non-empty 2-D array (with `ncols` columns when given) of finite values."""
    if array.ndim != 2:
        raise SoScopeInputError(source, f"expected a 2-D array, found shape {array.shape}")
    if array.shape[0] == 0:
        raise SoScopeInputError(source, "has no rows")
    if ncols is not None and array.shape[1] != ncols:
        raise SoScopeInputError(source, f"expected {ncols} columns, found {array.shape[1]}")
    check_finite(array, source)
    return array


def check_finite(array: np.ndarray, source: str | Path) -> None:
    """No NaN or infinite values; the message says how many and where the first one is."""
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise SoScopeInputError(
            source, f"has {int(bad.sum())} NaN or infinite values (first at row, column {first})"
        )


def check_edges(array: np.ndarray, n_nodes: int, source: str | Path) -> np.ndarray:
    """E×3 rows `i, j, w`: integer node indices in [0, n_nodes) and finite weights ≥ 0."""
    if array.ndim != 2 or array.shape[1] != 3:
        raise SoScopeInputError(
            source, f"expected E × 3 rows (i, j, weight), found shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise SoScopeInputError(source, "is an empty graph (no edges)")
    check_finite(array, source)
    index = array[:, :2]
    if (index != np.round(index)).any():
        raise SoScopeInputError(source, "node indices (first two columns) must be integers")
    out = (index < 0) | (index >= n_nodes)
    if out.any():
        row = int(np.argwhere(out)[0][0])
        raise SoScopeInputError(
            source,
            f"{int(out.any(1).sum())} edges point outside the {n_nodes} nodes "
            f"(first: row {row}, {index[row].astype(np.int64).tolist()})",
        )
    if (array[:, 2] < 0).any():
        raise SoScopeInputError(source, "edge weights (third column) must not be negative")
    return array


def check_counts(
    totals: np.ndarray, source: str | Path, feature_names: Sequence[str] | None = None
) -> None:
    """Spot totals of a count likelihood must be non-negative integers; names the bad features."""
    names = list(feature_names) if feature_names is not None else None
    for problem, bad in (
        ("negative", (totals < 0).any(0)),
        ("non-integer", (np.abs(totals - np.round(totals)) > COUNT_TOLERANCE).any(0)),
    ):
        if bad.any():
            columns = np.flatnonzero(bad)
            labels = [names[c] if names else f"column {c}" for c in columns]
            raise SoScopeInputError(
                source,
                f"{problem} counts for a count likelihood in {len(columns)} features: "
                f"{_describe(labels)} (use likelihood=gaussian for non-count data)",
            )


def check_subspot_rows(n_sub_rows: int, n_spots: int, source: str | Path) -> int:
    """Subspot rows must be a positive multiple of the spots; returns K, subspots per spot."""
    if n_sub_rows == 0 or n_sub_rows % n_spots:
        raise SoScopeInputError(
            source, f"has {n_sub_rows} rows, not a positive multiple of the {n_spots} spots"
        )
    return n_sub_rows // n_spots
