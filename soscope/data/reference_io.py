"""The original soScope dataset directory: read it (validated) and write it (atomically).

Files: `label.npy` (N×G spot profiles, the per-subspot mean), `adj.npy` (E×3 rows i, j, w of
the spot graph), `support_feature.npy` (N·K×D subspot image features, spot i's subspots at rows
i·K … i·K+K−1) and `sub_adj.npy` (E'×3, the subspot graph). Optional extras, read when present
and written when known: `feature_names.txt` (one name per line), `positions.csv` and
`sub_positions.csv` (columns x, y in full-resolution pixels, one row per spot / subspot).
The files hold graphs without self-loops; in memory every node has one (weight 1 unless the
file gives another).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.utils import add_remaining_self_loops, remove_self_loops

from soscope.data.sample import Section, SpotGraph, fixed_layout, make_spot_graph
from soscope.data.validate import (
    check_counts,
    check_edges,
    check_matrix,
    check_subspot_rows,
    check_unique,
    load_npy,
    to_float32,
)
from soscope.errors import SoScopeInputError
from soscope.io_utils import atomic_dir

LABEL, ADJ, FEATURES, SUB_ADJ = "label.npy", "adj.npy", "support_feature.npy", "sub_adj.npy"
FEATURE_NAMES, POSITIONS, SUB_POSITIONS = "feature_names.txt", "positions.csv", "sub_positions.csv"


def default_feature_names(n_features: int) -> list[str]:
    """Names for features that came without any: `f0`, `f1`, …"""
    return [f"f{i}" for i in range(n_features)]


def count_columns(likelihood: str | None, protein_dim: int = 0) -> slice | None:
    """The label columns a likelihood models as counts: all for nb, poisson and joint_pnb, the
    block after the first `protein_dim` for joint_gaussian, none otherwise."""
    if likelihood in ("nb", "poisson", "joint_pnb"):
        return slice(None)
    if likelihood == "joint_gaussian":
        return slice(protein_dim, None)
    return None


def edges_with_self_loops(
    rows: np.ndarray, n_nodes: int, source: str | Path
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated E×3 edge rows as (edge_index, edge_weight), every node given a self-loop."""
    index, weight = check_edges(np.asarray(rows), n_nodes, source)
    return add_remaining_self_loops(
        torch.from_numpy(index), torch.from_numpy(weight), fill_value=1.0, num_nodes=n_nodes
    )


def _read_edges(path: Path, n_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    return edges_with_self_loops(load_npy(path), n_nodes, path)


def _read_positions(path: Path, n_rows: int) -> torch.Tensor | None:
    if not path.is_file():
        return None
    try:
        xy = pd.read_csv(path)[["x", "y"]].to_numpy(dtype=np.float64)
    except (KeyError, ValueError, OSError) as err:
        raise SoScopeInputError(path, f"expected a CSV with numeric columns x, y ({err})") from None
    if len(xy) != n_rows:
        raise SoScopeInputError(path, f"has {len(xy)} rows, expected {n_rows}")
    return torch.from_numpy(to_float32(check_matrix(xy, path), path))


def _read_feature_names(path: Path, n_features: int) -> list[str]:
    if not path.is_file():
        return default_feature_names(n_features)
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (UnicodeDecodeError, OSError) as err:
        raise SoScopeInputError(path, f"cannot be read as UTF-8 text ({err})") from None
    names = [name for name in names if name]
    if len(names) != n_features:
        raise SoScopeInputError(path, f"has {len(names)} names for the {n_features} features")
    check_unique(names, path, "feature names")
    return names


def read_reference_dir(
    path: str | Path, likelihood: str | None = None, protein_dim: int = 0
) -> SpotGraph:
    """Read and validate a dataset directory; returns the graph sample with self-loops added.

    The feature names (from `feature_names.txt`, else `f0`, `f1`, …) are the plain list
    `graph.feature_names`. For a count likelihood the spot totals label·K of its count columns
    (see `count_columns`) must be non-negative integers.
    """
    root = Path(path)
    if not root.is_dir():
        raise SoScopeInputError(root, "dataset directory not found")
    label = to_float32(check_matrix(load_npy(root / LABEL), root / LABEL), root / LABEL)
    n_spots, n_features = label.shape
    features = load_npy(root / FEATURES)
    features = to_float32(check_matrix(features, root / FEATURES), root / FEATURES)
    k = check_subspot_rows(len(features), n_spots, root / FEATURES, spots_source=LABEL)
    names = _read_feature_names(root / FEATURE_NAMES, n_features)
    columns = count_columns(likelihood, protein_dim)
    if columns is not None:
        totals = label[:, columns].astype(np.float64) * k
        check_counts(totals, f"{root / LABEL} (spot totals = label × K={k})", names[columns])

    extra = {
        key: value
        for key, value in (
            ("pos", _read_positions(root / POSITIONS, n_spots)),
            ("sub_pos", _read_positions(root / SUB_POSITIONS, n_spots * k)),
        )
        if value is not None
    }
    graph = make_spot_graph(
        torch.from_numpy(label),
        *_read_edges(root / ADJ, n_spots),
        torch.from_numpy(features),
        *_read_edges(root / SUB_ADJ, n_spots * k),
        fixed_layout(n_spots, k),
        **extra,
    )
    graph.feature_names = names
    return graph


def read_reference_section(
    path: str | Path, likelihood: str | None = None, protein_dim: int = 0
) -> Section:
    """`read_reference_dir` as a `Section` (no ground truth, no image)."""
    graph = read_reference_dir(path, likelihood, protein_dim)
    names = graph.feature_names
    del graph.feature_names
    return Section(graph=graph, feature_names=names, name=Path(path).name)


def _check_fixed_layout(graph: SpotGraph, path: Path) -> None:
    """The format stores K subspots per spot, spot by spot; any other layout is refused."""
    n_spots, n_sub = graph.num_spots, graph.num_subspots
    fixed = (
        n_spots > 0
        and n_sub > 0
        and n_sub % n_spots == 0
        and torch.equal(graph.sub_to_spot.cpu(), fixed_layout(n_spots, n_sub // n_spots))
    )
    if not fixed:
        raise SoScopeInputError(
            path,
            "the original format needs the same number K of subspots for every spot, "
            "stored spot by spot (sub_to_spot = 0…0, 1…1, …); this graph's layout differs",
        )


def _check_names(names: list[str], n_features: int, path: Path) -> None:
    if len(names) != n_features:
        raise SoScopeInputError(path, f"got {len(names)} feature names for {n_features} features")
    bad = [name for name in names if name != name.strip() or len(name.splitlines()) != 1]
    if bad:
        raise SoScopeInputError(
            path, f"feature names must be non-empty single lines without outer spaces: {bad[:5]}"
        )


def edge_rows(index: torch.Tensor, weight: torch.Tensor) -> np.ndarray:
    """E×3 rows i, j, w of a graph, its self-loops removed (files hold graphs without them)."""
    index, weight = remove_self_loops(index.cpu(), weight.cpu())
    return np.column_stack([index.T.numpy().astype(np.float64), weight.numpy()])


def _save_positions(path: Path, xy: torch.Tensor) -> None:
    xy = xy.detach().cpu().numpy()
    pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]}).to_csv(path, index=False)


def write_reference_dir(
    graph: SpotGraph,
    path: str | Path,
    feature_names: list[str] | None = None,
    overwrite: bool = False,
) -> None:
    """Write a graph sample in the original's format; all files appear together or none do.

    Self-loops are dropped (reading adds them back with weight 1). Feature names default to
    `graph.feature_names` when it has them. An existing `path` is replaced only if `overwrite`.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise SoScopeInputError(path, "already exists; pass overwrite=True to replace it")
    _check_fixed_layout(graph, path)
    names = feature_names if feature_names is not None else getattr(graph, "feature_names", None)
    if names is not None:
        _check_names(list(names), graph.x.size(1), path)
    with atomic_dir(path) as tmp:
        np.save(tmp / LABEL, graph.x.detach().cpu().numpy())
        np.save(tmp / FEATURES, graph.sub_feat.detach().cpu().numpy())
        np.save(tmp / ADJ, edge_rows(graph.edge_index, graph.edge_weight))
        np.save(tmp / SUB_ADJ, edge_rows(graph.sub_edge_index, graph.sub_edge_weight))
        if names is not None:
            (tmp / FEATURE_NAMES).write_text("\n".join(names) + "\n", encoding="utf-8")
        if getattr(graph, "pos", None) is not None:
            _save_positions(tmp / POSITIONS, graph.pos)
        if getattr(graph, "sub_pos", None) is not None:
            _save_positions(tmp / SUB_POSITIONS, graph.sub_pos)
