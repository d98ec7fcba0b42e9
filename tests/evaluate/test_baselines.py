"""Baselines: shapes, exactness on a constant field, and consistency with the spots."""

import numpy as np
import pytest

from soscope.datasets import make_synthetic_tissue
from soscope.evaluate.baselines import (
    BASELINES,
    image_regression,
    interpolate,
    replicate,
    run_baseline,
)
from soscope.evaluate.metrics import spot_means


@pytest.fixture(scope="module")
def tissue():
    return make_synthetic_tissue(n_rows=5, n_cols=5, n_features=4, seed=3)


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_returns_subspot_profiles(tissue, name):
    out = run_baseline(name, tissue.to_section())
    assert out.shape == tissue.truth.shape
    assert np.isfinite(out).all()


def test_every_baseline_keeps_a_constant_field(tissue):
    section = tissue.to_section()
    section.graph = section.graph.clone()
    section.graph.x = section.graph.x.new_full(section.graph.x.shape, 3.0)
    for name in BASELINES:
        np.testing.assert_allclose(run_baseline(name, section), 3.0, rtol=1e-6)


def test_image_regression_reaggregates_to_the_spots(tissue):
    g = tissue.graph
    x, sub_to_spot = g.x.numpy(), g.sub_to_spot.numpy()
    out = image_regression(x, g.sub_feat.numpy(), sub_to_spot)
    np.testing.assert_allclose(spot_means(out, sub_to_spot, len(x)), x, rtol=1e-5, atol=1e-6)
    assert (out >= 0).all()
    assert not np.allclose(out, replicate(x, sub_to_spot))  # the image moved something


def test_image_regression_fits_the_spot_level_line_for_gaussian_data():
    x = np.array([[-1.0], [2.0]])
    sub_feat = np.array([[0.0], [1.0], [2.0], [3.0]])
    sub_to_spot = np.array([0, 0, 1, 1])
    out = image_regression(x, sub_feat, sub_to_spot, alpha=0.0, likelihood="gaussian")
    # Slope 3 / 2 from the spot means (0.5, -1) and (2.5, 2); spot means are kept.
    np.testing.assert_allclose(out.ravel(), [-1.75, -0.25, 1.25, 2.75])


def test_interpolate_with_a_tiny_bandwidth_returns_the_nearest_spot(tissue):
    x = tissue.graph.x.numpy()
    out = interpolate(x, tissue.spot_pos, tissue.spot_pos, bandwidth=1e-3)
    np.testing.assert_allclose(out, x, rtol=1e-6)


def test_interpolate_blends_neighbouring_spots():
    spot_pos = np.array([[0.0, 0.0], [10.0, 0.0]])
    x = np.array([[0.0], [4.0]])
    out = interpolate(x, spot_pos, np.array([[5.0, 0.0], [0.0, 0.0]]), bandwidth=5.0)
    assert out[0, 0] == pytest.approx(2.0)
    assert out[1, 0] == pytest.approx(4.0 / (1.0 + np.exp(2.0)))


def test_unknown_baseline_is_refused(tissue):
    with pytest.raises(ValueError, match="unknown baseline"):
        run_baseline("oracle", tissue.to_section())
