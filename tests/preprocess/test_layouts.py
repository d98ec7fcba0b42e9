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
