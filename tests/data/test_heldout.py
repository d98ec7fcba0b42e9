import pytest
import torch

from soscope.data.heldout import hold_out_spots, impute_from_neighbours


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
