"""Subspot → spot aggregation, linear in subspots (no dense block-sum matrices)."""

from __future__ import annotations

import torch
from torch import Tensor


def aggregate(values: Tensor, sub_to_spot: Tensor, n_spots: int) -> Tensor:
    """Sum the rows of `values` (M×F) into their spots (N×F) with `index_add`."""
    out = values.new_zeros((n_spots, *values.shape[1:]))
    return out.index_add(0, sub_to_spot, values)


def spot_counts(sub_to_spot: Tensor, n_spots: int) -> Tensor:
    """K_i, the number of subspots of each spot, as an N×1 float column."""
    return torch.bincount(sub_to_spot, minlength=n_spots).unsqueeze(-1).float()


def aggregate_mean(values: Tensor, sub_to_spot: Tensor, n_spots: int) -> Tensor:
    """Average the rows of `values` over each spot's subspots (a spot with none gets 0)."""
    k = spot_counts(sub_to_spot, n_spots).to(values.dtype).clamp(min=1)
    return aggregate(values, sub_to_spot, n_spots) / k
