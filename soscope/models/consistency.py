"""Spot-consistent output: enhanced subspots that re-aggregate exactly to the observed spot."""

from __future__ import annotations

import torch
from torch import Tensor

from soscope.models.aggregation import aggregate, spot_counts
from soscope.models.likelihoods import EPS, Likelihood

CONSISTENCY_MODES = ("none", "rescale")


def rescale_to_spots(
    likelihood: Likelihood, sub_values: Tensor, x: Tensor, sub_to_spot: Tensor
) -> Tensor:
    """Make each spot's subspots add up (count blocks) or average (Gaussian blocks) to the spot.

    Count blocks are rescaled per spot and feature, keeping the shares the model predicts
    (a spot whose prediction sums to zero is split equally; a zero spot stays zero);
    Gaussian blocks are shifted by the spot's mean difference.
    """
    n = x.size(0)
    k = spot_counts(sub_to_spot, n).to(x.dtype)
    parts = []
    blocks = zip(likelihood.blocks, likelihood.split(sub_values), likelihood.split(x), strict=True)
    for block, sub_b, x_b in blocks:
        if block.is_count:
            sub_b = sub_b.clamp(min=0)
            total = aggregate(sub_b, sub_to_spot, n)[sub_to_spot]
            share = torch.where(total > 0, sub_b / total.clamp(min=1e-12), 1 / k[sub_to_spot])
            parts.append(share * (x_b * k)[sub_to_spot])
        else:
            mean = aggregate(sub_b, sub_to_spot, n) / k.clamp(min=1)
            parts.append(sub_b + (x_b - mean)[sub_to_spot])
    return torch.cat(parts, dim=-1)


def rescale_spread(
    likelihood: Likelihood, sd: Tensor, sub_values: Tensor, x: Tensor, sub_to_spot: Tensor
) -> Tensor:
    """The predictive sd that goes with `rescale_to_spots(sub_values)`.

    Count blocks scale by the same observed / predicted spot total as their means (1 where the
    prediction sums to zero); a Gaussian shift leaves the sd as it is.
    """
    n = x.size(0)
    k = spot_counts(sub_to_spot, n).to(x.dtype)
    parts = []
    blocks = zip(
        likelihood.blocks,
        likelihood.split(sd),
        likelihood.split(sub_values),
        likelihood.split(x),
        strict=True,
    )
    for block, sd_b, sub_b, x_b in blocks:
        if block.is_count:
            total = aggregate(sub_b.clamp(min=0), sub_to_spot, n)
            factor = torch.where(total > 0, x_b * k / total.clamp(min=1e-12), 1.0)
            sd_b = sd_b * factor[sub_to_spot]
        parts.append(sd_b)
    return torch.cat(parts, dim=-1)


def consistent_prior(
    likelihood: Likelihood, mean: Tensor, prior: Tensor | None, x: Tensor, sub_to_spot: Tensor
) -> Tensor:
    """The share prior that makes subspot means `mean` (decoded under `prior`) re-aggregate to
    the observed spots: `rescale_to_spots` as a factor (count blocks) or shift (Gaussian blocks)
    folded into the prior, differentiable, so training can hold the spots exactly too."""
    n = x.size(0)
    k = spot_counts(sub_to_spot, n).to(x.dtype)
    priors = [None] * len(likelihood.blocks) if prior is None else likelihood.split(prior)
    parts = []
    blocks = zip(
        likelihood.blocks, likelihood.split(mean), likelihood.split(x), priors, strict=True
    )
    for block, mean_b, x_b, prior_b in blocks:
        if block.is_count:
            total = aggregate(mean_b, sub_to_spot, n)
            factor = torch.where(total > 0, x_b * k / total.clamp(min=1e-12), 1.0)
            factor = factor.clamp(min=EPS)[sub_to_spot]  # a zero spot: (almost) zero means
            parts.append(factor if prior_b is None else prior_b * factor)
        else:
            shift = (x_b - aggregate(mean_b, sub_to_spot, n) / k.clamp(min=1))[sub_to_spot]
            parts.append(shift if prior_b is None else prior_b + shift)
    return torch.cat(parts, dim=-1)
