"""Subspot → spot aggregation, linear in subspots (no dense block-sum matrices).

When the subspots are in spot order with the same number K for every spot that has any (the
fixed layouts of the platforms, and their tiles, whose halo spots have none), a spot's rows are
one K-row block of an N×K×F view: sums, softmaxes and log-sum-exps over spots are then dense
reductions over that view, with no scatter, gather or M×F copy; other layouts use `index_add`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def spot_counts(sub_to_spot: Tensor, n_spots: int) -> Tensor:
    """K_i, the number of subspots of each spot, as an N×1 float column."""
    return torch.bincount(sub_to_spot, minlength=n_spots).unsqueeze(-1).float()


def spot_blocks(values: Tensor, sub_to_spot: Tensor, n_spots: int) -> tuple[Tensor, Tensor] | None:
    """(`values` viewed as S×K×F, the S spots those blocks belong to) when the subspots are
    sorted by spot and each spot has K subspots or none; None for any other layout."""
    m = sub_to_spot.numel()
    if m == 0 or (m > 1 and bool((sub_to_spot[1:] < sub_to_spot[:-1]).any())):
        return None
    counts = torch.bincount(sub_to_spot, minlength=n_spots)
    k = int(counts.max())
    if bool(((counts != 0) & (counts != k)).any()):
        return None
    spots = sub_to_spot[::k]
    return values.view(m // k, k, *values.shape[1:]), spots


def _at_spots(values: Tensor, spots: Tensor, n_spots: int, fill: float = 0.0) -> Tensor:
    """Rows for the spots `spots` placed among `n_spots` rows, `fill` elsewhere."""
    if len(spots) == n_spots:
        return values
    out = values.new_full((n_spots, *values.shape[1:]), fill)
    return out.index_copy(0, spots, values)


def aggregate(values: Tensor, sub_to_spot: Tensor, n_spots: int) -> Tensor:
    """Sum the rows of `values` (M×F) into their spots (N×F)."""
    blocks = spot_blocks(values, sub_to_spot, n_spots)
    if blocks is not None:
        return _at_spots(blocks[0].sum(1), blocks[1], n_spots)
    out = values.new_zeros((n_spots, *values.shape[1:]))
    return out.index_add(0, sub_to_spot, values)


def aggregate_mean(values: Tensor, sub_to_spot: Tensor, n_spots: int) -> Tensor:
    """Average the rows of `values` over each spot's subspots (a spot with none gets 0)."""
    k = spot_counts(sub_to_spot, n_spots).to(values.dtype).clamp(min=1)
    return aggregate(values, sub_to_spot, n_spots) / k


def spot_logsumexp(values: Tensor, sub_to_spot: Tensor, n_spots: int) -> Tensor:
    """log Σ exp over each spot's subspots (N×F; −inf for a spot without subspots), without
    overflow."""
    blocks = spot_blocks(values, sub_to_spot, n_spots)
    if blocks is not None:
        return _at_spots(torch.logsumexp(blocks[0], dim=1), blocks[1], n_spots, -torch.inf)
    top = values.detach().new_full((n_spots, *values.shape[1:]), -torch.inf)
    index = sub_to_spot.view(-1, *[1] * (values.dim() - 1)).expand_as(values)
    top = top.scatter_reduce(0, index, values.detach(), "amax").nan_to_num(neginf=0.0)
    return aggregate(torch.exp(values - top[sub_to_spot]), sub_to_spot, n_spots).log() + top


def spot_softmax(values: Tensor, sub_to_spot: Tensor, n_spots: int) -> Tensor:
    """Softmax over each spot's subspots (M×F): each spot's rows sum to 1."""
    blocks = spot_blocks(values, sub_to_spot, n_spots)
    if blocks is not None:
        return torch.softmax(blocks[0], dim=1).view_as(values)
    return torch.exp(values - spot_logsumexp(values, sub_to_spot, n_spots)[sub_to_spot])


def spot_relative(values: Tensor, sub_to_spot: Tensor, n_spots: int, ratio: bool) -> Tensor:
    """Each row of `values` relative to its spot's mean row: over it (`ratio`, for non-negative
    values; 1 where that mean is 0) or minus it."""
    blocks = spot_blocks(values, sub_to_spot, n_spots)
    if blocks is not None:
        rows = blocks[0]
        mean = rows.mean(1, keepdim=True)
    else:
        rows = values
        mean = aggregate_mean(values, sub_to_spot, n_spots)[sub_to_spot]
    if not ratio:
        return (rows - mean).view_as(values)
    out = rows * torch.where(mean > 0, 1 / mean, 0.0)
    return out.add_(mean == 0).view_as(values)
