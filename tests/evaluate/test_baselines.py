"""Baselines: shapes, exactness on a constant field, and consistency with the spots."""

import numpy as np
import pytest

from soscope.datasets import make_synthetic_tissue
from soscope.evaluate.baselines import (
    ALPHAS,
    BASELINES,
    _bordered_ridge,
    combined_regression,
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


def test_interpolate_can_leave_each_subspots_own_spot_out():
    spot_pos = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    x = np.array([[1.0], [4.0], [9.0]])
    sub_pos = np.array([[0.0, 0.0], [10.0, 0.0]])
    out = interpolate(x, spot_pos, sub_pos, bandwidth=5.0, exclude=np.array([0, 1]))
    assert out[0, 0] == pytest.approx(4.0 + 5.0 / (1.0 + np.exp(6.0)))  # spots 1 and 2 only
    assert out[1, 0] == pytest.approx(5.0)  # spots 0 and 2, equally far


@pytest.mark.parametrize("name", ["interpolate_rescaled", "combined_regression"])
def test_consistent_baselines_reaggregate_to_the_spots(tissue, name):
    g = tissue.graph
    x, sub_to_spot = g.x.numpy(), g.sub_to_spot.numpy()
    out = run_baseline(name, tissue.to_section())
    np.testing.assert_allclose(spot_means(out, sub_to_spot, len(x)), x, rtol=1e-5, atol=1e-6)
    assert not np.allclose(out, replicate(x, sub_to_spot))


def test_bordered_ridge_solves_each_feature_and_its_leave_one_out_error():
    """One shared block and one column per output: the same as solving each ridge on its own,
    and the leave-one-out error of refitting without each row."""
    rng = np.random.default_rng(0)
    f, v, y = rng.normal(size=(12, 3)), rng.normal(size=(12, 2)), rng.normal(size=(12, 2))
    weights, slopes, error = _bordered_ridge(f, v, y, alpha=0.7)
    brute_error = 0.0
    for g in range(2):
        design = np.column_stack([f, v[:, g]])
        coef = np.linalg.solve(design.T @ design + 0.7 * np.eye(4), design.T @ y[:, g])
        np.testing.assert_allclose(coef, [*weights[:, g], slopes[g]], rtol=1e-10)
        for i in range(12):
            keep = np.arange(12) != i
            d = design[keep]
            c = np.linalg.solve(d.T @ d + 0.7 * np.eye(4), d.T @ y[keep, g])
            brute_error += ((y[i, g] - design[i] @ c) / y[:, g].std()) ** 2
    assert error == pytest.approx(brute_error, rel=1e-8)


def test_regressions_choose_their_penalty_without_the_truth(tissue):
    """The penalty is one of ALPHAS, picked from the spots: the output is that fixed one's."""
    g = tissue.graph
    x, feat, sub_to_spot = g.x.numpy(), g.sub_feat.numpy(), g.sub_to_spot.numpy()
    chosen = image_regression(x, feat, sub_to_spot)
    assert any(np.allclose(chosen, image_regression(x, feat, sub_to_spot, a)) for a in ALPHAS)
    positions = (g.pos.numpy(), g.sub_pos.numpy())
    chosen = combined_regression(x, feat, sub_to_spot, *positions)
    assert any(
        np.allclose(chosen, combined_regression(x, feat, sub_to_spot, *positions, alpha=a))
        for a in ALPHAS
    )
