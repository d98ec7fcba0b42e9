"""The image path: each subspot's profile predicted from its own image feature alone.

A spot's own profile tells how much it holds, not how that is shared among its subspots: a
decoder that sees the spot's latent can match every spot total whatever it does inside the
spot. The image path cannot see any spot's profile. It maps one subspot's image feature to
that subspot's expected profile (log means for count blocks, means for Gaussian blocks) and is
trained on the spot totals alone — the sum of its subspot predictions against the observed
spot, across all spots — so it learns the image → profile map the way a regression on spot
images would, and its differences between the subspots of one spot become their shares.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal, Poisson

from soscope.models.aggregation import aggregate_mean, spot_counts, spot_logsumexp, spot_softmax
from soscope.models.likelihoods import (
    EPS,
    BlockDistribution,
    Likelihood,
    NegativeBinomial,
    join_blocks,
    positive,
)

ALL = slice(None)


class ImagePath(nn.Module):
    """Image feature → per-subspot profile (an MLP with `hidden` units, or linear if 0), and a
    per-feature spread (NB dispersion, Gaussian σ) for scoring its spot totals."""

    def __init__(self, feat_dim: int, likelihood: Likelihood, hidden: int = 0) -> None:
        super().__init__()
        width = likelihood.n_features
        body: list[nn.Module] = [] if hidden == 0 else [nn.Linear(feat_dim, hidden), nn.ReLU()]
        self.net = nn.Sequential(*body, nn.Linear(hidden or feat_dim, width))
        # Starts from equal shares: the last layer's weights are zero, its bias the offset's.
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.raw_spread = nn.Parameter(torch.zeros(width))
        self.likelihood = likelihood

    def weight_matrices(self) -> list[nn.Parameter]:
        """The weights of its linear maps (what an L2 penalty acts on; biases are free)."""
        return [layer.weight for layer in self.net if isinstance(layer, nn.Linear)]

    def forward(self, feat: Tensor, offset: Tensor) -> Tensor:
        """M×G: log means (count blocks) or means (Gaussian blocks) of every subspot.

        `offset` (G) is the features' typical per-subspot level (`level_offset`), so the net
        learns only departures from it.
        """
        return self.predict(self.hidden(feat, offset.dtype), offset)

    def hidden(self, feat: Tensor, dtype: torch.dtype) -> Tensor:
        """What the last layer reads: the hidden units (the features themselves if linear)."""
        return self.net[:-1](feat.to(dtype))

    def predict(self, hidden: Tensor, offset: Tensor, columns: slice = ALL) -> Tensor:
        """`forward` of the features `columns` (offset of all features), from `hidden`."""
        last = self.net[-1]  # the offset joins its bias: no second M×G pass
        return F.linear(hidden, last.weight[columns], last.bias[columns] + offset[columns])

    def spot_distribution(
        self, eta: Tensor, sub_to_spot: Tensor, n_spots: int, columns: slice = ALL
    ) -> BlockDistribution:
        """What the image path predicts for each spot: the total (mean) of its subspots, for
        the features `columns` of `eta` (one block's, or all)."""
        likelihood = self.likelihood.restrict(columns)
        parts = []
        blocks = zip(
            likelihood.blocks,
            likelihood.split(eta),
            likelihood.split(self.raw_spread[columns]),
            strict=True,
        )
        for block, eta_b, spread in blocks:
            if not block.is_count:
                mean = aggregate_mean(eta_b, sub_to_spot, n_spots)
                parts.append(Normal(mean, positive(spread).expand_as(mean)))
                continue
            # log of the spot total Σ exp(η) + EPS, without an M×G exp or scatter
            log_sum = spot_logsumexp(eta_b, sub_to_spot, n_spots)
            log_total = torch.logaddexp(log_sum, log_sum.new_tensor(math.log(EPS)))
            if block.family == "poisson":
                parts.append(Poisson(torch.exp(log_total), validate_args=False))
            else:  # NB with mean `total` and dispersion r: logits = log(total / r)
                r = positive(spread)  # per feature: NegativeBinomial takes lgamma(r) once
                parts.append(NegativeBinomial(r, log_total - torch.log(r)))
        return BlockDistribution(parts)


def level_offset(likelihood: Likelihood, mean: Tensor) -> Tensor:
    """The image path's starting point from the features' mean per-subspot level over the
    section's training spots (`mean`, G): its log for count blocks. A constant over spots, so
    it tells the image path nothing about any one spot."""
    parts = [
        torch.log(m.clamp(min=EPS)) if block.is_count else m
        for block, m in zip(likelihood.blocks, likelihood.split(mean), strict=True)
    ]
    return torch.cat(parts)


@torch.no_grad()
def image_shares(
    likelihood: Likelihood, eta: Tensor, sub_to_spot: Tensor, n_spots: int, temperature: float
) -> Tensor:
    """M×G: how the image path shares each spot among its subspots, relative to an equal split.

    Count blocks: exp(t·η) over its mean within the spot (a factor with mean 1 per spot);
    Gaussian blocks: t·(η − its spot mean) (a shift with mean 0). The temperature t < 1 shrinks
    the image's contrasts toward the equal split, as its predictions are uncertain. A prior:
    no gradient flows through it.
    """
    parts = []
    for block, eta_b in zip(likelihood.blocks, likelihood.split(eta), strict=True):
        if block.is_count:  # K × the softmax of t·η over the spot's subspots
            shares = spot_softmax(eta_b * temperature, sub_to_spot, n_spots)
            shares.mul_(spot_counts(sub_to_spot, n_spots).to(shares.dtype)[sub_to_spot])
        else:
            shares = eta_b - aggregate_mean(eta_b, sub_to_spot, n_spots)[sub_to_spot]
            shares.mul_(temperature)
        parts.append(shares)
    return join_blocks(parts)


def combine_priors(likelihood: Likelihood, first: Tensor | None, second: Tensor) -> Tensor:
    """Two share priors in one, written into `second` (a fresh prior such as `image_shares`'):
    factors multiply (count blocks), shifts add (Gaussian blocks)."""
    if first is None:
        return second
    blocks = zip(likelihood.blocks, likelihood.split(first), likelihood.split(second), strict=True)
    for block, a, b in blocks:
        if block.is_count:
            b.mul_(a)
        else:
            b.add_(a)
    return second
