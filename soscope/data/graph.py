"""Spot and subspot graphs: lattice or k-nearest neighbours, weighted by feature similarity.

The rule (the original's BuildGraph): neighbours come from the platform's lattice on
integer array coordinates (or from k nearest neighbours for irregular positions), and an edge
with feature distance d gets weight exp((λ − d)/δ), λ the minimum neighbour distance and
δ = (median − λ)/ln(scale), so the closest pair weighs 1 and the median pair 1/scale.
Everything is vectorised lookups or a KD-tree: linear-ish in the number of nodes.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from soscope.errors import SoScopeInputError

# Array-coordinate (row, col) offsets of a node's neighbours.
VISIUM_OFFSETS = np.array([(0, 2), (0, -2), (1, 1), (1, -1), (-1, 1), (-1, -1)], dtype=np.int64)
GRID_OFFSETS = np.array([(1, 0), (-1, 0), (0, 1), (0, -1)], dtype=np.int64)
PLATFORM_OFFSETS = {"visium": VISIUM_OFFSETS, "grid": GRID_OFFSETS}

_CHUNK_ELEMENTS = 1 << 22  # feature values gathered per chunk when measuring edge distances


def platform_offsets(platform: str) -> np.ndarray:
    """Neighbour offsets of a platform's lattice: `visium` (hexagonal, 6) or `grid` (square, 4)."""
    if platform not in PLATFORM_OFFSETS:
        raise ValueError(f"unknown platform {platform!r}; choose from {sorted(PLATFORM_OFFSETS)}")
    return PLATFORM_OFFSETS[platform]


def lattice_edges(
    array_coords: np.ndarray, offsets: np.ndarray, source: str = "positions"
) -> np.ndarray:
    """Directed edges i→j (2, E) wherever coords[j] == coords[i] + offset, found by sorted keys.

    Edges come grouped by source node, in the order of `offsets`. Duplicate coordinates raise
    `SoScopeInputError` naming `source`.
    """
    coords = _integer_coords(array_coords, source)
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if len(coords) == 0:
        return np.empty((2, 0), dtype=np.int64)
    # Shift so every coordinate and every neighbour query is non-negative, then encode
    # (row, col) as one int64 key row * width + col.
    pad = np.abs(offsets).max(initial=0)
    shifted = coords - coords.min(axis=0) + pad
    width = shifted[:, 1].max() + pad + 1
    keys = shifted[:, 0] * width + shifted[:, 1]
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    repeated = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if len(repeated):
        first = coords[order[repeated[0]]]
        raise SoScopeInputError(
            source,
            f"{len(repeated)} duplicate array coordinates, e.g. (row, col) = "
            f"({first[0]}, {first[1]}); every spot needs its own lattice position",
        )
    queries = (shifted[:, None, :] + offsets[None, :, :]).reshape(-1, 2)
    query_keys = queries[:, 0] * width + queries[:, 1]
    slot = np.minimum(np.searchsorted(sorted_keys, query_keys), len(sorted_keys) - 1)
    found = sorted_keys[slot] == query_keys
    src = np.repeat(np.arange(len(coords), dtype=np.int64), len(offsets))[found]
    dst = order[slot[found]].astype(np.int64)
    return np.stack([src, dst])


def knn_edges(pos: np.ndarray, k: int) -> np.ndarray:
    """Symmetric k-nearest-neighbour edges (2, E) of irregular positions, without self edges.

    An edge i→j exists when j is among i's k nearest or i among j's; sorted by (source, target).
    """
    pos = np.asarray(pos, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise ValueError(f"positions must be (N, 2), got {pos.shape}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n = len(pos)
    k = min(k, n - 1)
    if k < 1:
        return np.empty((2, 0), dtype=np.int64)
    _, idx = cKDTree(pos).query(pos, k=k + 1, workers=-1)
    # Drop each node itself (usually column 0, but ties among duplicates may move it) and
    # keep its first k other neighbours.
    keep = idx != np.arange(n)[:, None]
    keep &= np.cumsum(keep, axis=1) <= k
    src = np.broadcast_to(np.arange(n)[:, None], idx.shape)[keep]
    dst = idx[keep]
    keys = np.sort(np.concatenate([src * n + dst, dst * n + src]))
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]]  # np.unique, without its slow hashing
    return np.stack([keys // n, keys % n]).astype(np.int64)


def edge_distances(features: np.ndarray, edge_index: np.ndarray) -> np.ndarray:
    """L2 distance (E,) between the feature rows of each edge's endpoints, in chunks of edges."""
    features = np.asarray(features)
    src, dst = np.asarray(edge_index)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, features.shape[1]))
    out = np.empty(len(src), dtype=np.float64)
    for start in range(0, len(src), chunk):
        stop = start + chunk
        diff = features[src[start:stop]].astype(np.float64) - features[dst[start:stop]]
        out[start:stop] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return out


def similarity_weights(
    features: np.ndarray, edge_index: np.ndarray, scale: float = 2.0
) -> np.ndarray:
    """Edge weights (E,) exp((λ − d)/δ) from the endpoints' feature distance d (module rule).

    When more than half the edges share the minimum distance (δ = 0, e.g. many all-zero spots),
    δ is taken from the median of the distances above the minimum instead; when all distances
    are equal every weight is 1.
    """
    if not scale > 1:
        raise ValueError(f"scale must be > 1 (the median pair gets weight 1/scale), got {scale}")
    d = edge_distances(features, edge_index)
    if len(d) == 0:
        return np.empty(0, dtype=np.float32)
    lam = d.min()
    above = d[d > lam]
    if len(above) == 0:
        return np.ones(len(d), dtype=np.float32)
    median = np.median(d)
    if median == lam:
        median = np.median(above)
    delta = (median - lam) / np.log(scale)
    return np.exp((lam - d) / delta).astype(np.float32)


def build_spot_graph(
    array_coords: np.ndarray,
    features: np.ndarray,
    platform: str,
    scale: float = 2.0,
    source: str = "positions",
) -> tuple[Tensor, Tensor]:
    """Spot graph A of a lattice platform: (edge_index long (2, E), edge_weight float (E,)).

    No self-loops: the in-memory sample adds them.
    """
    edges = lattice_edges(array_coords, platform_offsets(platform), source=source)
    return _as_tensors(edges, similarity_weights(features, edges, scale))


def build_knn_graph(
    pos: np.ndarray, features: np.ndarray, k: int, scale: float = 2.0
) -> tuple[Tensor, Tensor]:
    """Graph of irregular positions (subspots, cells) by symmetric kNN, weighted by similarity."""
    edges = knn_edges(pos, k)
    return _as_tensors(edges, similarity_weights(features, edges, scale))


def _integer_coords(array_coords: np.ndarray, source: str) -> np.ndarray:
    coords = np.asarray(array_coords)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise SoScopeInputError(source, f"array coordinates must be (N, 2), got {coords.shape}")
    is_integer = np.issubdtype(coords.dtype, np.integer)
    if not is_integer and not (np.all(np.isfinite(coords)) and np.all(coords == np.round(coords))):
        raise SoScopeInputError(source, "array coordinates must be integers")
    return coords.astype(np.int64)


def _as_tensors(edges: np.ndarray, weights: np.ndarray) -> tuple[Tensor, Tensor]:
    return torch.from_numpy(edges).long(), torch.from_numpy(weights).float()
