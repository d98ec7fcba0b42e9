"""The aggregation benchmark's pseudo-spots on square and hexagonal lattices."""

import numpy as np
import pytest

from soscope.data.graph import VISIUM_OFFSETS
from soscope.evaluate.pseudospots import make_pseudospots


def square(n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Units of an n_rows × n_cols grid: (row, col), (x, y) positions and distinct values."""
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    coords = np.column_stack([rows, cols])
    values = np.column_stack([np.arange(len(rows)) ** 1.5, rows * 10.0 + cols])
    return coords, coords[:, ::-1] * 5.0, values


def visium(n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Units of a Visium lattice (row + col even), positions one unit apart, distinct values."""
    rows, c = np.divmod(np.arange(n_rows * n_cols), n_cols)
    cols = 2 * c + rows % 2
    pos = np.column_stack([cols * 0.5, rows * np.sqrt(3) / 2])
    values = np.column_stack([np.arange(len(rows)) ** 1.5, rows * 100.0 + cols])
    return np.column_stack([rows, cols]), pos, values


def units_of(section) -> np.ndarray:
    """Unit indices (N×K) of each pseudo-spot."""
    return section.meta["unit_index"][np.argsort(section.graph.sub_to_spot.numpy(), kind="stable")]


def test_grid_blocks_of_two():
    coords, pos, values = square(6, 6)
    section = make_pseudospots(values, coords, pos, "grid", k=2)
    g = section.graph
    assert g.num_spots == 9 and g.num_subspots == 36
    groups = units_of(section).reshape(9, 4)
    blocks = coords[groups] // 2
    assert (blocks == blocks[:, :1]).all()  # each spot is one 2×2 block
    assert len({tuple(b) for b in blocks[:, 0]}) == 9
    np.testing.assert_allclose(g.x.numpy(), values[groups].mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(section.truth, values[section.meta["unit_index"]], rtol=1e-6)
    np.testing.assert_allclose(g.pos.numpy(), pos[groups].mean(axis=1), rtol=1e-6)
    assert section.meta["image_features"] == "constant"
    assert g.sub_feat.shape == (36, 1)


def test_grid_keeps_only_complete_blocks():
    coords, pos, values = square(7, 7)
    section = make_pseudospots(values, coords, pos, "grid", k=3)
    kept = coords[section.meta["unit_index"]]
    assert section.graph.num_spots == 4
    assert kept.max() == 5  # row and column 6 form incomplete blocks
    # The 2×2 block lattice: each spot has two neighbours plus its self-loop.
    assert np.bincount(section.graph.edge_index[0].numpy()).tolist() == [3, 3, 3, 3]


def test_grid_blocks_follow_the_lattice_numbering_not_the_first_row():
    coords, pos, values = square(8, 8)
    section = make_pseudospots(values, coords + 2, pos, "grid", k=3)  # rows/cols 2–9
    kept = coords[section.meta["unit_index"]] + 2
    assert section.graph.num_spots == 4  # blocks 1–2 × 1–2; rows/cols 2 and 9 are incomplete
    assert kept.min() == 3 and kept.max() == 8


def test_hexagonal_groups_are_a_centre_and_its_six_neighbours():
    coords, pos, values = visium(12, 12)
    features = np.random.default_rng(0).normal(size=(len(coords), 3))
    section = make_pseudospots(values, coords, pos, "visium", image_features=features)
    g = section.graph
    groups = units_of(section).reshape(g.num_spots, 7)
    assert g.num_spots > 0
    assert len(np.unique(groups)) == groups.size  # disjoint
    offsets = coords[groups[:, 1:]] - coords[groups[:, :1]]
    for ring in offsets:
        assert {tuple(o) for o in ring} == {tuple(o) for o in VISIUM_OFFSETS}
    np.testing.assert_allclose(g.x.numpy(), values[groups].mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(g.sub_feat.numpy(), features[section.meta["unit_index"]], rtol=1e-6)
    # Neighbouring pseudo-spots are adjacent groups: centres sqrt(7) units apart.
    src, dst = g.edge_index.numpy()
    gap = np.linalg.norm(g.pos.numpy()[src] - g.pos.numpy()[dst], axis=1)
    np.testing.assert_allclose(gap[src != dst], np.sqrt(7), rtol=1e-5)
    assert (src != dst).sum() > 0


def test_hexagonal_groups_keep_only_complete_groups():
    coords, pos, values = visium(12, 12)
    groups = units_of(make_pseudospots(values, coords, pos, "visium")).reshape(-1, 7)
    rows, cols = coords[groups[:, 0]].T
    assert rows.min() >= 1 and rows.max() <= 10  # centres on the border lack neighbours
    assert cols.min() >= 1 and cols.max() <= coords[:, 1].max() - 1


def test_unknown_platform_or_no_complete_group_is_refused():
    coords, pos, values = square(2, 2)
    with pytest.raises(ValueError, match="unknown platform"):
        make_pseudospots(values, coords, pos, "hexagon")
    with pytest.raises(ValueError, match="no complete group"):
        make_pseudospots(values, coords, pos, "grid", k=3)
