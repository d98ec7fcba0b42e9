"""Spot-consistent output: enhanced subspots that re-aggregate exactly to the observed spot."""

from __future__ import annotations

import torch
from torch import Tensor

from soscope.models.aggregation import aggregate, spot_counts, spot_relative
from soscope.models.likelihoods import Likelihood, join_blocks

CONSISTENCY_MODES = ("none", "rescale")


def count_factor(sub_b: Tensor, x_b: Tensor, k: Tensor, sub_to_spot: Tensor) -> Tensor:
    """Per spot: observed total x·K over the predicted subspot sum (1 where that sum is 0)."""
    total = aggregate(sub_b, sub_to_spot, x_b.size(0))
    return torch.where(total > 0, x_b * k / total.clamp(min=1e-12), 1.0)


def mean_shift(sub_b: Tensor, x_b: Tensor, k: Tensor, sub_to_spot: Tensor) -> Tensor:
    """Per spot: observed value minus the mean of its predicted subspots (Gaussian blocks)."""
    return x_b - aggregate(sub_b, sub_to_spot, x_b.size(0)) / k.clamp(min=1)


def rescale_to_spots(
    likelihood: Likelihood, sub_values: Tensor, x: Tensor, sub_to_spot: Tensor
) -> Tensor:
    """Make each spot's subspots add up (count blocks) or average (Gaussian blocks) to the spot.

    Count blocks are rescaled per spot and feature, keeping the shares the model predicts
    (a spot whose prediction sums to zero is split equally; a zero spot stays zero);
    Gaussian blocks are shifted by the spot's mean difference: the values relative to their
    spot's mean (`spot_relative`), times or plus the spot.
    """
    parts = []
    blocks = zip(likelihood.blocks, likelihood.split(sub_values), likelihood.split(x), strict=True)
    for block, sub_b, x_b in blocks:
        if block.is_count:
            relative = spot_relative(sub_b.clamp(min=0), sub_to_spot, x.size(0), ratio=True)
            parts.append(relative.mul_(x_b[sub_to_spot]))
        else:
            relative = spot_relative(sub_b, sub_to_spot, x.size(0), ratio=False)
            parts.append(relative.add_(x_b[sub_to_spot]))
    return join_blocks(parts)


def rescale_spread(
    likelihood: Likelihood, sd: Tensor, sub_values: Tensor, x: Tensor, sub_to_spot: Tensor
) -> Tensor:
    """The predictive sd that goes with `rescale_to_spots(sub_values)`.

    Count blocks scale by the same observed / predicted spot total as their means (1 where the
    prediction sums to zero); a Gaussian shift leaves the sd as it is.
    """
    k = spot_counts(sub_to_spot, x.size(0)).to(x.dtype)
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
            sd_b = sd_b * count_factor(sub_b.clamp(min=0), x_b, k, sub_to_spot)[sub_to_spot]
        parts.append(sd_b)
    return join_blocks(parts)


def consistent_prior(
    likelihood: Likelihood, mean: Tensor, prior: Tensor | None, x: Tensor, sub_to_spot: Tensor
) -> Tensor:
    """The share prior that makes subspot means `mean` (decoded under `prior`) re-aggregate to
    the observed spots: `rescale_to_spots` as a factor (count blocks) or shift (Gaussian blocks)
    folded into the prior, differentiable, so training can hold the spots exactly too."""
    k = spot_counts(sub_to_spot, x.size(0)).to(x.dtype)
    priors = [None] * len(likelihood.blocks) if prior is None else likelihood.split(prior)
    parts = []
    blocks = zip(
        likelihood.blocks, likelihood.split(mean), likelihood.split(x), priors, strict=True
    )
    for block, mean_b, x_b, prior_b in blocks:
        if block.is_count:
            factor = count_factor(mean_b, x_b, k, sub_to_spot)[sub_to_spot]
            parts.append(factor if prior_b is None else prior_b * factor)
        else:
            shift = mean_shift(mean_b, x_b, k, sub_to_spot)[sub_to_spot]
            parts.append(shift if prior_b is None else prior_b + shift)
    return join_blocks(parts)
