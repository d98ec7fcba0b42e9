import pytest
import torch

from soscope.data.sample import make_spot_graph, section_spacing, spot_spacing
from soscope.models.context import (
    context_width,
    interpolation_kernel,
    neighbourhood_pairs,
    share_prior,
    subspot_context,
)
from soscope.models.likelihoods import make_likelihood


def line_graph(with_positions=True):
    """Three spots 10 px apart on a line (0 — 1 — 2), two subspots each, 2 px either side."""
    pos = torch.tensor([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    sub_to_spot = torch.tensor([0, 0, 1, 1, 2, 2])
    sub_pos = pos[sub_to_spot] + torch.tensor([[-2.0, 0.0], [2.0, 0.0]]).repeat(3, 1)
    edges = torch.tensor([[0, 1, 1, 2, 0, 1, 2], [1, 0, 2, 1, 0, 1, 2]])  # with self-loops
    extra = {"pos": pos, "sub_pos": sub_pos} if with_positions else {}
    return make_spot_graph(
        torch.rand(3, 2),
        edges,
        torch.ones(edges.size(1)),
        torch.ones(6, 1),
        torch.zeros(2, 0, dtype=torch.long),
        torch.zeros(0),
        sub_to_spot,
        **extra,
    )


def test_context_width():
    assert context_width("none", 16) == 0
    assert context_width("interp", 16) == 18
    with pytest.raises(ValueError, match="subspot_context"):
        context_width("kriging", 16)


def test_each_subspot_meets_its_spot_and_the_spots_neighbours():
    graph = line_graph()
    spots, subs = neighbourhood_pairs(graph.edge_index, graph.sub_to_spot, 3)
    met = {(int(s), int(p)) for s, p in zip(subs, spots, strict=True)}
    expected = {(0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (2, 0), (2, 2), (3, 1), (3, 0), (3, 2)}
    expected |= {(4, 2), (4, 1), (5, 2), (5, 1)}
    assert met == expected
    assert len(subs) == len(expected)  # self-loops are not counted twice
    assert float(spot_spacing(graph.pos, graph.edge_index)) == 10.0


def test_context_interpolates_neighbour_latents_and_gives_offsets():
    graph = line_graph()
    z = torch.tensor([[0.0], [1.0], [5.0]])
    context = subspot_context(graph, z, section_spacing(graph))
    assert context.shape == (6, 3)
    torch.testing.assert_close(context[:, 1:], torch.tensor([[-0.2, 0.0], [0.2, 0.0]]).repeat(3, 1))
    pull = context[:, 0]
    # Toward a higher neighbour the interpolated latent rises above the own spot's, and a
    # subspot on the far side of a spot with no neighbour there keeps (almost) its own.
    assert pull[1] > 0 and pull[3] > 0 and pull[2] < 0 and pull[4] < 0
    assert pull[1] < pull[3]
    assert abs(float(pull[0])) < abs(float(pull[1]))
    # By hand: subspot 1 at x = 2 sees spot 0 (d = 2) and spot 1 (d = 8), σ = 10/3.
    sigma2 = (10 / 3) ** 2
    w1 = torch.exp(torch.tensor(-(64.0 - 4.0) / (2 * sigma2)))
    torch.testing.assert_close(pull[1], w1 / (1 + w1) * 1.0)


def test_a_wider_kernel_reads_more_of_the_neighbours():
    graph = line_graph()
    z = torch.tensor([[0.0], [1.0], [5.0]])
    spacing = section_spacing(graph)
    narrow, wide = (subspot_context(graph, z, spacing, b)[:, 0] for b in (1 / 3, 0.6))
    assert torch.all(wide.abs() > narrow.abs())
    w1 = torch.exp(torch.tensor(-(64.0 - 4.0) / (2 * 6.0**2)))  # σ = 0.6 × 10
    torch.testing.assert_close(wide[1], w1 / (1 + w1) * 1.0)


def test_context_needs_positions():
    with pytest.raises(ValueError, match="positions"):
        subspot_context(line_graph(with_positions=False), torch.zeros(3, 1), None)


def test_share_prior_spreads_each_spot_as_the_neighbourhood_says():
    graph = line_graph()
    graph.x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [8.0, 0.0]])
    kernel = interpolation_kernel(graph, section_spacing(graph), torch.float32)
    prior = share_prior(graph, make_likelihood("poisson", 2), kernel)
    # Ratios average to one per spot; a spot rises toward a higher neighbour.
    torch.testing.assert_close(prior[:, 0].view(3, 2).mean(1), torch.ones(3))
    assert prior[1, 0] > prior[0, 0] and prior[3, 0] > prior[2, 0] and prior[4, 0] < prior[5, 0]
    assert torch.all(prior[:, 1] == 1)  # a feature that is zero everywhere is split equally
    gaussian = share_prior(graph, make_likelihood("gaussian", 2), kernel)
    torch.testing.assert_close(gaussian[:, 0].view(3, 2).sum(1), torch.zeros(3))
    assert gaussian[1, 0] > 0 > gaussian[0, 0]


def test_share_prior_needs_positions():
    with pytest.raises(ValueError, match="positions"):
        interpolation_kernel(line_graph(with_positions=False), None, torch.float32)
