import torch

from soscope.models.aggregation import aggregate, aggregate_mean, spot_counts


def naive_sum(values, sub_to_spot, n):
    out = torch.zeros(n, values.size(1))
    for row, spot in enumerate(sub_to_spot.tolist()):
        out[spot] += values[row]
    return out


def test_aggregate_equals_a_loop_for_fixed_and_variable_layouts():
    torch.manual_seed(0)
    fixed = torch.arange(5).repeat_interleave(7)
    variable = torch.tensor([0, 0, 2, 1, 1, 1, 4, 2, 0, 4])
    for sub_to_spot in (fixed, variable):
        values = torch.randn(len(sub_to_spot), 3)
        torch.testing.assert_close(
            aggregate(values, sub_to_spot, 5), naive_sum(values, sub_to_spot, 5)
        )


def test_mean_and_counts_handle_spots_without_subspots():
    sub_to_spot = torch.tensor([0, 0, 2])
    values = torch.tensor([[1.0], [3.0], [5.0]])
    assert spot_counts(sub_to_spot, 3).squeeze(-1).tolist() == [2.0, 0.0, 1.0]
    assert aggregate_mean(values, sub_to_spot, 3).squeeze(-1).tolist() == [2.0, 0.0, 5.0]
