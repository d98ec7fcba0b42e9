"""The original soScope dataset directory: read it (validated) and write it (atomically).

Files: `label.npy` (N×G spot profiles, the per-subspot mean), `adj.npy` (E×3 rows i, j, w of
the spot graph), `support_feature.npy` (N·K×D subspot image features, spot i's subspots at rows
i·K … i·K+K−1) and `sub_adj.npy` (E'×3, the subspot graph). Optional extras written and read by
soscope: `feature_names.txt` (one per line), `positions.csv` and `sub_positions.csv` (columns
x, y in full-resolution pixels). The files hold graphs without self-loops; in memory they have them.
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
    load_npy,
)
from soscope.errors import SoScopeInputError
from soscope.io_utils import atomic_dir

COUNT_LIKELIHOODS = ("nb", "poisson", "joint_pnb")


def _with_self_loops(edges: np.ndarray, n_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.as_tensor(edges[:, :2].T.astype(np.int64))
    weight = torch.as_tensor(edges[:, 2], dtype=torch.float32)
    return add_remaining_self_loops(index, weight, fill_value=1.0, num_nodes=n_nodes)


def _read_positions(path: Path, n_rows: int) -> torch.Tensor | None:
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path)
        pos = table[["x", "y"]].to_numpy(dtype=np.float64)
    except (KeyError, ValueError, pd.errors.ParserError) as err:
        raise SoScopeInputError(path, f"expected numeric columns x, y ({err})") from None
    check_matrix(pos, path, ncols=2)
    if len(pos) != n_rows:
        raise SoScopeInputError(path, f"has {len(pos)} rows, expected {n_rows}")
    return torch.as_tensor(pos, dtype=torch.float32)


def _read_feature_names(path: Path, n_features: int) -> list[str]:
    if not path.is_file():
        return [f"feature_{i}" for i in range(n_features)]
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) != n_features:
        raise SoScopeInputError(path, f"has {len(names)} names for {n_features} features")
    return names


def read_reference_dir(
    path: str | Path, likelihood: str | None = None, protein_dim: int = 0
) -> SpotGraph:
    """Read and validate a dataset directory; returns the graph sample with self-loops added.

    For a count likelihood the spot totals label·K must be non-negative integers (for
    `joint_gaussian`, the NB block after the first `protein_dim` features).
    """
    root = Path(path)
    if not root.is_dir():
        raise SoScopeInputError(root, "dataset directory not found")
    label = check_matrix(load_npy(root / "label.npy"), root / "label.npy")
    n_spots, n_features = label.shape
    feat_path = root / "support_feature.npy"
    features = check_matrix(load_npy(feat_path), feat_path)
    k = check_subspot_rows(features.shape[0], n_spots, f"{feat_path} (vs. label.npy)")
    adj = check_edges(load_npy(root / "adj.npy"), n_spots, root / "adj.npy")
    sub_adj = check_edges(load_npy(root / "sub_adj.npy"), n_spots * k, root / "sub_adj.npy")
    names = _read_feature_names(root / "feature_names.txt", n_features)
    if likelihood in COUNT_LIKELIHOODS or likelihood == "joint_gaussian":
        start = protein_dim if likelihood == "joint_gaussian" else 0
        check_counts(label[:, start:] * k, root / "label.npy", names[start:])

    edge_index, edge_weight = _with_self_loops(adj, n_spots)
    sub_edge_index, sub_edge_weight = _with_self_loops(sub_adj, n_spots * k)
    extra = {
        key: value
        for key, value in (
            ("pos", _read_positions(root / "positions.csv", n_spots)),
            ("sub_pos", _read_positions(root / "sub_positions.csv", n_spots * k)),
        )
        if value is not None
    }
    graph = make_spot_graph(
        torch.as_tensor(label),
        edge_index,
        edge_weight,
        torch.as_tensor(features),
        sub_edge_index,
        sub_edge_weight,
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


def _edges_without_loops(index: torch.Tensor, weight: torch.Tensor) -> np.ndarray:
    index, weight = remove_self_loops(index, weight)
    return np.column_stack([index.T.numpy().astype(np.float64), weight.numpy()])


def write_reference_dir(
    graph: SpotGraph, path: str | Path, feature_names: list[str] | None = None
) -> None:
    """Write a graph sample in the original's format; all files appear together or none."""
    n_spots = graph.num_spots
    counts = torch.bincount(graph.sub_to_spot, minlength=n_spots)
    k = int(counts[0])
    if not (counts == k).all() or not torch.equal(graph.sub_to_spot, fixed_layout(n_spots, k)):
        raise SoScopeInputError(
            path, "the original format needs K subspots per spot in spot order; this layout varies"
        )
    with atomic_dir(path) as tmp:
        np.save(tmp / "label.npy", graph.x.numpy())
        np.save(tmp / "support_feature.npy", graph.sub_feat.numpy())
        np.save(tmp / "adj.npy", _edges_without_loops(graph.edge_index, graph.edge_weight))
        np.save(
            tmp / "sub_adj.npy", _edges_without_loops(graph.sub_edge_index, graph.sub_edge_weight)
        )
        if feature_names is not None:
            (tmp / "feature_names.txt").write_text("\n".join(feature_names) + "\n")
        for name, pos in (("positions.csv", "pos"), ("sub_positions.csv", "sub_pos")):
            if getattr(graph, pos, None) is not None:
                xy = getattr(graph, pos).numpy()
                pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]}).to_csv(tmp / name, index=False)
