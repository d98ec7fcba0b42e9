"""What the neighbouring spots say at each subspot's position.

Without it, every subspot of a spot gets the same latent, so with an uninformative image
nothing can vary inside a spot. Both uses share one Gaussian kernel over a subspot's spot and
that spot's graph neighbours, centred on the subspot: the share prior (`share_prior`) spreads
each spot's profile as the interpolated observed profiles do; the spatial context
(`subspot_context`) gives the enhancement decoder the interpolated latents (minus its own
spot's, so it reads as a within-spot signal) and the subspot's offset from its spot centre,
both in units of the spot spacing.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data

from soscope.models.aggregation import spot_relative
from soscope.models.likelihoods import Likelihood, join_blocks

CONTEXT_MODES = ("none", "interp")
PRIOR_MODES = ("none", "interp")
OFFSET_DIM = 2
# Kernel σ as a fraction of the spot spacing, for the model and the `interpolate` baseline.
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


def interpolation_kernel(
    batch: Data, spacing: Tensor | None, dtype: torch.dtype, bandwidth: float = BANDWIDTH
) -> Tensor:
    """Sparse M×N kernel: each subspot's Gaussian weights on its spot and that spot's neighbours,
    σ the fraction `bandwidth` of the section's spot `spacing` (pixels).

    Its indices are valid by construction, so torch's invariant checks are not needed.
    """
    pos, sub_pos = getattr(batch, "pos", None), getattr(batch, "sub_pos", None)
    if pos is None or sub_pos is None:
        raise ValueError(
            "model.subspot_context and model.share_prior need spot and subspot positions "
            "(pos, sub_pos); this dataset has none — add positions.csv/sub_positions.csv or "
            "set both to none"
        )
    pos, sub_pos = pos.to(dtype), sub_pos.to(dtype)
    pairs = neighbourhood_pairs(batch.edge_index, batch.sub_to_spot, batch.num_nodes)
    weight = interpolation_weights(pairs, pos, sub_pos, bandwidth * spacing.to(dtype))
    shape = (len(sub_pos), batch.num_nodes)
    kernel = torch.sparse_coo_tensor(pairs.flip(0), weight, shape, check_invariants=False)
    return kernel.coalesce()  # once, not in every product


def subspot_context(
    batch: Data, z: Tensor, spacing: Tensor | None, bandwidth: float = BANDWIDTH
) -> Tensor:
    """M × (z_dim + 2): interpolated neighbour latent minus the own spot's, and the offset."""
    # A sparse kernel times Z: no per-subspot copies of the neighbours' latents, forward or
    # backward.
    kernel = interpolation_kernel(batch, spacing, z.dtype, bandwidth)
    interpolated = torch.sparse.mm(kernel, z)
    parent = batch.sub_to_spot
    offset = (batch.sub_pos - batch.pos[parent]).to(z.dtype) / spacing.to(z.dtype)
    return torch.cat([interpolated - z[parent], offset], dim=-1)


def share_prior(
    batch: Data, likelihood: Likelihood, kernel: Tensor, columns: slice = slice(None)
) -> Tensor:
    """M×G: how the neighbourhood says each spot's profile spreads over its subspots, for the
    features `columns` (`likelihood` is theirs), by the batch's `interpolation_kernel`.

    The observed spot profiles interpolated at each subspot centre, relative to their mean over
    the subspot's spot: a ratio for count blocks (1 where a spot's interpolation is all zero),
    a difference for Gaussian blocks — the spot-consistency rescaling to a spot of ones (zeros).
    The enhancement decoder's subspot means are multiplied (shifted) by it, so the decoder
    learns what the image adds.
    """
    interpolated = torch.sparse.mm(kernel, batch.x[:, columns].to(kernel.dtype))
    parts = [
        spot_relative(part, batch.sub_to_spot, batch.num_nodes, ratio=block.is_count)
        for block, part in zip(likelihood.blocks, likelihood.split(interpolated), strict=True)
    ]
    return join_blocks(parts)
