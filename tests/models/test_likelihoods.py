import pytest
import torch
from torch.distributions import Poisson

from soscope.models.likelihoods import LIKELIHOODS, NegativeBinomial, make_likelihood

G, P, M, K = 6, 2, 21, 3


@pytest.mark.parametrize("name", LIKELIHOODS)
def test_heads_give_shapes_finite_loss_and_gradients(name):
    torch.manual_seed(0)
    lik = make_likelihood(name, G, scale=2.0, protein_dim=P)
    sub_to_spot = torch.arange(M // K).repeat_interleave(K)
    k_sub = torch.full((M, 1), float(K))
    raw = torch.randn(M, lik.subspot_width, requires_grad=True)
    dist = lik.subspot_distribution(raw, k_sub)
    assert dist.mean.shape == (M, G)
    assert dist.variance.shape == (M, G)
    target = torch.poisson(torch.full((M, G), 3.0))
    log_p = dist.log_prob(target)
    assert log_p.shape == (M,)
    assert torch.isfinite(log_p).all()
    spot = lik.aggregate(dist, sub_to_spot, M // K)
    assert spot.mean.shape == (M // K, G)
    loss = (
        -log_p.mean()
        - spot.log_prob(lik.spot_target(target[::K] / K, torch.full((M // K, 1), 3.0))).mean()
    )
    loss.backward()
    assert torch.isfinite(raw.grad).all() and raw.grad.abs().sum() > 0

    raw_spot = torch.randn(M // K, lik.spot_width)
    assert lik.spot_distribution(raw_spot).mean.shape == (M // K, G)


def test_gaussian_sigma_is_clamped_by_subspot_count():
    lik = make_likelihood("gaussian", 1, scale=3.0)
    raw = torch.tensor([[0.0, -50.0], [0.0, 500.0]])
    sigma = lik.subspot_distribution(raw, torch.tensor([[3.0], [3.0]])).stddev
    assert sigma.squeeze(-1).tolist() == pytest.approx([1.0, 100.0])


def test_poisson_aggregate_is_the_sum_of_rates():
    lik = make_likelihood("poisson", 2)
    dist = lik.subspot_distribution(torch.randn(6, 2), torch.full((6, 1), 3.0))
    spot = lik.aggregate(dist, torch.tensor([0, 0, 0, 1, 1, 1]), 2).parts[0]
    assert isinstance(spot, Poisson)
    torch.testing.assert_close(spot.rate, dist.parts[0].rate.view(2, 3, 2).sum(1))


def test_nb_aggregate_is_exact_when_subspots_share_a_logit():
    lik = make_likelihood("nb", 1)
    logits = torch.full((4, 1), 0.3)
    raw_r = torch.randn(4, 1)
    dist = lik.subspot_distribution(torch.cat([logits, raw_r], -1), torch.full((4, 1), 4.0))
    spot = lik.aggregate(dist, torch.zeros(4, dtype=torch.long), 1).parts[0]
    assert isinstance(spot, torch.distributions.NegativeBinomial)
    torch.testing.assert_close(
        spot.total_count, dist.parts[0].total_count.sum(0, keepdim=True), rtol=1e-4, atol=1e-5
    )
    torch.testing.assert_close(spot.logits, logits[:1], rtol=1e-4, atol=1e-4)


def test_spot_targets_round_count_blocks_only():
    lik = make_likelihood("joint_gaussian", 3, protein_dim=1)
    x = torch.tensor([[0.5, 2.0 / 3.0, 1.0 / 3.0]])
    target = lik.spot_target(x, torch.tensor([[3.0]]))
    torch.testing.assert_close(target, torch.tensor([[0.5, 2.0, 1.0]]))
    assert lik.encoder_input(x, torch.tensor([[3.0]])) is x
    nb = make_likelihood("nb", 3)
    torch.testing.assert_close(nb.encoder_input(x, torch.tensor([[3.0]])), x * 3)


def test_bad_likelihood_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown likelihood"):
        make_likelihood("zinb", 3)
    with pytest.raises(ValueError, match="protein_dim"):
        make_likelihood("joint_pnb", 3, protein_dim=0)


def test_a_share_prior_scales_count_means_and_shifts_gaussian_means():
    lik = make_likelihood("joint_gaussian", 3, protein_dim=1)
    raw = torch.randn(4, lik.subspot_width)
    prior = torch.tensor([[0.5, 2.0, 1e-7]]).repeat(4, 1)
    plain = lik.subspot_distribution(raw, torch.full((4, 1), 2.0))
    shaped = lik.subspot_distribution(raw, torch.full((4, 1), 2.0), prior)
    torch.testing.assert_close(shaped.mean[:, 0], plain.mean[:, 0] + 0.5)  # Gaussian: shifted
    torch.testing.assert_close(shaped.stddev[:, 0], plain.stddev[:, 0])
    torch.testing.assert_close(shaped.mean[:, 1], 2 * plain.mean[:, 1])  # NB: scaled
    assert torch.all(shaped.mean[:, 2] < 1e-5)  # a tiny share leaves almost nothing
    assert torch.isfinite(shaped.log_prob(torch.ones(4, 3))).all()
    poisson = make_likelihood("poisson", 1)
    raw = torch.randn(4, 1)
    half = poisson.subspot_distribution(raw, torch.ones(4, 1), torch.full((4, 1), 0.5))
    torch.testing.assert_close(
        half.mean, poisson.subspot_distribution(raw, torch.ones(4, 1)).mean / 2
    )


@pytest.mark.parametrize("name", LIKELIHOODS)
@pytest.mark.parametrize("with_prior", [True, False])
def test_the_shared_aggregate_is_the_aggregate_of_subspots_sharing_a_spot(name, with_prior):
    """Spots whose subspots share the raw outputs: the spot-level aggregate scores every spot
    as the per-subspot one does (values and gradients), for spots of different sizes."""
    torch.manual_seed(0)
    lik = make_likelihood(name, 6, scale=2.0, protein_dim=2)
    sub_to_spot = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    k = torch.bincount(sub_to_spot).unsqueeze(-1).float()
    raw = torch.randn(3, lik.subspot_width, requires_grad=True)
    prior = torch.rand(9, 6) + 0.1 if with_prior else None
    target = lik.spot_target(torch.rand(3, 6) * 5, k)

    per_subspot = lik.subspot_distribution(raw[sub_to_spot], k[sub_to_spot], prior)
    expected = lik.aggregate(per_subspot, sub_to_spot, 3).log_prob(target)
    (grad_expected,) = torch.autograd.grad(expected.sum(), raw)
    totals = None if prior is None else lik.prior_totals(prior, sub_to_spot, 3)
    shared = lik.shared_aggregate(raw, k, totals).log_prob(target)
    (grad_shared,) = torch.autograd.grad(shared.sum(), raw)
    torch.testing.assert_close(shared, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grad_shared, grad_expected, rtol=1e-3, atol=1e-4)


def test_column_chunks_cover_the_features_within_blocks():
    lik = make_likelihood("joint_pnb", 7, protein_dim=3)
    chunks = lik.column_chunks(2)
    assert [(c.start, c.stop) for c, _ in chunks] == [(0, 2), (2, 3), (3, 5), (5, 7)]
    assert [part.blocks[0].family for _, part in chunks] == ["poisson"] * 2 + ["nb"] * 2
    assert all(part.n_features == c.stop - c.start for c, part in chunks)
    assert [b.size for b in lik.restrict(slice(2, 5)).blocks] == [1, 2]


def test_the_negative_binomial_scores_as_torchs_with_a_shared_count():
    torch.manual_seed(0)
    count = (torch.rand(4) * 5 + 0.01).requires_grad_()
    logits = (torch.randn(6, 4) * 3).requires_grad_()
    value = torch.poisson(torch.rand(6, 4) * 50)
    ours = NegativeBinomial(count, logits)
    theirs = torch.distributions.NegativeBinomial(count.expand(6, 4), logits=logits)
    torch.testing.assert_close(ours.log_prob(value), theirs.log_prob(value))
    torch.testing.assert_close(ours.mean, theirs.mean)
    grads = [torch.autograd.grad(d.log_prob(value).sum(), (count, logits)) for d in (ours, theirs)]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)
