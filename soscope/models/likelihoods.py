"""Likelihoods of spot and subspot profiles, as `torch.distributions` over feature blocks.

A likelihood is a list of blocks, each a count or continuous family over a slice of the
features: `nb` and `poisson` are one block, `joint_pnb` is Poisson proteins + NB genes,
`joint_gaussian` is Normal (e.g. ATAC scores) + NB genes. Count blocks are scored on spot
totals (the per-subspot mean x times K); continuous blocks on x itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import (
    Distribution,
    Independent,
    Normal,
    Poisson,
    constraints,
)

from soscope.models.aggregation import aggregate, spot_counts

EPS = 1e-7
NO_SHAPE = torch.Size()
FAMILIES = ("nb", "poisson", "gaussian")


def join_blocks(parts: Sequence[Tensor]) -> Tensor:
    """Feature blocks side by side; a single block as it is, not copied."""
    return parts[0] if len(parts) == 1 else torch.cat(list(parts), dim=-1)


def split_columns(values: Tensor, sizes: Sequence[int]) -> tuple[Tensor, ...]:
    """`values` split along its last axis into runs of `sizes`; one run is `values` itself, with
    no split for autograd to undo by a copy."""
    return (values,) if len(sizes) == 1 else values.split(list(sizes), dim=-1)


def positive(raw: Tensor) -> Tensor:
    """Softplus + 1e-7: the positivity map of every rate, dispersion and scale."""
    return F.softplus(raw) + EPS


class NegativeBinomial(torch.distributions.NegativeBinomial):
    """torch's NB with total count r > 0 and logits l, whose log-probability
    lgamma(r + x) − lgamma(x + 1) − lgamma(r) + (r + x)·logσ(−l) + x·l takes lgamma of r at r's
    own shape: a dispersion per feature, shared by every row, costs one lgamma (and digamma
    in the backward pass) per feature, not one per entry."""

    def __init__(self, total_count: Tensor, logits: Tensor) -> None:
        super().__init__(total_count, logits=logits, validate_args=False)
        self.count = total_count

    def log_prob(self, value: Tensor) -> Tensor:
        r, logits = self.count, self.logits
        both = r + value
        scored = both * F.logsigmoid(-logits) + value * logits
        return scored + torch.lgamma(both) - torch.lgamma(value + 1) - torch.lgamma(r)


@dataclass(frozen=True)
class Block:
    """A slice of `size` features modelled by one family; `scale` is the Gaussian σ and MSE divisor."""

    family: str
    size: int
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; choose from {FAMILIES}")
        if self.size <= 0:
            raise ValueError(f"a {self.family} block needs at least one feature, got {self.size}")
        if self.scale <= 0:
            raise ValueError(f"scale must be positive, got {self.scale}")

    @property
    def is_count(self) -> bool:
        return self.family != "gaussian"

    @property
    def spot_width(self) -> int:
        """Raw decoder outputs per block at spot level (the Gaussian σ is the fixed scale)."""
        return self.size * (1 if self.family in ("poisson", "gaussian") else 2)

    @property
    def subspot_width(self) -> int:
        """Raw decoder outputs per block at subspot level (the Gaussian σ is learned)."""
        return self.size * (1 if self.family == "poisson" else 2)

    def spot_distribution(self, raw: Tensor) -> Distribution:
        """p(x_spot | z) from the spot decoder's raw outputs (stage 1)."""
        if self.family == "gaussian":
            return Normal(raw, torch.full_like(raw, self.scale))
        return self._count_distribution(raw)

    def subspot_distribution(
        self, raw: Tensor, k: Tensor, prior: Tensor | None = None
    ) -> Distribution:
        """p(y_subspot | z, image) from the enhancement decoder's raw outputs (stage 2).

        `k` (M×1) is the number of subspots of each subspot's spot; the Gaussian σ is clamped
        to [scale/K, 100·scale/K] as in the original. A `prior` (see
        `soscope.models.context.share_prior`) multiplies count means (an NB's total count, so
        subspots of one logit still add exactly) and shifts Gaussian means.
        """
        if self.family == "gaussian":
            mu, sigma = self._gaussian_parameters(raw, k)
            return Normal(mu if prior is None else mu + prior, sigma)
        return self._count_distribution(raw, prior)

    def shared_aggregate(
        self, raw: Tensor, k: Tensor, prior_total: Tensor | None = None
    ) -> Distribution:
        """`aggregate` of the subspot distributions of spots whose subspots all share their
        spot's raw outputs (`raw` and `k`, N×1, one row per spot), given `prior_total`, the sum
        over each spot's subspots of their prior factors (count blocks, each at least EPS) or
        shifts (Gaussian): the same distribution without any per-subspot tensor (an NB's total
        counts add exactly, as the subspots share a logit)."""
        if self.family == "gaussian":
            k = k.clamp(min=1)  # no division by 0 for a spot without subspots
            mu, sigma = self._gaussian_parameters(raw, k)
            mean = mu if prior_total is None else mu + prior_total / k
            return Normal(mean, sigma / k.sqrt())
        return self._count_distribution(
            raw, k.to(raw.dtype) if prior_total is None else prior_total
        )

    def _gaussian_parameters(self, raw: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """μ and σ, σ clamped to [scale/K, 100·scale/K] as in the original."""
        mu, raw_sigma = raw.chunk(2, dim=-1)
        low = self.scale / k
        return mu, torch.minimum(torch.maximum(positive(raw_sigma), low), 100 * low)

    def _count_distribution(self, raw: Tensor, prior: Tensor | None = None) -> Distribution:
        # A zero share would give an NB no total count at all: at least EPS.
        factor = 1.0 if prior is None else prior.clamp(min=EPS)
        if self.family == "poisson":
            return Poisson(positive(raw) * factor, validate_args=False)
        logits, raw_r = raw.chunk(2, dim=-1)
        total_count = positive(raw_r) * factor
        return NegativeBinomial(total_count, logits)

    def aggregate(self, dist: Distribution, sub_to_spot: Tensor, n_spots: int) -> Distribution:
        """Distribution of each spot's total (counts) or mean (Gaussian) of its subspots.

        Poisson rates add; an NB sum is matched by its mean and variance, which is exact when
        the subspots share a logit (total counts then add); Gaussian means average and
        variances add over K².
        """
        if self.family == "poisson":
            return Poisson(aggregate(dist.rate, sub_to_spot, n_spots), validate_args=False)
        if self.family == "gaussian":
            k = spot_counts(sub_to_spot, n_spots).to(dist.mean.dtype).clamp(min=1)
            mean = aggregate(dist.mean, sub_to_spot, n_spots) / k
            var = aggregate(dist.variance, sub_to_spot, n_spots) / k.square()
            return Normal(mean, var.sqrt())
        mean = aggregate(dist.mean, sub_to_spot, n_spots)
        var = aggregate(dist.variance, sub_to_spot, n_spots)
        # NB(r, p): mean = r·p/(1−p), var = mean/(1−p); so 1−p = mean/var and r = mean²/(var−mean).
        excess = (var - mean).clamp(min=EPS)
        total_count = mean.square() / excess + EPS
        logits = torch.log(excess + EPS) - torch.log(mean + EPS)
        return NegativeBinomial(total_count, logits)


class BlockDistribution(Distribution):
    """Independent blocks of features side by side; log_prob sums over all features."""

    arg_constraints: dict = {}
    support = constraints.real

    def __init__(self, parts: Sequence[Distribution]) -> None:
        self.parts = list(parts)
        self.sizes = [p.mean.size(-1) for p in self.parts]
        batch_shape = self.parts[0].mean.shape[:-1]
        super().__init__(batch_shape, torch.Size([sum(self.sizes)]), validate_args=False)

    @property
    def mean(self) -> Tensor:
        return join_blocks([p.mean for p in self.parts])

    @property
    def variance(self) -> Tensor:
        return join_blocks([p.variance for p in self.parts])

    def log_prob(self, value: Tensor) -> Tensor:
        pieces = split_columns(value, self.sizes)
        return sum(Independent(p, 1).log_prob(v) for p, v in zip(self.parts, pieces, strict=True))

    def rsample(self, sample_shape: torch.Size = NO_SHAPE) -> Tensor:
        return torch.cat([p.rsample(sample_shape) for p in self.parts], dim=-1)

    def sample(self, sample_shape: torch.Size = NO_SHAPE) -> Tensor:
        return torch.cat([p.sample(sample_shape) for p in self.parts], dim=-1)


class Likelihood:
    """The observation model of a dataset: feature blocks and how data meet them."""

    def __init__(self, name: str, blocks: Sequence[Block]) -> None:
        self.name = name
        self.blocks = list(blocks)
        self.sizes = [b.size for b in self.blocks]

    @property
    def n_features(self) -> int:
        return sum(self.sizes)

    @property
    def spot_width(self) -> int:
        return sum(b.spot_width for b in self.blocks)

    @property
    def subspot_width(self) -> int:
        return sum(b.subspot_width for b in self.blocks)

    @property
    def encoder_takes_totals(self) -> bool:
        """nb and poisson feed the encoder spot totals x·K; Gaussian and joint ones feed x."""
        return len(self.blocks) == 1 and self.blocks[0].is_count

    def encoder_input(self, x: Tensor, k: Tensor) -> Tensor:
        """What the graph encoder sees for spot profiles `x` with `k` (N×1) subspots each."""
        return x * k if self.encoder_takes_totals else x

    def spot_target(self, x: Tensor, k: Tensor) -> Tensor:
        """Observed spot values to score: rounded totals for count blocks, x for Gaussian ones."""
        parts = []
        for block, xb in zip(self.blocks, self.split(x), strict=True):
            parts.append(torch.round(xb * k) if block.is_count else xb)
        return join_blocks(parts)

    def per_subspot(self, spot_values: Tensor, k: Tensor) -> Tensor:
        """Spot-scale values back to the per-subspot mean of the data contract (inverse scoring)."""
        parts = [
            vb / k if block.is_count else vb
            for block, vb in zip(self.blocks, self.split(spot_values), strict=True)
        ]
        return join_blocks(parts)

    def split(self, values: Tensor) -> tuple[Tensor, ...]:
        """Split the feature axis into the blocks."""
        return split_columns(values, self.sizes)

    def spot_distribution(self, raw: Tensor) -> BlockDistribution:
        widths = [b.spot_width for b in self.blocks]
        parts = split_columns(raw, widths)
        return BlockDistribution(
            [b.spot_distribution(r) for b, r in zip(self.blocks, parts, strict=True)]
        )

    def subspot_distribution(
        self, raw: Tensor, k: Tensor, prior: Tensor | None = None
    ) -> BlockDistribution:
        widths = [b.subspot_width for b in self.blocks]
        parts = split_columns(raw, widths)
        priors = [None] * len(self.blocks) if prior is None else self.split(prior)
        return BlockDistribution(
            [
                b.subspot_distribution(r, k, p)
                for b, r, p in zip(self.blocks, parts, priors, strict=True)
            ]
        )

    def prior_totals(self, prior: Tensor, sub_to_spot: Tensor, n_spots: int) -> Tensor:
        """N×G: the sum over each spot's subspots of a subspot prior's factors (count blocks,
        each at least EPS as `subspot_distribution` takes them) or shifts (Gaussian)."""
        parts = [
            aggregate(p.clamp(min=EPS) if block.is_count else p, sub_to_spot, n_spots)
            for block, p in zip(self.blocks, self.split(prior), strict=True)
        ]
        return join_blocks(parts)

    def shared_aggregate(self, raw: Tensor, k: Tensor, totals: Tensor | None) -> BlockDistribution:
        """`aggregate(subspot_distribution(raw[sub_to_spot], k[sub_to_spot], prior))` for raw
        outputs `raw` shared by each spot's subspots (one row per spot), computed at spot level:
        the per-subspot prior enters only through its `prior_totals`."""
        widths = [b.subspot_width for b in self.blocks]
        parts = split_columns(raw, widths)
        totals = [None] * len(self.blocks) if totals is None else self.split(totals)
        return BlockDistribution(
            [
                block.shared_aggregate(r, k, t)
                for block, r, t in zip(self.blocks, parts, totals, strict=True)
            ]
        )

    def restrict(self, columns: slice) -> Likelihood:
        """The likelihood of the features `columns` (a slice of step 1): the blocks' parts
        that fall inside it."""
        first, stop, _ = columns.indices(self.n_features)
        blocks, start = [], 0
        for block in self.blocks:
            size = min(stop, start + block.size) - max(first, start)
            if size > 0:
                blocks.append(replace(block, size=size))
            start += block.size
        return Likelihood(self.name, blocks)

    def column_chunks(self, width: int) -> list[tuple[slice, Likelihood]]:
        """The feature axis in runs of at most `width` columns, none across two blocks, each
        with its likelihood: per-feature terms computed run by run need no M×G tensor."""
        chunks, start = [], 0
        for block in self.blocks:
            for first in range(start, start + block.size, width):
                columns = slice(first, min(first + width, start + block.size))
                chunks.append((columns, self.restrict(columns)))
            start += block.size
        return chunks

    def aggregate(
        self, dist: BlockDistribution, sub_to_spot: Tensor, n_spots: int
    ) -> BlockDistribution:
        return BlockDistribution(
            [
                b.aggregate(p, sub_to_spot, n_spots)
                for b, p in zip(self.blocks, dist.parts, strict=True)
            ]
        )


LIKELIHOODS = ("nb", "poisson", "gaussian", "joint_pnb", "joint_gaussian")


def make_likelihood(
    name: str,
    n_features: int,
    scale: float = 1.0,
    protein_dim: int = 0,
    scale_p: float | None = None,
    scale_g: float | None = None,
) -> Likelihood:
    """Build a likelihood by name; joint ones take the first `protein_dim` features as block one."""
    if name in ("nb", "poisson", "gaussian"):
        return Likelihood(name, [Block(name, n_features, scale)])
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; choose from {', '.join(LIKELIHOODS)}")
    if not 0 < protein_dim < n_features:
        raise ValueError(
            f"likelihood {name} needs 0 < protein_dim < n_features, "
            f"got protein_dim={protein_dim}, n_features={n_features}"
        )
    first = "poisson" if name == "joint_pnb" else "gaussian"
    return Likelihood(
        name,
        [
            Block(first, protein_dim, scale_p if scale_p is not None else scale),
            Block("nb", n_features - protein_dim, scale_g if scale_g is not None else scale),
        ],
    )
