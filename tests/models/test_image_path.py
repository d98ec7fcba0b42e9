"""The image path: shares relative to an equal split, spot predictions, and what it learns."""

import numpy as np
import pytest
import torch

from soscope.models.aggregation import aggregate, aggregate_mean
from soscope.models.image_path import ImagePath, combine_priors, image_shares, level_offset
from soscope.models.likelihoods import make_likelihood

SUB_TO_SPOT = torch.tensor([0, 0, 0, 1, 1])


def test_shares_average_one_for_counts_and_zero_for_gaussian_blocks():
    likelihood = make_likelihood("joint_gaussian", 3, protein_dim=1)
    eta = torch.randn(5, 3)
    shares = image_shares(likelihood, eta, SUB_TO_SPOT, 2, temperature=0.7)
    means = aggregate_mean(shares, SUB_TO_SPOT, 2)
    torch.testing.assert_close(means[:, 0], torch.zeros(2), atol=1e-6, rtol=0)
    torch.testing.assert_close(means[:, 1:], torch.ones(2, 2))
    # Count shares follow exp(t·η): the ratio of two subspots of one spot.
    ratio = shares[0, 1] / shares[1, 1]
    torch.testing.assert_close(ratio, torch.exp(0.7 * (eta[0, 1] - eta[1, 1])))


def test_temperature_zero_is_the_equal_split():
    likelihood = make_likelihood("nb", 2)
    shares = image_shares(likelihood, torch.randn(5, 2), SUB_TO_SPOT, 2, temperature=0.0)
    torch.testing.assert_close(shares, torch.ones(5, 2))


def test_spot_prediction_is_the_sum_of_subspot_means_for_counts():
    likelihood = make_likelihood("nb", 2)
    path = ImagePath(4, likelihood)
    eta = torch.randn(5, 2)
    predicted = path.spot_distribution(eta, SUB_TO_SPOT, 2)
    torch.testing.assert_close(
        predicted.mean, aggregate(eta.exp(), SUB_TO_SPOT, 2), rtol=1e-5, atol=1e-5
    )
    gaussian = ImagePath(4, make_likelihood("gaussian", 2))
    predicted = gaussian.spot_distribution(eta, SUB_TO_SPOT, 2)
    torch.testing.assert_close(predicted.mean, aggregate_mean(eta, SUB_TO_SPOT, 2))


def test_it_starts_at_the_offset_and_the_offset_is_a_constant_over_spots():
    likelihood = make_likelihood("nb", 2)
    x = torch.tensor([[1.0, 4.0], [3.0, 4.0]])
    offset = level_offset(likelihood, x.mean(0))
    torch.testing.assert_close(offset, torch.log(torch.tensor([2.0, 4.0])))
    path = ImagePath(3, likelihood, hidden=8)
    torch.testing.assert_close(path(torch.randn(5, 3), offset), offset.expand(5, 2))
    gaussian = make_likelihood("joint_gaussian", 2, protein_dim=1)
    torch.testing.assert_close(
        level_offset(gaussian, x.mean(0)), torch.tensor([2.0, np.log(4.0)], dtype=torch.float32)
    )


def test_it_learns_from_spot_totals_which_subspot_holds_more():
    """Spots of two subspots each; a gene is 4× higher where the feature is 1. Trained only on
    spot totals of spots that mix the two kinds in varying numbers, it shares mixed spots out
    toward the feature."""
    torch.manual_seed(0)
    n = 60
    feat = torch.randint(0, 2, (2 * n, 1)).float()
    sub_to_spot = torch.arange(n).repeat_interleave(2)
    truth = 5.0 * (1 + 3 * feat)  # per subspot
    totals = aggregate(truth, sub_to_spot, n)
    likelihood = make_likelihood("poisson", 1)
    path = ImagePath(1, likelihood)
    offset = level_offset(likelihood, (totals / 2).mean(0))
    optimizer = torch.optim.Adam(path.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        predicted = path.spot_distribution(path(feat, offset), sub_to_spot, n)
        (-predicted.log_prob(totals.round()).mean()).backward()
        optimizer.step()
    shares = image_shares(likelihood, path(feat, offset).detach(), sub_to_spot, n, 1.0)
    mixed = feat.view(n, 2).sum(1) == 1
    high = (shares.view(n, 2) * feat.view(n, 2)).sum(1)[mixed]
    assert high.min() > 1.5  # of 2 (equal split 1; truth 1.6)


def test_priors_combine_as_factors_and_shifts():
    likelihood = make_likelihood("joint_gaussian", 2, protein_dim=1)
    first = torch.tensor([[1.0, 2.0]])
    second = torch.tensor([[0.5, 3.0]])
    assert combine_priors(likelihood, None, second) is second
    assert combine_priors(likelihood, first, second) is second  # written into it
    torch.testing.assert_close(second, torch.tensor([[1.5, 6.0]]))


@pytest.mark.parametrize("hidden", [0, 16])
def test_weight_matrices_are_the_linear_weights(hidden):
    path = ImagePath(3, make_likelihood("nb", 2), hidden)
    assert len(path.weight_matrices()) == (2 if hidden else 1)
    assert all(w.dim() == 2 for w in path.weight_matrices())
