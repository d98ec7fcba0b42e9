"""Fuzz: any small dataset .h5ad either reads as a valid Section or raises SoScopeInputError."""

import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from soscope.data.dataset_h5ad import GRAPH, SUBSPOTS, read_dataset_h5ad
from soscope.errors import SoScopeInputError

VALUES = st.sampled_from([0.0, 1.0, 2.0, 0.5, -1.0, np.nan, np.inf, 1e39])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
CORRUPT = st.sampled_from([False] * 7 + [True])
"""True one time in eight: each field is damaged that often, so valid files also occur."""


@st.composite
def garbage(draw, shape):
    """Odd numbers in the expected shape or another one, or text."""
    shape = draw(st.one_of(st.just(shape), SHAPES))
    values = draw(hnp.arrays(np.float64, shape, elements=VALUES))
    return values.astype(str) if draw(st.booleans()) else values


@st.composite
def field(draw, valid):
    """`valid`, or (one time in eight) garbage of its shape."""
    return draw(garbage(valid.shape)) if draw(CORRUPT) else valid


@st.composite
def datasets(draw):
    """A dataset .h5ad's AnnData whose fields are each possibly damaged or missing."""
    n, k, g = (draw(st.integers(1, 3)) for _ in range(3))
    m = n * k
    counts = draw(hnp.arrays(np.int64, (n, g), elements=st.integers(0, 5)))
    x = draw(field(counts / k))
    adata = ad.AnnData(X=x if x.ndim == 2 and len(x) == n and x.dtype.kind == "f" else counts / k)
    if draw(CORRUPT):
        adata.X[0, 0] = draw(VALUES)
    adata.obs_names = ["s"] * n if draw(CORRUPT) else [f"s{i}" for i in range(n)]
    weights = draw(hnp.arrays(np.float64, (n, n), elements=st.floats(0, 2)))
    adata.obsp[GRAPH] = sp.csr_matrix(np.where(draw(CORRUPT), -weights, weights))
    rng = np.random.default_rng(draw(st.integers(0, 9)))
    subspots = {
        "features": draw(field(rng.normal(size=(m, 2)))),
        "sub_to_spot": draw(field(np.repeat(np.arange(n), k))),
        "edges": draw(field(np.array([[0, m - 1, 1.0], [m - 1, 0, 0.5]]))),
        "positions": draw(field(rng.uniform(0, 100, size=(m, 2)))),
        "truth": draw(field(rng.poisson(2, size=(m, g)).astype(float))),
    }
    for key in draw(st.sets(st.sampled_from(sorted(subspots)), max_size=1)):
        if draw(CORRUPT):
            del subspots[key]
    adata.uns[SUBSPOTS] = subspots
    return adata


def assert_valid(section):
    graph = section.graph
    n, m = graph.num_spots, graph.num_subspots
    assert torch.isfinite(graph.x).all() and torch.isfinite(graph.sub_feat).all()
    assert graph.sub_to_spot.min() >= 0 and graph.sub_to_spot.max() < n
    assert (graph.sub_to_spot.bincount(minlength=n) > 0).all()
    for index, n_nodes in ((graph.edge_index, n), (graph.sub_edge_index, m)):
        assert index.min() >= 0 and index.max() < n_nodes
    assert len(set(section.spot_names)) == n
    assert section.truth is None or section.truth.shape == (m, graph.x.size(1))
    sub_pos = getattr(graph, "sub_pos", None)
    assert sub_pos is None or sub_pos.shape == (m, 2)


@settings(max_examples=60, deadline=None)
@given(adata=datasets())
def test_read_returns_a_valid_section_or_raises_input_error(adata):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dataset.h5ad"
        adata.write_h5ad(path)
        try:
            section = read_dataset_h5ad(path, likelihood="nb")
        except SoScopeInputError as err:
            assert str(path) in str(err)
            event(f"refused: {err.problem.split(' ')[0]}")
        else:
            assert_valid(section)
            event("read")
