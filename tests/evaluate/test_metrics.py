"""Metrics against hand-computed values, and their behaviour on constant features."""

import warnings

import numpy as np
import pytest

from soscope.evaluate import metrics
from soscope.evaluate.baselines import replicate
from soscope.evaluate.metrics import (
    coverage,
    pearson_per_feature,
    rasterize,
    spearman_per_feature,
    spot_consistency_error,
    ssim_per_feature,
    summarize,
    within_spot_pearson,
)

SUB_TO_SPOT = np.array([0, 0, 1, 1])


def test_pearson_and_spearman_match_hand_values():
    truth = np.array([[1.0], [2.0], [3.0], [4.0]])
    pred = np.array([[1.0], [2.0], [2.0], [10.0]])
    # Pearson: deviations (-2.75, -1.75, -1.75, 6.25) against (-1.5, -0.5, 0.5, 1.5).
    assert pearson_per_feature(pred, truth)[0] == pytest.approx(13.5 / np.sqrt(52.75 * 5.0))
    # Spearman: tied ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4) give r = 4.5 / sqrt(4.5 · 5).
    assert spearman_per_feature(pred, truth)[0] == pytest.approx(3.0 / np.sqrt(10.0))
    assert spearman_per_feature(truth**3, truth)[0] == pytest.approx(1.0)


def test_constant_features_score_nan_without_warnings():
    truth = np.column_stack([np.arange(4.0), np.full(4, 2.0)])
    pred = np.column_stack([np.full(4, 1.0), np.arange(4.0)])
    pos = np.column_stack([np.arange(4.0), np.zeros(4)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for scores in (
            pearson_per_feature(pred, truth),
            spearman_per_feature(pred, truth),
            ssim_per_feature(truth, truth, pos)[1:],
        ):
            assert np.isnan(scores).all()
        summary = summarize(pred, truth, truth[[0, 2]], SUB_TO_SPOT, pos)
    assert np.isnan(summary["median_pearson"]) and np.isnan(summary["median_spearman"])


def test_within_spot_r_is_zero_for_replicate_and_one_for_truth():
    truth = np.array([[1.0, 5.0], [3.0, 1.0], [2.0, 0.0], [6.0, 4.0]])
    x = np.array([[2.0, 3.0], [4.0, 2.0]])
    assert np.isnan(within_spot_pearson(replicate(x, SUB_TO_SPOT), truth, SUB_TO_SPOT)).all()
    np.testing.assert_allclose(within_spot_pearson(truth, truth, SUB_TO_SPOT), 1.0)
    assert summarize(replicate(x, SUB_TO_SPOT), truth, x, SUB_TO_SPOT)[
        "median_within_spot_pearson"
    ] == pytest.approx(0.0)


def test_spot_consistency_error_is_relative_l2_of_the_spot_means():
    x = np.array([[2.0], [4.0]])
    pred = np.array([[1.0], [3.0], [4.0], [6.0]])  # re-aggregates to (2, 5)
    assert spot_consistency_error(pred, x, SUB_TO_SPOT) == pytest.approx(1.0 / np.sqrt(20.0))


def test_rasterize_averages_each_cell_and_leaves_empty_cells_nan():
    pos = np.array([[0.2, 0.1], [0.7, 0.4], [1.5, 0.5], [0.5, 1.5]])  # (x, y)
    values = np.array([[1.0], [3.0], [7.0], [9.0]])
    maps = rasterize(values, pos, cell=1.0)
    assert maps.shape == (1, 2, 2)
    np.testing.assert_array_equal(maps[0], [[2.0, 7.0], [9.0, np.nan]])


def test_ssim_is_one_for_identical_maps_and_lower_for_noise():
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:16, 0:16]
    pos = np.column_stack([xs.ravel(), ys.ravel()]).astype(float)
    truth = np.column_stack([np.sin(xs / 3.0).ravel(), (ys > 8).ravel().astype(float)])
    np.testing.assert_allclose(ssim_per_feature(truth, truth, pos), 1.0)
    noisy = ssim_per_feature(truth + rng.normal(0, 0.5, truth.shape), truth, pos)
    assert (noisy < 0.9).all()
    full = summarize(truth, truth, truth, np.arange(len(truth)), pos)
    assert full["median_ssim"] == pytest.approx(1.0)
    assert "median_ssim" not in summarize(truth, truth, truth, np.arange(len(truth)))


def test_ssim_scores_features_independently_of_the_chunking(monkeypatch):
    rng = np.random.default_rng(1)
    pos = rng.uniform(0, 20, (150, 2))
    truth = rng.normal(size=(150, 3)) + pos[:, :1]
    pred = truth + rng.normal(size=truth.shape)
    whole = ssim_per_feature(pred, truth, pos)
    monkeypatch.setattr(metrics, "SSIM_CHUNK", 1)
    np.testing.assert_allclose(ssim_per_feature(pred, truth, pos), whole)


def test_coverage_counts_truth_inside_the_band():
    pred = np.array([[0.0, 0.0], [1.0, np.nan]])
    sd = np.array([[1.0, 1.0], [0.5, 1.0]])
    truth = np.array([[0.5, 1.5], [2.0, 0.0]])
    assert coverage(pred, sd, truth, 1) == pytest.approx(1 / 3)
    assert coverage(pred, sd, truth, 2) == 1.0
    assert np.isnan(coverage(pred[:, 1:2] * np.nan, sd[:, 1:2], truth[:, 1:2], 1))
