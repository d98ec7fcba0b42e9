"""Loss terms of both stages: graph reconstruction, node fit and KL — none of them quadratic in memory.

The graph losses score sigmoid(e_i·e_j) against a weighted graph's soft targets by binary cross
entropy averaged over all node pairs, as the original does with dense matrices. Here it is
computed from logits, either exactly in row chunks (O(chunk·M) memory; time still O(M²)) or
from the edges plus uniformly sampled pairs, an unbiased estimate of the same mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Distribution

from soscope.models.aggregation import aggregate, aggregate_mean
from soscope.models.likelihoods import Likelihood

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
        # d/dE Σ softplus(E Eᵀ) = 2 σ(E Eᵀ) E, gathered block by block over the upper triangle.
        for start in range(0, e.size(0), chunk := ctx.chunk):
            stop = start + chunk
            grad[start:stop] += 2 * torch.sigmoid(e[start:stop] @ e[start:stop].T) @ e[start:stop]
            off = 2 * torch.sigmoid(e[start:stop] @ e[stop:].T)
            grad[start:stop] += off @ e[stop:]
            grad[stop:] += off.T @ e[start:stop]
        return (grad * grad_out).to(emb.dtype), None


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
    num_samples: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mean BCE over all M² node pairs between the predicted pair probability and the graph.

    `embeddings` are M×d blocks (one for plain, two for joint likelihoods); `edge_weight` are
    the soft targets of the listed pairs (duplicates add, as in a dense matrix), every other
    pair has target 0. `mode="sampled"` replaces the sum over all pairs by `num_samples`
    uniformly drawn pairs (default: 8 per edge).
    """
    n = embeddings[0].size(0)
    src, dst = edge_index
    log_c, log_not = _edge_log_probs(embeddings, src, dst)
    # BCE(c, t) = −t·log c − (1−t)·log(1−c); every pair contributes −log(1−c), edges add the rest.
    edge_term = (edge_weight.float() * (log_not - log_c)).sum()
    if mode == "exact":
        all_pairs = sum(_AllPairsSoftplus.apply(e, _chunk_rows(n)) for e in embeddings)
        return (all_pairs + edge_term) / (n * n)
    if mode == "sampled":
        count = num_samples or 8 * max(int(edge_index.size(1)), 1)
        device = embeddings[0].device
        i = torch.randint(n, (count,), device=device, generator=generator)
        j = torch.randint(n, (count,), device=device, generator=generator)
        _, sampled_not = _edge_log_probs(embeddings, i, j)
        return -sampled_not.mean() + edge_term / (n * n)
    raise ValueError(f"unknown graph loss mode {mode!r}; choose from exact, sampled")


def resolve_graph_mode(mode: str, n_nodes: int, exact_max_nodes: int) -> str:
    """`auto` is exact up to `exact_max_nodes` nodes and sampled beyond."""
    if mode not in GRAPH_LOSS_MODES:
        raise ValueError(f"unknown graph loss mode {mode!r}; choose from {GRAPH_LOSS_MODES}")
    if mode == "auto":
        return "exact" if n_nodes <= exact_max_nodes else "sampled"
    return mode


def kl_at_sample(q: Distribution, p: Distribution, z: Tensor) -> Tensor:
    """KL(q‖p) estimated as log q(z) − log p(z) at the sample, summed over dims, mean over rows."""
    return (q.log_prob(z).sum(-1) - p.log_prob(z).sum(-1)).mean()


def node_loss_mse(
    likelihood: Likelihood,
    sub_mean: Tensor,
    x: Tensor,
    k: Tensor,
    sub_to_spot: Tensor,
    mask: Tensor | None = None,
) -> Tensor:
    """The original's node loss: spot aggregates of subspot means against the spot, MSE / scale.

    Count blocks compare subspot sums with the spot total x·K; Gaussian blocks compare
    subspot means with x. Only the spots in `mask` (all by default) count.
    """
    n = x.size(0)
    loss = x.new_zeros(())
    blocks = zip(likelihood.blocks, likelihood.split(sub_mean), likelihood.split(x), strict=True)
    for block, sub_b, x_b in blocks:
        if block.is_count:
            pred, target = aggregate(sub_b, sub_to_spot, n), x_b * k
        else:
            pred, target = aggregate_mean(sub_b, sub_to_spot, n), x_b
        if mask is not None:
            pred, target = pred[mask], target[mask]
        loss = loss + F.mse_loss(pred, target) / block.scale
    return loss


def node_loss_likelihood(
    likelihood: Likelihood,
    sub_dist: Distribution,
    x: Tensor,
    k: Tensor,
    sub_to_spot: Tensor,
    mask: Tensor | None = None,
) -> Tensor:
    """Negative log-likelihood of each observed spot under the aggregate of its subspots."""
    spot_dist = likelihood.aggregate(sub_dist, sub_to_spot, x.size(0))
    return masked_mean(-spot_dist.log_prob(likelihood.spot_target(x, k)), mask)


def masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over the rows in `mask`, or over all rows."""
    return values.mean() if mask is None else values[mask].mean()


def smoothness(
    likelihood: Likelihood, sub_mean: Tensor, edge_index: Tensor, edge_weight: Tensor
) -> Tensor:
    """Weighted mean over the subspot graph's edges of Σ_features (v_s − v_t)².

    v is log1p of count means and Gaussian means / scale. A spatial prior: together with the
    spot totals it favours subspot maps that vary smoothly across spot borders, as Tobler's
    volume-preserving (pycnophylactic) interpolation does; W's image weights let it stop at
    edges the image shows.
    """
    parts = [
        torch.log1p(values.clamp(min=0)) if block.is_count else values / block.scale
        for block, values in zip(likelihood.blocks, likelihood.split(sub_mean), strict=True)
    ]
    v = torch.cat(parts, dim=-1)
    src, dst = edge_index
    energy = (v[src] - v[dst]).pow(2).sum(-1)
    return (edge_weight * energy).sum() / edge_weight.sum().clamp(min=1e-12)
