"""Subspot layouts: where the subspots of a spot lie."""

import numpy as np
import pytest

from soscope.preprocess.layouts import grid_subspots, visium_subspots

SPOTS = np.array([[100.0, 200.0], [160.0, 200.0], [130.0, 252.0]])


def test_visium_layout_has_centre_then_hexagon():
    layout = visium_subspots(SPOTS, spot_diameter=42.0)
    assert layout.sub_pos.shape == (21, 2) and layout.per_spot == 7
    np.testing.assert_array_equal(layout.sub_to_spot, np.repeat(np.arange(3), 7))
    assert layout.sub_to_spot.dtype == np.int64
    blocks = layout.sub_pos.reshape(3, 7, 2)
    np.testing.assert_allclose(blocks[:, 0], SPOTS)
    ring = np.linalg.norm(blocks[:, 1:] - SPOTS[:, None], axis=-1)
    np.testing.assert_allclose(ring, 14.0)
    np.testing.assert_allclose(blocks.mean(axis=1), SPOTS, atol=1e-9)


def test_visium_subspot_discs_tile_the_spot():
    layout = visium_subspots(SPOTS[:1], spot_diameter=42.0)
    assert layout.sub_diameter == pytest.approx(14.0)
    centres = layout.sub_pos
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    np.fill_diagonal(gaps, np.inf)
    np.testing.assert_allclose(gaps.min(axis=1), layout.sub_diameter)  # discs touch
    reach = np.linalg.norm(centres - SPOTS[0], axis=1) + layout.sub_diameter / 2
    assert reach.max() == pytest.approx(21.0)  # and stay inside the spot


@pytest.mark.parametrize("factor", [1, 2, 3, 5])
def test_grid_layout_is_a_row_major_sub_grid(factor):
    layout = grid_subspots(SPOTS, spot_spacing=30.0, factor=factor)
    k = factor * factor
    assert layout.sub_pos.shape == (3 * k, 2) and layout.per_spot == k
    assert layout.sub_diameter == pytest.approx(30.0 / factor)
    np.testing.assert_array_equal(layout.sub_to_spot, np.repeat(np.arange(3), k))
    first = layout.sub_pos[:k] - SPOTS[0]
    xs, ys = first[:, 0].reshape(factor, factor), first[:, 1].reshape(factor, factor)
    np.testing.assert_allclose(np.diff(xs, axis=1), 30.0 / factor)  # x grows along a row
    np.testing.assert_allclose(np.diff(ys, axis=0), 30.0 / factor)  # y grows down the rows
    np.testing.assert_allclose(first.mean(axis=0), 0.0, atol=1e-9)
    assert np.abs(first).max() + layout.sub_diameter / 2 == pytest.approx(15.0)


def test_bad_layout_arguments_raise():
    with pytest.raises(ValueError, match="factor"):
        grid_subspots(SPOTS, 30.0, factor=0)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        visium_subspots(np.zeros(4), 42.0)


def test_cells_scatter_a_variable_number_inside_each_spot():
    import numpy as np

    from soscope.preprocess.layouts import cells_in_spots

    spots = np.array([[100.0, 100.0], [200.0, 100.0], [150.0, 190.0]])
    layout = cells_in_spots(spots, 40.0, np.random.default_rng(0), min_cells=2, max_cells=6)
    counts = np.bincount(layout.sub_to_spot, minlength=3)
    assert layout.per_spot == 0
    assert ((counts >= 2) & (counts <= 6)).all()
    assert (np.diff(layout.sub_to_spot) >= 0).all()
    distance = np.linalg.norm(layout.sub_pos - spots[layout.sub_to_spot], axis=1)
    assert (distance <= 20.0).all()


def _hex_lattice(n_rows: int, n_cols: int) -> np.ndarray:
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    return np.column_stack([rows.ravel(), (2 * cols + rows % 2).ravel()])


def _rotation(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def test_lattice_fit_recovers_a_rotated_flipped_slide():
    from soscope.preprocess.layouts import fit_lattice

    coords = _hex_lattice(4, 5)
    steps = _rotation(0.3) @ np.array([[0.0, 50.0], [-86.6, 0.0]])  # rows run up the image
    pos = coords @ steps.T + [400.0, 900.0]
    fit = fit_lattice(coords, pos + np.random.default_rng(0).uniform(-0.5, 0.5, pos.shape))
    np.testing.assert_allclose(fit.steps, steps, atol=0.2)
    assert fit.spacing(np.array([(0, 2), (1, 1)])) == pytest.approx(100.0, abs=0.5)
    assert fit.angle((0, 2)) == pytest.approx(0.3, abs=0.01)


def test_lattice_fit_refuses_positions_that_do_not_follow_the_coordinates():
    from soscope.errors import SoScopeInputError
    from soscope.preprocess.layouts import fit_lattice

    coords = _hex_lattice(4, 5)
    pos = coords[:, ::-1] * [50.0, 86.6]  # x from the column, y from the row
    swapped = pos.copy()
    swapped[::3] = swapped[::3, ::-1]
    with pytest.raises(SoScopeInputError, match=r"spots\.csv.*stray.*swapped"):
        fit_lattice(coords, swapped, source="spots.csv")
    with pytest.raises(SoScopeInputError, match="single line"):
        fit_lattice(np.column_stack([np.zeros(5), 2 * np.arange(5)]), pos[:5])


def test_visium_ring_follows_the_lattice_angle():
    layout = visium_subspots(SPOTS[:1], spot_diameter=42.0, angle=np.pi / 2)
    np.testing.assert_allclose(layout.sub_pos[1] - SPOTS[0], [0.0, 14.0], atol=1e-9)


def test_bayesspace_six_point_a_third_of_the_way_to_each_neighbour():
    from soscope.preprocess.layouts import bayesspace_subspots

    coords = _hex_lattice(3, 3)
    pos = coords[:, ::-1] * [50.0, 50.0 * np.sqrt(3)]  # pitch 100 px
    layout = bayesspace_subspots(pos, spot_pitch=100.0)
    assert layout.per_spot == 6 and layout.sub_diameter == pytest.approx(100 / 3)
    centre = 4  # (row 1, col 3): all six neighbours present
    neighbours = pos[np.linalg.norm(pos - pos[centre], axis=1).round(6) == 100.0]
    assert len(neighbours) == 6
    towards = pos[centre] + (neighbours - pos[centre]) / 3
    mine = layout.sub_pos[layout.sub_to_spot == centre]
    gaps = np.linalg.norm(mine[:, None] - towards[None], axis=-1)
    np.testing.assert_allclose(gaps.min(axis=1), 0.0, atol=1e-9)


def test_grid_on_a_rotated_lattice_and_its_fine_coordinates():
    from soscope.data.graph import GRID_OFFSETS, lattice_edges
    from soscope.preprocess.layouts import fine_grid_coords

    rows, cols = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    coords = np.column_stack([rows.ravel(), cols.ravel()])
    steps = _rotation(0.2) @ np.array([[0.0, 60.0], [60.0, 0.0]])
    layout = grid_subspots(coords @ steps.T, steps, factor=3)
    fine = fine_grid_coords(coords, 3)
    assert fine.shape == (12 * 9, 2) and len(np.unique(fine, axis=0)) == 108
    src, dst = lattice_edges(fine, GRID_OFFSETS)
    np.testing.assert_allclose(
        np.linalg.norm(layout.sub_pos[src] - layout.sub_pos[dst], axis=1), 20.0
    )
    assert len(src) == 2 * (9 * 11 + 12 * 8)  # every fine-lattice neighbour pair, both ways


def test_given_cells_go_to_the_spot_that_contains_them():
    from soscope.preprocess.layouts import assign_cells

    cells = np.array([[101.0, 100.0], [250.0, 250.0], [199.0, 103.0], [99.0, 95.0], [150.0, 200.0]])
    spots = np.array([[100.0, 100.0], [200.0, 100.0], [150.0, 190.0]])
    layout, kept = assign_cells(spots, 40.0, cells, cell_diameter=8.0)
    np.testing.assert_array_equal(kept, [0, 3, 2, 4])  # by spot, input order within a spot
    np.testing.assert_array_equal(layout.sub_to_spot, [0, 0, 1, 2])
    np.testing.assert_array_equal(layout.sub_pos, cells[kept])
    assert layout.per_spot == 0 and layout.sub_diameter == 8.0
    estimated, _ = assign_cells(spots, 40.0, cells)
    assert estimated.sub_diameter > 0
