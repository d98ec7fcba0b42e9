"""Loss terms of both stages: graph reconstruction, node fit and KL — none of them quadratic in memory.

The graph losses score sigmoid(e_i·e_j) against a weighted graph's soft targets by binary cross
entropy averaged over all node pairs, as the original does with dense matrices. Here it is
computed from logits, either exactly in row chunks (O(chunk·M) memory; time still O(M²)) or
from the edges plus uniformly sampled pairs, an unbiased estimate of the same mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution

from soscope.models.aggregation import aggregate, aggregate_mean
from soscope.models.likelihoods import Likelihood, join_blocks

GRAPH_LOSS_MODES = ("exact", "sampled", "auto")
NODE_LOSS_MODES = ("mse", "likelihood")


class _AllPairsSoftplus(torch.autograd.Function):
    """Σ_ij softplus(e_i·e_j) over all pairs, in row chunks; the backward recomputes chunks.

    The logits E Eᵀ are symmetric, so each chunk of rows meets only the columns from its own
    first row on, and the pairs off the diagonal block count twice: half the work of a full pass.
    """

    @staticmethod
    def forward(ctx, emb: Tensor, chunk: int) -> Tensor:
        ctx.save_for_backward(emb)
        ctx.chunk = chunk
        e = emb.float()
        total = e.new_zeros(())
        for start in range(0, e.size(0), chunk):
            stop = start + chunk
            total += F.softplus(e[start:stop] @ e[start:stop].T).sum()
            total += 2 * F.softplus(e[start:stop] @ e[stop:].T).sum()
        return total

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (emb,) = ctx.saved_tensors
        e = emb.float()
        grad = torch.zeros_like(e)
        # d/dE Σ softplus(E Eᵀ) = 2 σ(E Eᵀ) E, gathered block by block over the upper triangle
        # (the factor 2 applied to the d-wide products, not to the chunk of logits).
        for start in range(0, e.size(0), chunk := ctx.chunk):
            stop = start + chunk
            grad[start:stop] += torch.sigmoid_(e[start:stop] @ e[start:stop].T) @ e[start:stop]
            off = torch.sigmoid_(e[start:stop] @ e[stop:].T)
            grad[start:stop] += off @ e[stop:]
            grad[stop:] += off.T @ e[start:stop]
        return (grad * (2 * grad_out)).to(emb.dtype), None


def _chunk_rows(n_nodes: int, budget: int = 1 << 20) -> int:
    """Rows per chunk so that one chunk of logits holds about `budget` entries."""
    return max(1, budget // max(n_nodes, 1))


def _edge_log_probs(
    embeddings: Sequence[Tensor], src: Tensor, dst: Tensor
) -> tuple[Tensor, Tensor]:
    """log c and log(1 − c) for the listed pairs, c = 1 − Π_b (1 − σ(e_b,i · e_b,j)).

    One block gives the plain sigmoid; several blocks combine as p + q − p·q (the original's
    joint rule), computed in log space.
    """
    logits = [(e[src].float() * e[dst].float()).sum(-1) for e in embeddings]
    log_not = sum(-F.softplus(logit) for logit in logits)
    if len(logits) == 1:
        return -F.softplus(-logits[0]), log_not
    return torch.log(-torch.expm1(log_not).clamp(max=-1e-30)), log_not


def graph_bce(
    embeddings: Sequence[Tensor],
    edge_index: Tensor,
    edge_weight: Tensor,
    mode: str = "exact",
    samples_per_edge: int = 8,
    generator: torch.Generator | None = None,
    rows: Tensor | None = None,
    pool: Tensor | None = None,
    total_nodes: int | None = None,
) -> Tensor:
    """Mean BCE over all node pairs between the predicted pair probability and the graph.

    `embeddings` are M×d blocks (one for plain, two for joint likelihoods); `edge_weight` are
    the soft targets of the listed pairs (duplicates add, as in a dense matrix), every other
    pair has target 0. `mode="sampled"` replaces the sum over all pairs by a grid of about
    `samples_per_edge` pairs per edge. A tile passes its own nodes as `rows`, the nodes
    whose embeddings it has exactly as the negatives' `pool`, and the section's node count as
    `total_nodes`: the result is then its share of the section's mean (sampled mode only).
    """
    n = total_nodes or embeddings[0].size(0)
    src, dst = edge_index
    log_c, log_not = _edge_log_probs(embeddings, src, dst)
    # BCE(c, t) = −t·log c − (1−t)·log(1−c); every pair contributes −log(1−c), edges add the rest.
    edge_term = (edge_weight.float() * (log_not - log_c)).sum()
    if mode == "exact" and rows is None and pool is None:
        return (all_pairs_term(embeddings) + edge_term) / (n * n)
    if mode in ("exact", "sampled"):
        count = samples_per_edge * max(int(edge_index.size(1)), 1)
        return (sampled_pairs_term(embeddings, count, generator, rows, pool, n) + edge_term) / (
            n * n
        )
    raise ValueError(f"unknown graph loss mode {mode!r}; choose from exact, sampled")


def all_pairs_term(embeddings: Sequence[Tensor]) -> Tensor:
    """Σ over all pairs (i, j) of −log(1 − c_ij) = Σ_blocks softplus(e_i·e_j), in row chunks."""
    n = embeddings[0].size(0)
    return sum(_AllPairsSoftplus.apply(e, _chunk_rows(n)) for e in embeddings)


def sampled_pairs_term(
    embeddings: Sequence[Tensor],
    count: int,
    generator: torch.Generator | None,
    rows: Tensor | None,
    pool: Tensor | None,
    columns: int,
) -> Tensor:
    """Unbiased estimate of Σ_{i ∈ rows, j < columns} −log(1 − c_ij) from a grid of pairs.

    About √count uniform rows meet √count uniform columns from `pool` in one matrix product (no
    per-pair gathers: memory O(count), not O(count·d)); the pool stands for all `columns`.
    """
    device = embeddings[0].device
    n = embeddings[0].size(0)
    rows = torch.arange(n, device=device) if rows is None else rows
    pool = torch.arange(n, device=device) if pool is None else pool
    side = max(1, math.isqrt(max(count, 1) - 1) + 1)
    i = rows[torch.randint(len(rows), (side,), device=device, generator=generator)]
    j = pool[torch.randint(len(pool), (side,), device=device, generator=generator)]
    return -_grid_log_not(embeddings, i, j) * (len(rows) * columns / (side * side))


def _grid_log_not(embeddings: Sequence[Tensor], i: Tensor, j: Tensor) -> Tensor:
    """Σ over the grid rows i × columns j of log(1 − c_ij) = −Σ_blocks softplus(e_i·e_j)."""
    return -sum(F.softplus(e[i].float() @ e[j].float().T).sum() for e in embeddings)


def resolve_graph_mode(mode: str, n_nodes: int, exact_max_nodes: int) -> str:
    """`auto` is exact up to `exact_max_nodes` nodes and sampled beyond."""
    if mode not in GRAPH_LOSS_MODES:
        raise ValueError(f"unknown graph loss mode {mode!r}; choose from {GRAPH_LOSS_MODES}")
    if mode == "auto":
        return "exact" if n_nodes <= exact_max_nodes else "sampled"
    return mode


def kl_at_sample(q: Distribution, p: Distribution, z: Tensor) -> Tensor:
    """KL(q‖p) per row, estimated as log q(z) − log p(z) at the sample, summed over dims."""
    return q.log_prob(z).sum(-1) - p.log_prob(z).sum(-1)


def node_loss_mse(
    likelihood: Likelihood, sub_mean: Tensor, x: Tensor, k: Tensor, sub_to_spot: Tensor
) -> Tensor:
    """The original's node loss per spot: squared error of spot aggregates of subspot means
    against the spot, averaged over each block's features, over the block's scale.

    Count blocks compare subspot sums with the spot total x·K; Gaussian blocks compare subspot
    means with x. Its mean over spots is the original's MSE / scale.
    """
    n = x.size(0)
    loss = x.new_zeros(n)
    blocks = zip(likelihood.blocks, likelihood.split(sub_mean), likelihood.split(x), strict=True)
    for block, sub_b, x_b in blocks:
        if block.is_count:
            pred, target = aggregate(sub_b, sub_to_spot, n), x_b * k
        else:
            pred, target = aggregate_mean(sub_b, sub_to_spot, n), x_b
        loss = loss + (pred - target).pow(2).mean(-1) / block.scale
    return loss


def node_loss_likelihood(
    likelihood: Likelihood, sub_dist: Distribution, x: Tensor, k: Tensor, sub_to_spot: Tensor
) -> Tensor:
    """Negative log-likelihood of each observed spot under the aggregate of its subspots."""
    spot_dist = likelihood.aggregate(sub_dist, sub_to_spot, x.size(0))
    return -spot_dist.log_prob(likelihood.spot_target(x, k))


def smoothness(
    likelihood: Likelihood,
    sub_mean: Tensor,
    edge_index: Tensor,
    edge_weight: Tensor,
    weight_total: Tensor | float | None = None,
) -> Tensor:
    """Weighted mean over the subspot graph's edges of Σ_features (v_s − v_t)².

    v is log1p of count means and Gaussian means / scale. A spatial prior: together with the
    spot totals it favours subspot maps that vary smoothly across spot borders, as Tobler's
    volume-preserving (pycnophylactic) interpolation does; W's image weights let it stop at
    edges the image shows. A tile passes its share of the section's total weight as
    `weight_total`, so the tiles' values add up to the section's.
    """
    parts = [
        torch.log1p(values.clamp(min=0)) if block.is_count else values / block.scale
        for block, values in zip(likelihood.blocks, likelihood.split(sub_mean), strict=True)
    ]
    v = join_blocks(parts)
    src, dst = edge_index
    energy = (v[src] - v[dst]).pow(2).sum(-1)
    total = edge_weight.sum() if weight_total is None else weight_total
    return (edge_weight * energy).sum() / torch.as_tensor(total).clamp(min=1e-12)
