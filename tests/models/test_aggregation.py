import torch

from soscope.models.aggregation import (
    aggregate,
    aggregate_mean,
    spot_blocks,
    spot_counts,
    spot_logsumexp,
    spot_relative,
    spot_softmax,
)

LAYOUTS = {
    "fixed": (torch.arange(5).repeat_interleave(7), 5),
    "tile": (torch.tensor([0, 0, 0, 2, 2, 2, 3, 3, 3]), 5),  # halo spots 1 and 4: none
    "variable": (torch.tensor([0, 0, 2, 1, 1, 1, 4, 2, 0, 4]), 5),
}


def naive_sum(values, sub_to_spot, n):
    out = torch.zeros(n, values.size(1))
    for row, spot in enumerate(sub_to_spot.tolist()):
        out[spot] += values[row]
    return out


def test_aggregate_equals_a_loop_for_fixed_and_variable_layouts():
    torch.manual_seed(0)
    for sub_to_spot, n in LAYOUTS.values():
        values = torch.randn(len(sub_to_spot), 3)
        torch.testing.assert_close(
            aggregate(values, sub_to_spot, n), naive_sum(values, sub_to_spot, n)
        )


def test_mean_and_counts_handle_spots_without_subspots():
    sub_to_spot = torch.tensor([0, 0, 2])
    values = torch.tensor([[1.0], [3.0], [5.0]])
    assert spot_counts(sub_to_spot, 3).squeeze(-1).tolist() == [2.0, 0.0, 1.0]
    assert aggregate_mean(values, sub_to_spot, 3).squeeze(-1).tolist() == [2.0, 0.0, 5.0]


def test_spot_blocks_only_for_sorted_layouts_of_one_count():
    values = torch.randn(9, 2)
    view, spots = spot_blocks(values, *LAYOUTS["tile"])
    assert view.shape == (3, 3, 2) and spots.tolist() == [0, 2, 3]
    assert view.data_ptr() == values.data_ptr()  # a view, no copy
    assert spot_blocks(torch.randn(10, 2), *LAYOUTS["variable"]) is None
    assert spot_blocks(torch.randn(4, 2), torch.tensor([1, 1, 0, 0]), 2) is None  # unsorted


def test_logsumexp_and_softmax_equal_a_loop_with_their_gradients():
    torch.manual_seed(1)
    for sub_to_spot, n in LAYOUTS.values():
        values = (20 * torch.randn(len(sub_to_spot), 3)).requires_grad_()
        lse = spot_logsumexp(values, sub_to_spot, n)
        soft = spot_softmax(values, sub_to_spot, n)
        for spot in range(n):
            rows = values[sub_to_spot == spot]
            expected = torch.logsumexp(rows, 0) if len(rows) else torch.full((3,), -torch.inf)
            torch.testing.assert_close(lse[spot], expected)
            if len(rows):
                torch.testing.assert_close(soft[sub_to_spot == spot], torch.softmax(rows, 0))
        # Gradients as through the plain formulas (a permutation forces the general path).
        weights = torch.randn(n, 3)
        grad = torch.autograd.grad((lse.nan_to_num(neginf=0.0) * weights).sum(), values)[0]
        order = torch.randperm(len(sub_to_spot))
        shuffled = values.detach()[order].requires_grad_()
        lse_shuffled = spot_logsumexp(shuffled, sub_to_spot[order], n).nan_to_num(neginf=0.0)
        expected = torch.autograd.grad((lse_shuffled * weights).sum(), shuffled)[0]
        torch.testing.assert_close(grad[order], expected)


def test_spot_relative_divides_by_or_subtracts_the_spot_mean():
    for sub_to_spot, n in LAYOUTS.values():
        values = torch.rand(len(sub_to_spot), 3)
        values[sub_to_spot == 0, 1] = 0.0  # a spot whose mean is 0 in one feature
        ratio = spot_relative(values, sub_to_spot, n, ratio=True)
        shift = spot_relative(values, sub_to_spot, n, ratio=False)
        for spot in sub_to_spot.unique().tolist():
            rows = values[sub_to_spot == spot]
            mean = rows.mean(0)
            expected = torch.where(mean > 0, rows / mean, torch.ones_like(rows))
            torch.testing.assert_close(ratio[sub_to_spot == spot], expected)
            torch.testing.assert_close(shift[sub_to_spot == spot], rows - mean)
