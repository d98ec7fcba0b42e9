import torch
import torch.nn.functional as F

from soscope.models.likelihoods import make_likelihood
from soscope.models.losses import graph_bce, node_loss_mse, resolve_graph_mode, smoothness


def dense_bce(embeddings, edge_index, edge_weight, n):
    target = torch.zeros(n, n).index_put_(tuple(edge_index), edge_weight, accumulate=True)
    probs = [torch.sigmoid(e @ e.T) for e in embeddings]
    p = probs[0]
    for q in probs[1:]:
        p = p + q - p * q
    return F.binary_cross_entropy(p, target)


def small_graph(n=12, d=4, blocks=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    embeddings = [(0.5 * torch.randn(n, d, generator=g)).requires_grad_() for _ in range(blocks)]
    edge_index = torch.randint(n, (2, 30), generator=g)
    edge_index = torch.cat([edge_index, torch.arange(n).repeat(2, 1)], 1)  # self-loops, duplicates
    edge_weight = torch.rand(edge_index.size(1), generator=g) * 0.5
    return embeddings, edge_index, edge_weight


def test_exact_graph_loss_and_gradient_equal_dense_bce():
    for blocks in (1, 2):
        embeddings, edge_index, edge_weight = small_graph(blocks=blocks)
        ours = graph_bce(embeddings, edge_index, edge_weight, mode="exact")
        ours_grads = torch.autograd.grad(ours, embeddings)
        dense = dense_bce(embeddings, edge_index, edge_weight, 12)
        dense_grads = torch.autograd.grad(dense, embeddings)
        torch.testing.assert_close(ours, dense, rtol=1e-5, atol=1e-5)
        for a, b in zip(ours_grads, dense_grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_exact_graph_loss_is_computed_in_chunks(monkeypatch):
    import soscope.models.losses as losses

    embeddings, edge_index, edge_weight = small_graph()
    whole = graph_bce(embeddings, edge_index, edge_weight, mode="exact")
    monkeypatch.setattr(losses, "_chunk_rows", lambda n: 5)
    torch.testing.assert_close(graph_bce(embeddings, edge_index, edge_weight, mode="exact"), whole)


def test_exact_graph_loss_has_gradient_where_sigmoid_bce_saturates():
    embeddings = [torch.tensor([[20.0], [-20.0]], requires_grad=True)]
    edge_index = torch.tensor([[0, 1], [1, 0]])
    loss = graph_bce(embeddings, edge_index, torch.ones(2), mode="exact")
    (grad,) = torch.autograd.grad(loss, embeddings)
    assert torch.isfinite(loss) and loss > 50
    assert grad.abs().min() > 1.0


def test_sampled_graph_loss_is_unbiased():
    for blocks in (1, 2):
        embeddings, edge_index, edge_weight = small_graph(blocks=blocks, seed=1)
        exact = graph_bce(embeddings, edge_index, edge_weight, mode="exact").item()
        g = torch.Generator().manual_seed(0)
        draws = [
            graph_bce(
                embeddings,
                edge_index,
                edge_weight,
                mode="sampled",
                samples_per_edge=12,
                generator=g,
            ).item()
            for _ in range(200)
        ]
        assert abs(sum(draws) / len(draws) - exact) < 0.01 * abs(exact) + 1e-3


def test_auto_mode_switches_at_the_threshold():
    assert resolve_graph_mode("auto", 100, 100) == "exact"
    assert resolve_graph_mode("auto", 101, 100) == "sampled"
    assert resolve_graph_mode("sampled", 5, 100) == "sampled"


def test_mse_node_loss_sums_counts_and_averages_gaussians():
    sub_to_spot = torch.tensor([0, 0, 1, 1])
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    k = torch.tensor([[2.0], [2.0]])
    exact = x.repeat_interleave(2, 0)  # subspots equal to the per-subspot mean
    for name in ("nb", "gaussian"):
        lik = make_likelihood(name, 2, scale=2.0)
        assert node_loss_mse(lik, exact, x, k, sub_to_spot).mean().item() == 0.0
    lik = make_likelihood("nb", 2, scale=2.0)
    off = exact + 1.0  # each spot total is 2 too high: MSE 4, over scale 2
    assert node_loss_mse(lik, off, x, k, sub_to_spot).mean().item() == 2.0


def test_smoothness_is_the_weighted_mean_edge_energy():
    likelihood = make_likelihood("nb", 2)
    mean = torch.tensor([[0.0, 1.0], [0.0, 1.0], [3.0, 0.0]])
    edges = torch.tensor([[0, 1, 0], [1, 2, 0]])
    weights = torch.tensor([1.0, 3.0, 1.0])
    v = torch.log1p(mean)
    energy = torch.stack(
        [(v[0] - v[1]).pow(2).sum(), (v[1] - v[2]).pow(2).sum(), v[0].mul(0).sum()]
    )
    expected = (weights * energy).sum() / weights.sum()
    torch.testing.assert_close(smoothness(likelihood, mean, edges, weights), expected)
    flat = torch.full((3, 2), 4.0)
    assert smoothness(likelihood, flat, edges, weights) == 0
    gaussian = make_likelihood("gaussian", 2, scale=2.0)
    torch.testing.assert_close(
        smoothness(gaussian, mean, edges[:, :1], weights[:1]), torch.tensor(0.0)
    )
    torch.testing.assert_close(
        smoothness(gaussian, mean, edges[:, 1:2], weights[1:2]), torch.tensor((9 + 1) / 4)
    )
