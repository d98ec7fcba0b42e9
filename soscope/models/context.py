"""Spatial context of subspots: what the neighbouring spots say at each subspot's position.

Without it, every subspot of a spot gets the same latent, so with an uninformative image
nothing can vary inside a spot. `interp` gives the enhancement decoder, per subspot, the
Gaussian-kernel interpolation of the latents of its spot and that spot's graph neighbours at
the subspot centre (minus its own spot's latent, so it reads as a within-spot signal) and the
subspot's offset from its spot centre, both in units of the spot spacing.
"""

from __future__ import annotations

import torch
from torch import Tensor

from soscope.data.sample import SpotGraph, spot_spacing

CONTEXT_MODES = ("none", "interp")
OFFSET_DIM = 2
# Kernel σ as a fraction of the spot spacing: the `interpolate` baseline's measured best.
BANDWIDTH = 1 / 3


def context_width(mode: str, z_dim: int) -> int:
    """Width of the context the decoder receives per subspot for `mode`."""
    if mode not in CONTEXT_MODES:
        raise ValueError(f"unknown subspot_context {mode!r}; choose from {CONTEXT_MODES}")
    return 0 if mode == "none" else z_dim + OFFSET_DIM


def neighbourhood_pairs(edge_index: Tensor, sub_to_spot: Tensor, num_spots: int) -> Tensor:
    """(spot, subspot) pairs: each subspot with its own spot and that spot's graph neighbours."""
    src, dst = edge_index
    keep = src != dst
    src, dst = src[keep], dst[keep]
    order = torch.argsort(dst, stable=True)
    sources = src[order]
    degree = torch.bincount(dst, minlength=num_spots)
    first = torch.cumsum(degree, 0) - degree
    per_sub = degree[sub_to_spot]
    subs = torch.repeat_interleave(torch.arange(len(sub_to_spot), device=src.device), per_sub)
    start = torch.cumsum(per_sub, 0) - per_sub
    within = torch.arange(len(subs), device=src.device) - start[subs]
    neighbours = sources[first[sub_to_spot][subs] + within]
    own = torch.arange(len(sub_to_spot), device=src.device)
    return torch.stack([torch.cat([sub_to_spot, neighbours]), torch.cat([own, subs])])


def interpolation_weights(pairs: Tensor, pos: Tensor, sub_pos: Tensor, sigma: Tensor) -> Tensor:
    """Gaussian-kernel weights of `pairs`, normalised to sum to one per subspot."""
    spots, subs = pairs
    d2 = (sub_pos[subs] - pos[spots]).pow(2).sum(-1)
    # Relative to each subspot's nearest candidate, so no row can underflow to all zeros.
    nearest = torch.full((len(sub_pos),), float("inf"), dtype=d2.dtype, device=d2.device)
    nearest = nearest.scatter_reduce(0, subs, d2, reduce="amin")
    weight = torch.exp(-(d2 - nearest[subs]) / (2 * sigma**2))
    total = torch.zeros_like(nearest).index_add_(0, subs, weight)
    return weight / total[subs]


def subspot_context(batch: SpotGraph, z: Tensor) -> Tensor:
    """M × (z_dim + 2): interpolated neighbour latent minus the own spot's, and the offset."""
    pos, sub_pos = getattr(batch, "pos", None), getattr(batch, "sub_pos", None)
    if pos is None or sub_pos is None:
        raise ValueError(
            "model.subspot_context=interp needs spot and subspot positions (pos, sub_pos); "
            "this dataset has none — add positions.csv/sub_positions.csv or use "
            "model.subspot_context=none"
        )
    pos, sub_pos = pos.to(z.dtype), sub_pos.to(z.dtype)
    parent = batch.sub_to_spot
    spacing = getattr(batch, "spacing", None)  # a tile carries its section's
    spacing = spot_spacing(pos, batch.edge_index) if spacing is None else spacing.to(z.dtype)
    pairs = neighbourhood_pairs(batch.edge_index, parent, batch.num_nodes)
    weight = interpolation_weights(pairs, pos, sub_pos, BANDWIDTH * spacing)
    # A sparse M×N kernel times Z: no per-pair copies of the latents, forward or backward. Its
    # indices are valid by construction, so torch's invariant checks are not needed.
    kernel = torch.sparse_coo_tensor(
        pairs.flip(0), weight, (len(parent), z.size(0)), check_invariants=False
    )
    interpolated = torch.sparse.mm(kernel, z)
    offset = (sub_pos - pos[parent]) / spacing
    return torch.cat([interpolated - z[parent], offset], dim=-1)
