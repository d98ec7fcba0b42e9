"""Held-out spots: a validation signal that needs no ground truth.

A seeded fraction of spots has its profile hidden from training and is scored on how well the
model predicts it from its neighbourhood and image. No trace of it is left: its profile is
replaced by the mean of its training neighbours, and its edges in the spot graph, whose
weights were computed from its profile, weigh what an edge between training spots weighs on
average.
"""

from __future__ import annotations

import torch

from soscope.data.sample import SpotGraph


def hold_out_spots(graph: SpotGraph, fraction: float, seed: int = 0) -> SpotGraph:
    """A copy of `graph` with `val_mask` (N bool), the true profiles `x_true`, and `x` imputed."""
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
    n = graph.num_spots
    generator = torch.Generator().manual_seed(seed)
    count = max(1, round(fraction * n))
    val_mask = torch.zeros(n, dtype=torch.bool)
    val_mask[torch.randperm(n, generator=generator)[:count]] = True
    held = graph.clone()
    held.x_true = graph.x
    held.val_mask = val_mask
    held.x = impute_from_neighbours(graph.x, graph.edge_index, val_mask)
    held.edge_weight = blind_weights(graph.edge_index, graph.edge_weight, val_mask)
    return held


def blind_weights(
    edge_index: torch.Tensor, weight: torch.Tensor, hidden: torch.Tensor
) -> torch.Tensor:
    """Edge weights with every edge between two spots that touches a hidden one set to the mean
    weight of the edges between visible spots (self-loops keep theirs)."""
    src, dst = edge_index
    touches = (hidden[src] | hidden[dst]) & (src != dst)
    visible = ~(hidden[src] | hidden[dst]) & (src != dst)
    fill = weight[visible].mean() if visible.any() else weight.new_tensor(1.0)
    return torch.where(touches, fill, weight)


def impute_from_neighbours(
    x: torch.Tensor, edge_index: torch.Tensor, hidden: torch.Tensor
) -> torch.Tensor:
    """Replace hidden rows by the mean of their visible neighbours (the visible mean if none)."""
    src, dst = edge_index
    use = ~hidden[src] & hidden[dst]
    sums = torch.zeros_like(x).index_add(0, dst[use], x[src[use]])
    counts = torch.zeros(x.size(0), dtype=x.dtype).index_add(
        0, dst[use], torch.ones_like(dst[use], dtype=x.dtype)
    )
    fallback = x[~hidden].mean(0, keepdim=True).expand_as(x)
    imputed = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], fallback)
    return torch.where(hidden[:, None], imputed, x)
