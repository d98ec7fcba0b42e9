"""The image ceiling: a ridge fitted on the truth of other spots, held to the spots."""

import numpy as np

from soscope.evaluate.ceilings import image_ceiling
from soscope.evaluate.metrics import spot_means, within_spot_pearson


def linear_section(n_spots: int = 30, k: int = 4, seed: int = 0):
    """Subspot profiles that are a linear map of their image features (plus an offset)."""
    rng = np.random.default_rng(seed)
    feat = rng.normal(size=(n_spots * k, 3))
    truth = 10.0 + feat @ rng.normal(size=(3, 5))
    sub_to_spot = np.repeat(np.arange(n_spots), k)
    return truth, feat, spot_means(truth, sub_to_spot, n_spots), sub_to_spot


def test_features_that_determine_the_truth_reach_it():
    truth, feat, x, sub_to_spot = linear_section()
    out = image_ceiling(truth, feat, x, sub_to_spot, likelihood="gaussian")
    np.testing.assert_allclose(spot_means(out, sub_to_spot, len(x)), x, atol=1e-9)
    assert np.nanmin(within_spot_pearson(out, truth, sub_to_spot)) > 0.99


def test_no_spot_is_predicted_from_its_own_truth():
    truth, feat, x, sub_to_spot = linear_section()
    changed = truth.copy()
    changed[sub_to_spot == 7] += np.arange(4.0)[:, None] * 5  # only spot 7's own subspots
    before, after = (
        image_ceiling(t, feat, x, sub_to_spot, likelihood="gaussian", alpha=1.0)
        for t in (truth, changed)
    )
    np.testing.assert_allclose(after[sub_to_spot == 7], before[sub_to_spot == 7])
    assert not np.allclose(after[sub_to_spot != 7], before[sub_to_spot != 7])


def test_constant_features_have_no_ceiling():
    truth, feat, x, sub_to_spot = linear_section()
    assert image_ceiling(truth, np.ones_like(feat), x, sub_to_spot) is None
