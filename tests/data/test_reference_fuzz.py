"""Fuzz: any small directory either reads as a valid SpotGraph or raises SoScopeInputError."""

import io
import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from soscope.data.reference_io import count_columns, read_reference_dir
from soscope.data.sample import SpotGraph
from soscope.errors import SoScopeInputError
from soscope.models.likelihoods import LIKELIHOODS

GARBAGE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-3, 12).map(float),
    st.sampled_from([0.0, 0.5, -1.0, -0.5, np.nan, np.inf, -np.inf, 1e39, 1e300]),
)
DTYPES = st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.bool_, np.uint8, ">f8"])
ODD_DTYPES = st.sampled_from([np.complex128, "U4", object])
PROTEIN_DIM = 1  # the joint likelihoods' first block: one column
CORRUPT = st.sampled_from([False, False, False, False, True])
"""True one time in five: each file is garbage that often, so valid directories also occur."""


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


@st.composite
def garbage(draw, rows, cols):
    """Garbage values in the expected shape, a wrong one or a wrong number of dimensions."""
    shape = draw(
        st.one_of(
            st.just((rows, cols)),
            st.tuples(st.integers(0, 8), st.integers(0, 4)),
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
        )
    )
    with np.errstate(all="ignore"):
        values = np.array(draw(st.lists(GARBAGE, min_size=1, max_size=16)))
        return np.resize(values, shape).astype(np.dtype(draw(DTYPES)))


@st.composite
def file_bytes(draw, array):
    """The .npy bytes of `array`, or of an odd dtype, cut short, or raw garbage bytes."""
    kind = draw(st.sampled_from(["npy"] * 6 + ["odd dtype", "truncated", "bytes", "header"]))
    if kind == "odd dtype":
        return npy_bytes(np.resize(array, array.shape).astype(draw(ODD_DTYPES)))
    data = npy_bytes(array)
    if kind == "header":  # a header whose shape disagrees with the data, perhaps hugely
        header = io.BytesIO()
        shape = draw(st.lists(st.sampled_from([0, 1, 2, 5, 10**6, 10**12]), max_size=3))
        descr = {"descr": array.dtype.str, "fortran_order": False, "shape": tuple(shape)}
        np.lib.format.write_array_header_1_0(header, descr)
        return header.getvalue() + array.tobytes()
    if kind == "truncated":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "bytes":
        return draw(st.one_of(st.binary(max_size=200), st.just(data[:10] + b"\xff" * 40)))
    return data


@st.composite
def matrices(draw, rows, cols, divisor=1):
    """A rows×cols table of counts / divisor, perhaps with one bad value, or garbage."""
    if draw(CORRUPT):
        return draw(garbage(rows, cols))
    counts = draw(hnp.arrays(np.int64, (rows, cols), elements=st.integers(0, 12)))
    table = (counts / divisor).astype(draw(st.sampled_from([np.float32, np.float64])))
    if draw(CORRUPT):
        with np.errstate(all="ignore"):
            table[draw(st.integers(0, rows - 1)), draw(st.integers(0, cols - 1))] = draw(GARBAGE)
    return table


@st.composite
def edges(draw, n_nodes):
    """E×3 edge rows with indices in [-2, n_nodes + 1] (mostly in range) and weights that are
    mostly in [0, 2], or garbage."""
    if draw(CORRUPT):
        return draw(garbage(draw(st.integers(0, 6)), 3))
    n_edges = draw(st.integers(1, 6))
    node = st.one_of(st.integers(0, n_nodes - 1), st.integers(-2, n_nodes + 1))
    weight = st.one_of(st.floats(0, 2), GARBAGE)
    index = draw(hnp.arrays(np.int64, (n_edges, 2), elements=node))
    weights = draw(hnp.arrays(np.float64, (n_edges, 1), elements=weight))
    rows = np.hstack([index, weights])
    if draw(CORRUPT):
        rows[draw(st.integers(0, n_edges - 1)), draw(st.integers(0, 1))] += 0.5
    return rows


@st.composite
def text_files(draw, n_rows, n_features):
    """Optional extras: feature names and positions CSVs, right, wrong or garbage."""
    files = {}
    if draw(st.booleans()):
        count = draw(st.sampled_from([n_features, n_features, 0, n_features + 1]))
        files["feature_names.txt"] = draw(
            st.one_of(
                st.just("\n".join(f"g{i}" for i in range(count)).encode()),
                st.just("\n".join(f"g{i // 2}" for i in range(count)).encode()),  # duplicates
                st.binary(max_size=40),
            )
        )
    for name, rows in (("positions.csv", n_rows), ("sub_positions.csv", None)):
        if draw(st.booleans()):
            n = rows if rows is not None else draw(st.integers(0, 12))
            header = draw(st.sampled_from(["x,y", "x,y", "a,b", "x"]))
            value = st.sampled_from(["1.5", "0", "nan", "inf", "-2", "abc", ""])
            lines = [",".join(draw(value) for _ in header.split(",")) for _ in range(n)]
            text = "\n".join([header, *lines]).encode()
            files[name] = draw(st.one_of(st.just(text), st.binary(max_size=40)))
    return files


@st.composite
def datasets(draw):
    """The files of a small directory as bytes, each possibly garbage, one possibly missing."""
    n_spots, k, n_features = (draw(st.integers(1, 3)) for _ in range(3))
    arrays = {
        "label.npy": draw(matrices(n_spots, n_features, divisor=k)),
        "support_feature.npy": draw(matrices(n_spots * k, draw(st.integers(1, 3)))),
        "adj.npy": draw(edges(n_spots)),
        "sub_adj.npy": draw(edges(n_spots * k)),
    }
    files = {name: draw(file_bytes(array)) for name, array in arrays.items()}
    if draw(CORRUPT):
        del files[draw(st.sampled_from(sorted(files)))]
    files.update(draw(text_files(n_spots, n_features)))
    return files


def assert_valid(graph, likelihood):
    """What every reader result guarantees: finite values, edges in range, a self-loop on every
    node, a fixed K-per-spot layout and, for a count likelihood, integer spot totals."""
    assert isinstance(graph, SpotGraph)
    n_spots, n_sub = graph.num_spots, graph.num_subspots
    k = n_sub // n_spots
    assert n_spots > 0 and k > 0 and n_sub == n_spots * k
    assert torch.isfinite(graph.x).all() and torch.isfinite(graph.sub_feat).all()
    for index, weight, n_nodes in (
        (graph.edge_index, graph.edge_weight, n_spots),
        (graph.sub_edge_index, graph.sub_edge_weight, n_sub),
    ):
        assert index.dtype == torch.long and index.min() >= 0 and index.max() < n_nodes
        assert torch.isfinite(weight).all() and (weight >= 0).all()
        assert set(index[0, index[0] == index[1]].tolist()) == set(range(n_nodes))
    assert graph.sub_to_spot.bincount(minlength=n_spots).tolist() == [k] * n_spots
    assert len(graph.feature_names) == graph.x.size(1)
    assert len(set(graph.feature_names)) == len(graph.feature_names)
    for key, rows in (("pos", n_spots), ("sub_pos", n_sub)):
        xy = getattr(graph, key, None)
        assert xy is None or (xy.shape == (rows, 2) and torch.isfinite(xy).all())
    columns = count_columns(likelihood, PROTEIN_DIM)
    if columns is not None:
        totals = graph.x[:, columns].double() * k
        assert (totals >= 0).all() and torch.allclose(totals, totals.round(), atol=1e-2)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(files=datasets(), likelihood=st.sampled_from([None, *LIKELIHOODS]))
def test_read_returns_a_valid_graph_or_raises_input_error(files, likelihood):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "dataset"
        root.mkdir()
        for name, data in files.items():
            (root / name).write_bytes(data)
        try:
            graph = read_reference_dir(root, likelihood=likelihood, protein_dim=PROTEIN_DIM)
        except SoScopeInputError as err:
            assert str(root) in str(err)
        else:
            assert_valid(graph, likelihood)
