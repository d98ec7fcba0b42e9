import torch

from soscope.models.consistency import consistent_prior, rescale_spread, rescale_to_spots
from soscope.models.likelihoods import make_likelihood

SUB_TO_SPOT = torch.tensor([0, 0, 1, 1, 2, 2])


def test_rescale_keeps_shares_splits_zero_predictions_and_shifts_gaussians():
    lik = make_likelihood("joint_gaussian", 2, protein_dim=1)
    sub = torch.tensor([[1.0, 1.0], [3.0, 3.0], [0.0, 0.0], [2.0, 0.0], [5.0, -1.0], [7.0, 0.0]])
    x = torch.tensor([[4.0, 4.0], [1.0, 3.0], [0.0, 0.0]])  # per-subspot means, K = 2
    out = rescale_to_spots(lik, sub, x, SUB_TO_SPOT)
    torch.testing.assert_close(out[:, 0], torch.tensor([3.0, 5.0, 0.0, 2.0, -1.0, 1.0]))  # shifted
    # Counts: shares kept (1:3 of 8), a zero prediction split equally, a zero spot stays zero.
    torch.testing.assert_close(out[:, 1], torch.tensor([2.0, 6.0, 3.0, 3.0, 0.0, 0.0]))
    sd = torch.ones(6, 2)
    spread = rescale_spread(lik, sd, sub, x, SUB_TO_SPOT)
    torch.testing.assert_close(spread[:, 0], sd[:, 0])
    torch.testing.assert_close(spread[:2, 1], torch.full((2,), 2.0))


def test_consistent_prior_gives_the_rescaled_means():
    torch.manual_seed(0)
    lik = make_likelihood("joint_pnb", 3, protein_dim=1)
    raw = torch.randn(6, lik.subspot_width)
    k = torch.full((6, 1), 2.0)
    x = torch.rand(3, 3) * 5
    prior = torch.rand(6, 3) + 0.5
    mean = lik.subspot_distribution(raw, k, prior).mean
    held = lik.subspot_distribution(raw, k, consistent_prior(lik, mean, prior, x, SUB_TO_SPOT))
    torch.testing.assert_close(held.mean, rescale_to_spots(lik, mean, x, SUB_TO_SPOT))
