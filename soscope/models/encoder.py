"""The graph-transformer encoder q(Z | X, A) shared by both stages."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal
from torch_geometric.nn import TransformerConv

from soscope.models.likelihoods import positive


class GraphEncoder(nn.Module):
    """Three `TransformerConv` layers with ReLU between; the last emits μ and σ of Z per spot.

    Hidden width `hidden` per head (heads are concatenated), as in the original; the last
    layer's heads together emit 2·z_dim values, so z_dim·2 must divide by `heads`.
    """

    def __init__(self, in_dim: int, z_dim: int = 128, hidden: int = 128, heads: int = 1) -> None:
        super().__init__()
        if (2 * z_dim) % heads:
            raise ValueError(f"2·z_dim ({2 * z_dim}) must be divisible by heads ({heads})")
        self.z_dim = z_dim
        self.convs = nn.ModuleList(
            [
                TransformerConv(in_dim, hidden, heads=heads),
                TransformerConv(hidden * heads, hidden, heads=heads),
                TransformerConv(hidden * heads, 2 * z_dim // heads, heads=heads),
            ]
        )

    def forward(self, x: Tensor, edge_index: Tensor) -> Normal:
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h, edge_index)
            if i < len(self.convs) - 1:
                h = F.relu(h)
        mu, raw_sigma = h.split(self.z_dim, dim=-1)
        return Normal(mu, positive(raw_sigma))
