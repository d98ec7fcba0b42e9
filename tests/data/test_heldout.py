import pytest
import torch

from soscope.data.heldout import blind_weights, hold_out_spots, impute_from_neighbours


def test_hidden_rows_become_the_mean_of_their_visible_neighbours():
    x = torch.tensor([[1.0], [3.0], [5.0], [100.0]])
    edge_index = torch.tensor([[0, 2, 1, 3, 1], [1, 1, 3, 1, 1]])  # 1 ← 0, 2, 3, itself; 3 ← 1
    hidden = torch.tensor([False, True, False, True])
    imputed = impute_from_neighbours(x, edge_index, hidden)
    assert imputed[:, 0].tolist() == [
        1.0,
        3.0,
        5.0,
        3.0,
    ]  # spot 3 has no visible neighbour: mean of 1, 5


def test_hold_out_keeps_the_truth_and_hides_a_seeded_fraction(tiny_tissue):
    graph = tiny_tissue.graph
    held = hold_out_spots(graph, 0.25, seed=3)
    assert int(held.val_mask.sum()) == round(0.25 * graph.num_spots)
    assert torch.equal(held.x_true, graph.x)
    assert torch.equal(held.x[~held.val_mask], graph.x[~held.val_mask])
    assert not torch.equal(held.x[held.val_mask], graph.x[held.val_mask])
    assert torch.equal(hold_out_spots(graph, 0.25, seed=3).val_mask, held.val_mask)
    with pytest.raises(ValueError, match="fraction"):
        hold_out_spots(graph, 1.0)


def test_hidden_spots_leave_no_trace_in_the_edge_weights(tiny_tissue):
    """The weights of a hidden spot's edges came from its profile: they become one shared
    value; the other edges keep theirs."""
    graph = tiny_tissue.graph
    held = hold_out_spots(graph, 0.25, seed=3)
    src, dst = graph.edge_index
    touches = (held.val_mask[src] | held.val_mask[dst]) & (src != dst)
    assert touches.any()
    assert torch.unique(held.edge_weight[touches]).numel() == 1
    assert torch.equal(held.edge_weight[~touches], graph.edge_weight[~touches])


def test_blind_weights_fill_with_the_visible_mean():
    edge_index = torch.tensor([[0, 1, 1, 2, 2], [1, 0, 2, 1, 2]])
    weight = torch.tensor([0.2, 0.2, 0.6, 0.6, 1.0])
    hidden = torch.tensor([False, False, True])
    out = blind_weights(edge_index, weight, hidden)
    assert out.tolist() == pytest.approx([0.2, 0.2, 0.2, 0.2, 1.0])
