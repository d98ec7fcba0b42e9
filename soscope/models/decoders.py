"""Decoders: the spot decoder of stage 1 and the enhancement decoder of stage 2."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class SpotDecoder(nn.Module):
    """MLP z → hidden → hidden → raw likelihood parameters of a spot (stage 1)."""

    def __init__(self, z_dim: int, out_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(z_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class ResidualBlock(nn.Module):
    """Linear-ReLU-Linear-ReLU with a skip connection."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
        )

    def forward(self, h: Tensor) -> Tensor:
        return h + self.body(h)


class EnhancementDecoder(nn.Module):
    """Raw likelihood parameters of each subspot from its spot's Z and its own image feature.

    The input is [Z_spot / K, (2 − 1/K)·Y_subspot], the original's weighting, with K the
    number of subspots of that spot (per subspot, so variable layouts work too), followed by
    the subspot's spatial context when `context_dim` > 0 (see `soscope.models.context`).
    """

    def __init__(
        self, z_dim: int, feat_dim: int, out_dim: int, hidden: int = 128, context_dim: int = 0
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(z_dim + feat_dim + context_dim, hidden),
            ResidualBlock(hidden),
            ResidualBlock(hidden),
            nn.Linear(hidden, out_dim),
        )

    def forward(
        self, z_sub: Tensor, feat: Tensor, k_sub: Tensor, context: Tensor | None = None
    ) -> Tensor:
        """`z_sub` (M×z) is each subspot's spot latent, `k_sub` (M×1) its spot's subspot count.

        The first layer applies its weight's column blocks to the parts of the input one by one,
        the same map as on their concatenation without building it: no M×(z + D) copy, and no
        gradient computed for the image features, which need none.
        """
        first = self.net[0]
        weights = first.weight.split(
            [z_sub.size(1), feat.size(1), first.in_features - z_sub.size(1) - feat.size(1)], dim=1
        )
        h = F.linear(z_sub / k_sub, weights[0], first.bias)
        h = h + (2 - 1 / k_sub) * F.linear(feat.to(z_sub.dtype), weights[1])
        if context is not None:
            h = h + F.linear(context, weights[2])
        return self.net[1:](h)
