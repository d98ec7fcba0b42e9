"""Fuzz: any small directory either reads as a valid SpotGraph or raises SoScopeInputError."""

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from soscope.data.reference_io import read_reference_dir
from soscope.errors import SoScopeInputError

GARBAGE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-3, 12).map(float),
    st.sampled_from([0.0, 0.5, -1.0, 1e39, 1e300]),
)
DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.bool_, np.uint8, ">f8"])
CORRUPT = st.sampled_from([False, False, False, False, True])
"""True one time in five: each file is garbage that often, so valid directories also occur."""


@st.composite
def garbage(draw, rows, cols):
    """Garbage values in the expected shape, a wrong one or a wrong number of dimensions."""
    shape = draw(
        st.one_of(
            st.just((rows, cols)),
            st.tuples(st.integers(0, 8), st.integers(0, 4)),
            hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
        )
    )
    with np.errstate(all="ignore"):
        values = np.array(draw(st.lists(GARBAGE, min_size=1, max_size=16)))
        return np.resize(values, shape).astype(np.dtype(draw(DTYPES)))


@st.composite
def matrices(draw, rows, cols, divisor=1):
    """A rows×cols table of counts / divisor, or garbage."""
    if draw(CORRUPT):
        return draw(garbage(rows, cols))
    counts = draw(hnp.arrays(np.int64, (rows, cols), elements=st.integers(0, 12)))
    return (counts / divisor).astype(draw(st.sampled_from([np.float32, np.float64])))


@st.composite
def edges(draw, n_nodes):
    """E×3 edge rows over n_nodes nodes with weights in [0, 2], or garbage."""
    if draw(CORRUPT):
        return draw(garbage(draw(st.integers(0, 6)), 3))
    n_edges = draw(st.integers(1, 6))
    index = draw(hnp.arrays(np.int64, (n_edges, 2), elements=st.integers(0, n_nodes - 1)))
    weight = draw(hnp.arrays(np.float64, (n_edges, 1), elements=st.floats(0, 2)))
    return np.hstack([index, weight])


@st.composite
def datasets(draw):
    """The four files of a small directory, each possibly garbage, one possibly missing."""
    n_spots, k, n_features = (draw(st.integers(1, 3)) for _ in range(3))
    files = {
        "label.npy": draw(matrices(n_spots, n_features, divisor=k)),
        "support_feature.npy": draw(matrices(n_spots * k, draw(st.integers(1, 3)))),
        "adj.npy": draw(edges(n_spots)),
        "sub_adj.npy": draw(edges(n_spots * k)),
    }
    if draw(CORRUPT):
        del files[draw(st.sampled_from(sorted(files)))]
    return files


def assert_valid(graph, likelihood):
    """What every reader result guarantees: finite values, edges in range, a self-loop on every
    node, a fixed K-per-spot layout and, for a count likelihood, integer spot totals."""
    n_spots, n_sub = graph.num_spots, graph.num_subspots
    k = n_sub // n_spots
    assert n_spots > 0 and k > 0 and n_sub == n_spots * k
    assert torch.isfinite(graph.x).all() and torch.isfinite(graph.sub_feat).all()
    for index, weight, n_nodes in (
        (graph.edge_index, graph.edge_weight, n_spots),
        (graph.sub_edge_index, graph.sub_edge_weight, n_sub),
    ):
        assert index.min() >= 0 and index.max() < n_nodes
        assert torch.isfinite(weight).all() and (weight >= 0).all()
        assert set(index[0, index[0] == index[1]].tolist()) == set(range(n_nodes))
    assert graph.sub_to_spot.bincount(minlength=n_spots).tolist() == [k] * n_spots
    if likelihood == "nb":
        totals = graph.x.double() * k
        assert (totals >= 0).all() and torch.allclose(totals, totals.round(), atol=1e-2)


@pytest.mark.parametrize("likelihood", [None, "nb"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=datasets())
def test_read_returns_a_valid_graph_or_raises_input_error(likelihood, files):
    root = Path(tempfile.mkdtemp())
    try:
        for name, array in files.items():
            np.save(root / name, array)
        try:
            graph = read_reference_dir(root, likelihood=likelihood)
        except SoScopeInputError as err:
            assert str(root) in str(err)
        else:
            assert_valid(graph, likelihood)
    finally:
        shutil.rmtree(root)
