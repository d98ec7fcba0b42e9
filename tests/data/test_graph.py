"""Graph construction: lattice and kNN neighbours, similarity weights."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from soscope.data.graph import (
    GRID_OFFSETS,
    VISIUM_OFFSETS,
    build_knn_graph,
    build_spot_graph,
    knn_edges,
    lattice_edges,
    similarity_weights,
)
from soscope.errors import SoScopeInputError


def _hex_coords(n_rows: int, n_cols: int) -> np.ndarray:
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    return np.column_stack([rows.ravel(), (2 * cols + rows % 2).ravel()])


def _square_coords(n_rows: int, n_cols: int) -> np.ndarray:
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    return np.column_stack([rows.ravel(), cols.ravel()])


def _brute_force_edges(coords: np.ndarray, offsets: np.ndarray) -> set[tuple[int, int]]:
    return {
        (i, j)
        for i, a in enumerate(coords)
        for j, b in enumerate(coords)
        if any((b - a == off).all() for off in offsets)
    }


def _as_set(edges: np.ndarray) -> set[tuple[int, int]]:
    return set(map(tuple, edges.T.tolist()))


@pytest.mark.parametrize(
    ("coords", "offsets"),
    [(_hex_coords(5, 6), VISIUM_OFFSETS), (_square_coords(5, 6), GRID_OFFSETS)],
    ids=["hexagonal", "square"],
)
def test_lattice_edges_match_brute_force(coords, offsets):
    rng = np.random.default_rng(0)
    kept = rng.permutation(coords)[: len(coords) - 7] + np.array([3, -4])  # holes, shifted
    edges = lattice_edges(kept, offsets)
    assert edges.dtype == np.int64
    assert _as_set(edges) == _brute_force_edges(kept, offsets)
    assert len(_as_set(edges)) == edges.shape[1]
    assert np.all(np.diff(edges[0]) >= 0)  # grouped by source node


def test_interior_nodes_have_all_neighbours():
    edges = lattice_edges(_hex_coords(5, 5), VISIUM_OFFSETS)
    degree = np.bincount(edges[0], minlength=25)
    assert degree.max() == 6
    assert degree[2 * 5 + 2] == 6


def test_duplicate_coordinates_raise_naming_the_source():
    coords = np.array([[0, 0], [0, 2], [0, 0]])
    with pytest.raises(SoScopeInputError, match="tissue_positions.csv.*duplicate"):
        lattice_edges(coords, VISIUM_OFFSETS, source="tissue_positions.csv")


def test_non_integer_coordinates_raise():
    with pytest.raises(SoScopeInputError, match="integers"):
        lattice_edges(np.array([[0.5, 0.0], [1.0, 1.0]]), GRID_OFFSETS)


def test_similarity_weights_follow_the_rule():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(12, 4))
    edges = lattice_edges(_square_coords(3, 4), GRID_OFFSETS)
    distances = np.array([np.linalg.norm(features[i] - features[j]) for i, j in edges.T])
    lam, median, scale = distances.min(), np.median(distances), 3.0
    expected = np.exp((lam - distances) / ((median - lam) / np.log(scale)))
    weights = similarity_weights(features, edges, scale=scale)
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights, expected, rtol=1e-5)
    assert weights.max() == pytest.approx(1.0)
    np.testing.assert_allclose(np.median(weights), 1 / scale, rtol=1e-5)


def test_equal_distances_give_unit_weights():
    edges = lattice_edges(_square_coords(2, 3), GRID_OFFSETS)
    np.testing.assert_array_equal(similarity_weights(np.ones((6, 3)), edges), 1.0)


def test_many_identical_neighbours_still_give_graded_weights():
    features = np.zeros((6, 2))
    features[5] = [3.0, 4.0]
    edges = lattice_edges(_square_coords(2, 3), GRID_OFFSETS)
    weights = similarity_weights(features, edges)
    touches_odd_one = (edges == 5).any(axis=0)
    np.testing.assert_array_equal(weights[~touches_odd_one], 1.0)
    np.testing.assert_allclose(weights[touches_odd_one], 0.5, rtol=1e-6)


def test_scale_must_exceed_one():
    with pytest.raises(ValueError, match="scale"):
        similarity_weights(np.ones((2, 1)), np.array([[0], [1]]), scale=1.0)


def test_knn_edges_are_the_symmetric_union_without_self_edges():
    rng = np.random.default_rng(2)
    pos = rng.uniform(0, 100, size=(40, 2))
    edges = knn_edges(pos, k=4)
    distance = cdist(pos, pos)
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1)[:, :4]
    expected = {(i, int(j)) for i in range(40) for j in nearest[i]}
    expected |= {(j, i) for i, j in expected}
    assert _as_set(edges) == expected
    assert not np.any(edges[0] == edges[1])


def test_knn_with_fewer_points_than_k():
    edges = knn_edges(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]), k=6)
    assert _as_set(edges) == {(i, j) for i in range(3) for j in range(3) if i != j}
    assert knn_edges(np.zeros((1, 2)), k=3).shape == (2, 0)


def test_build_graphs_return_tensors_without_self_loops():
    coords = _hex_coords(4, 4)
    features = np.random.default_rng(3).poisson(5, size=(16, 3)).astype(float)
    edge_index, edge_weight = build_spot_graph(coords, features, "visium")
    assert edge_index.dtype == torch.long and edge_weight.dtype == torch.float32
    assert edge_index.shape == (2, edge_weight.numel())
    assert not torch.any(edge_index[0] == edge_index[1])
    pos = coords[:, ::-1] * np.array([50.0, 86.6])
    knn_index, knn_weight = build_knn_graph(pos, features, k=6)
    assert knn_index.shape[1] == knn_weight.numel() >= 16 * 6


def test_unknown_platform_raises():
    with pytest.raises(ValueError, match="platform"):
        build_spot_graph(_square_coords(2, 2), np.ones((4, 1)), "hexagon")
