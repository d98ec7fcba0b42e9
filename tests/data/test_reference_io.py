"""The original's dataset directory: reading, writing, round trips and every validation error."""

import numpy as np
import pandas as pd
import pytest
import torch

from soscope.data import reference_io
from soscope.data.reference_io import (
    read_reference_dir,
    read_reference_section,
    write_reference_dir,
)
from soscope.data.sample import Section, make_spot_graph
from soscope.datasets import make_synthetic_tissue
from soscope.errors import SoScopeInputError
from soscope.models.aggregation import spot_counts

N_SPOTS, K, N_FEATURES, FEAT_DIM = 3, 2, 4, 5
COUNTS = np.array([[0, 2, 5, 1], [3, 0, 1, 8], [2, 2, 0, 4]], dtype=np.float64)
ADJ = np.array([[0, 1, 0.5], [1, 0, 0.5], [1, 2, 0.25], [2, 1, 0.25]])
SUB_ADJ = np.array([[0, 1, 0.9], [1, 0, 0.9], [2, 3, 0.8], [3, 2, 0.8], [4, 5, 0.7], [5, 4, 0.7]])


def write_original_dir(root, **override):
    """A tiny dataset in the original's format; `override` replaces files by name (None: omit)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = {
        "label.npy": (COUNTS / K).astype(np.float32),
        "adj.npy": ADJ,
        "support_feature.npy": rng.normal(size=(N_SPOTS * K, FEAT_DIM)).astype(np.float32),
        "sub_adj.npy": SUB_ADJ,
    }
    files.update(override)
    for name, array in files.items():
        if array is not None:
            np.save(root / name, array)
    return root


@pytest.fixture
def original_dir(tmp_path):
    return write_original_dir(tmp_path / "dataset")


def assert_self_loops_added(index, weight, file_edges, n_nodes):
    loops = index[0] == index[1]
    assert sorted(index[0, loops].tolist()) == list(range(n_nodes))
    assert torch.all(weight[loops] == 1.0)
    rows = torch.cat([index[:, ~loops].T.double(), weight[~loops, None].double()], dim=1)
    np.testing.assert_allclose(rows.numpy(), file_edges)


def test_read_original_dir_shapes_layout_and_self_loops(original_dir):
    graph = read_reference_dir(original_dir, likelihood="nb")
    assert graph.x.shape == (N_SPOTS, N_FEATURES) and graph.x.dtype == torch.float32
    assert graph.sub_feat.shape == (N_SPOTS * K, FEAT_DIM)
    assert graph.sub_to_spot.tolist() == [0, 0, 1, 1, 2, 2]
    assert spot_counts(graph.sub_to_spot, graph.num_spots).squeeze(-1).tolist() == [K] * N_SPOTS
    assert_self_loops_added(graph.edge_index, graph.edge_weight, ADJ, N_SPOTS)
    assert_self_loops_added(graph.sub_edge_index, graph.sub_edge_weight, SUB_ADJ, N_SPOTS * K)
    assert graph.feature_names == ["f0", "f1", "f2", "f3"]
    assert getattr(graph, "pos", None) is None and getattr(graph, "sub_pos", None) is None


def test_self_loop_given_in_the_file_keeps_its_weight(tmp_path):
    adj = np.vstack([ADJ, [[2, 2, 0.3]]])
    graph = read_reference_dir(write_original_dir(tmp_path / "d", **{"adj.npy": adj}))
    loop = (graph.edge_index[0] == 2) & (graph.edge_index[1] == 2)
    assert graph.edge_weight[loop].tolist() == pytest.approx([0.3])


def test_read_optional_names_and_positions(original_dir):
    (original_dir / "feature_names.txt").write_text("CD3E\nMS4A1\nEPCAM\nKRT19\n")
    pd.DataFrame({"x": [10.0, 20.0, 30.0], "y": [1.0, 2.0, 3.0]}).to_csv(
        original_dir / "positions.csv", index=False
    )
    sub = pd.DataFrame({"x": np.arange(6.0), "y": np.arange(6.0) * 2})
    sub.to_csv(original_dir / "sub_positions.csv", index=False)
    section = read_reference_section(original_dir, likelihood="poisson")
    assert isinstance(section, Section) and section.name == "dataset"
    assert section.feature_names == ["CD3E", "MS4A1", "EPCAM", "KRT19"]
    assert not hasattr(section.graph, "feature_names")
    assert section.graph.pos.tolist() == [[10, 1], [20, 2], [30, 3]]
    assert section.graph.sub_pos.shape == (6, 2)


def assert_graphs_equal(a, b):
    keys = ["x", "edge_index", "edge_weight", "sub_feat", "sub_edge_index", "sub_edge_weight"]
    keys += ["sub_to_spot", "pos", "sub_pos"]
    for key in keys:
        left, right = getattr(a, key, None), getattr(b, key, None)
        assert (left is None) == (right is None), key
        if left is not None:
            assert left.dtype == right.dtype and torch.equal(left, right), key


def test_write_then_read_round_trips_exactly(original_dir, tmp_path):
    graph = read_reference_dir(original_dir)
    graph.pos = torch.tensor([[0.1, 0.2], [1.5, 2.5], [3.25, 1e4 / 3]])
    write_reference_dir(graph, tmp_path / "copy", feature_names=["a", "b", "c", "d"])
    again = read_reference_dir(tmp_path / "copy")
    assert_graphs_equal(graph, again)
    assert again.feature_names == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(np.load(tmp_path / "copy" / "adj.npy"), ADJ)


def edge_set(index, weight):
    """The graph as a set of (i, j, w) rows: equal graphs compare equal in any edge order."""
    return set(zip(index[0].tolist(), index[1].tolist(), weight.tolist(), strict=True))


@pytest.fixture(scope="module")
def small_tissue():
    return make_synthetic_tissue(n_rows=4, n_cols=4, seed=0)


def test_small_synthetic_tissue_round_trips_as_edge_sets(small_tissue, tmp_path):
    graph = small_tissue.graph
    write_reference_dir(graph, tmp_path / "syn", feature_names=list(small_tissue.feature_names))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]
    again = read_reference_dir(tmp_path / "syn", likelihood=small_tissue.likelihood)
    for key in ["x", "sub_feat", "sub_to_spot", "pos", "sub_pos"]:
        assert torch.equal(getattr(again, key), getattr(graph, key)), key
    assert edge_set(again.edge_index, again.edge_weight) == edge_set(
        graph.edge_index, graph.edge_weight
    )
    assert edge_set(again.sub_edge_index, again.sub_edge_weight) == edge_set(
        graph.sub_edge_index, graph.sub_edge_weight
    )
    assert again.feature_names == list(small_tissue.feature_names)
    assert again.num_subspots // again.num_spots == graph.num_subspots // graph.num_spots


def test_write_refuses_variable_subspots_per_spot(original_dir, tmp_path):
    graph = read_reference_dir(original_dir)
    graph.sub_to_spot = torch.tensor([0, 0, 0, 1, 2, 2])
    with pytest.raises(SoScopeInputError, match="same number K"):
        write_reference_dir(graph, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_write_refuses_existing_path_unless_overwrite(original_dir, tmp_path):
    graph = read_reference_dir(original_dir)
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("user file")
    with pytest.raises(SoScopeInputError, match="overwrite=True"):
        write_reference_dir(graph, target)
    assert (target / "keep.txt").exists()
    write_reference_dir(graph, target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == [
        "adj.npy",
        "feature_names.txt",
        "label.npy",
        "sub_adj.npy",
        "support_feature.npy",
    ]


def test_write_refuses_bad_feature_names(original_dir, tmp_path):
    graph = read_reference_dir(original_dir)
    with pytest.raises(SoScopeInputError, match="3 feature names for 4"):
        write_reference_dir(graph, tmp_path / "a", feature_names=["a", "b", "c"])
    with pytest.raises(SoScopeInputError, match="single lines"):
        write_reference_dir(graph, tmp_path / "b", feature_names=["a", "b\nc", "d", "e"])


@pytest.fixture(params=[1, 2, 4], ids=lambda n: f"save{n}")
def failing_save(request, monkeypatch):
    """`np.save` as the module uses it fails on call number `request.param`."""
    real_save = np.save
    calls = []

    def save(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == request.param:
            raise OSError("disk full")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(reference_io.np, "save", save)
    return calls


def test_failed_write_leaves_nothing_behind(original_dir, tmp_path, failing_save):
    graph = read_reference_dir(original_dir)
    graph.pos = torch.zeros(N_SPOTS, 2)
    with pytest.raises(OSError, match="disk full"):
        write_reference_dir(graph, tmp_path / "out", feature_names=["a", "b", "c", "d"])
    assert len(failing_save) >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]


def test_failed_overwrite_keeps_the_old_directory(original_dir, failing_save):
    graph = read_reference_dir(original_dir)
    before = {p.name: p.read_bytes() for p in original_dir.iterdir()}
    with pytest.raises(OSError, match="disk full"):
        write_reference_dir(graph, original_dir, overwrite=True)
    assert {p.name: p.read_bytes() for p in original_dir.iterdir()} == before
    assert [p.name for p in original_dir.parent.iterdir()] == ["dataset"]


def _truncate(root, name):
    data = (root / name).read_bytes()
    (root / name).write_bytes(data[: len(data) - 7])


def _write_object_array(root, name):
    np.save(root / name, np.array([{"not": "numbers"}], dtype=object), allow_pickle=True)


def _put_nan(root, name):
    label = np.load(root / name)
    label[1, 2] = np.nan
    np.save(root / name, label)


BAD_FILES = {
    "missing file": (lambda r: (r / "sub_adj.npy").unlink(), "sub_adj.npy", "not found"),
    "truncated": (lambda r: _truncate(r, "label.npy"), "label.npy", "truncated"),
    "not npy": (lambda r: (r / "adj.npy").write_text("0,1,1\n"), "adj.npy", "not a .npy"),
    "pickled": (
        lambda r: _write_object_array(r, "support_feature.npy"),
        "support_feature.npy",
        "Python objects",
    ),
    "text dtype": (
        lambda r: np.save(r / "label.npy", np.array([["a"]])),
        "label.npy",
        "not real numbers",
    ),
    "label 1-D": (lambda r: np.save(r / "label.npy", np.ones(3)), "label.npy", "2-D"),
    "rows not a multiple": (
        lambda r: np.save(r / "support_feature.npy", np.ones((7, FEAT_DIM))),
        "support_feature.npy",
        "7 rows, not a positive multiple of the 3 spots in label.npy",
    ),
    "sub_adj out of range": (
        lambda r: np.save(r / "sub_adj.npy", np.vstack([SUB_ADJ, [[6, 0, 1.0]]])),
        "sub_adj.npy",
        "outside the 6 nodes",
    ),
    "adj with 2 columns": (lambda r: np.save(r / "adj.npy", ADJ[:, :2]), "adj.npy", "E × 3"),
    "fractional index": (
        lambda r: np.save(r / "adj.npy", np.array([[0, 1.5, 1.0]])),
        "adj.npy",
        "must be integers",
    ),
    "negative weight": (
        lambda r: np.save(r / "adj.npy", np.array([[0, 1, -1.0]])),
        "adj.npy",
        "≥ 0",
    ),
    "NaN in label": (
        lambda r: _put_nan(r, "label.npy"),
        "label.npy",
        "1 NaN and 0 infinite values (the first at row 1, column 2)",
    ),
    "inf weight": (
        lambda r: np.save(r / "sub_adj.npy", np.array([[0, 1, np.inf]])),
        "sub_adj.npy",
        "1 infinite",
    ),
    "empty adj": (lambda r: np.save(r / "adj.npy", np.zeros((0, 3))), "adj.npy", "empty graph"),
    "no features": (lambda r: np.save(r / "label.npy", np.zeros((3, 0))), "label.npy", "empty"),
    "float32 overflow": (
        lambda r: np.save(r / "support_feature.npy", np.full((6, 2), 1e300)),
        "support_feature.npy",
        "beyond the float32 range",
    ),
    "positions rows": (
        lambda r: pd.DataFrame({"x": [1.0], "y": [2.0]}).to_csv(r / "positions.csv", index=False),
        "positions.csv",
        "1 rows, expected 3",
    ),
    "positions columns": (
        lambda r: pd.DataFrame({"a": [1.0] * 3}).to_csv(r / "positions.csv", index=False),
        "positions.csv",
        "columns x, y",
    ),
    "feature names count": (
        lambda r: (r / "feature_names.txt").write_text("a\nb\n"),
        "feature_names.txt",
        "2 names for the 4 features",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_file_raises_one_clear_error(original_dir, case):
    corrupt, file_name, problem = BAD_FILES[case]
    corrupt(original_dir)
    with pytest.raises(SoScopeInputError) as caught:
        read_reference_dir(original_dir, likelihood="nb")
    message = str(caught.value)
    assert file_name in message and problem in message, message


def test_missing_directory(tmp_path):
    with pytest.raises(SoScopeInputError, match="directory not found") as caught:
        read_reference_dir(tmp_path / "nowhere")
    assert "nowhere" in str(caught.value)


def test_a_file_is_not_a_dataset_directory(original_dir):
    with pytest.raises(SoScopeInputError, match="directory not found") as caught:
        read_reference_dir(original_dir / "label.npy")
    assert "label.npy" in str(caught.value)


def test_sub_positions_with_the_wrong_rows(original_dir):
    pd.DataFrame({"x": np.arange(3.0), "y": np.arange(3.0)}).to_csv(
        original_dir / "sub_positions.csv", index=False
    )
    with pytest.raises(SoScopeInputError, match="3 rows, expected 6") as caught:
        read_reference_dir(original_dir)
    assert "sub_positions.csv" in str(caught.value)


@pytest.mark.parametrize(
    "likelihood, checked",
    [
        ("nb", True),
        ("poisson", True),
        ("joint_pnb", True),
        ("gaussian", False),
        (None, False),
    ],
)
@pytest.mark.parametrize("bad_total", [-2.0, 0.5])
def test_count_check_depends_on_the_likelihood(tmp_path, likelihood, checked, bad_total):
    counts = COUNTS.copy()
    counts[2, 3] = bad_total
    root = write_original_dir(tmp_path / "d", **{"label.npy": counts / K})
    if not checked:
        graph = read_reference_dir(root, likelihood=likelihood)
        assert graph.x[2, 3].item() == pytest.approx(bad_total / K)
        return
    with pytest.raises(SoScopeInputError, match="counts in 1 features: f3;") as caught:
        read_reference_dir(root, likelihood=likelihood)
    assert "label.npy" in str(caught.value)


def test_negative_and_fractional_counts_name_the_features(tmp_path):
    counts = COUNTS.copy()
    counts[0, 1] = -2
    root = write_original_dir(tmp_path / "neg", **{"label.npy": counts / K})
    (root / "feature_names.txt").write_text("CD3E\nMS4A1\nEPCAM\nKRT19\n")
    with pytest.raises(SoScopeInputError, match=r"negative counts in 1 features: MS4A1") as caught:
        read_reference_dir(root, likelihood="nb")
    assert "label.npy" in str(caught.value)

    counts = COUNTS.copy()
    counts[1, [0, 3]] += 0.5
    root = write_original_dir(tmp_path / "frac", **{"label.npy": counts / K})
    with pytest.raises(SoScopeInputError, match=r"non-integer counts in 2 features: f0, f3"):
        read_reference_dir(root, likelihood="poisson")
    assert read_reference_dir(root, likelihood="gaussian").x.shape == (N_SPOTS, N_FEATURES)


def test_many_bad_features_are_summarised(tmp_path):
    label = np.full((N_SPOTS, 9), 0.3)
    root = write_original_dir(tmp_path / "d", **{"label.npy": label})
    with pytest.raises(SoScopeInputError, match=r"f0, f1, f2, f3, f4 and 4 more"):
        read_reference_dir(root, likelihood="joint_pnb")


def test_joint_gaussian_checks_only_the_count_block(tmp_path):
    counts = COUNTS.copy()
    counts[:, 0] = -0.37
    counts[:, 1] = 0.25
    root = write_original_dir(tmp_path / "d", **{"label.npy": counts / K})
    graph = read_reference_dir(root, likelihood="joint_gaussian", protein_dim=2)
    assert graph.x.shape == (N_SPOTS, N_FEATURES)
    with pytest.raises(SoScopeInputError, match=r"non-integer counts in 1 features: f1;"):
        read_reference_dir(root, likelihood="joint_gaussian", protein_dim=1)
    with pytest.raises(SoScopeInputError, match=r"negative counts in 1 features: f0;"):
        read_reference_dir(root, likelihood="joint_gaussian", protein_dim=0)
    counts[0, 3] = -1
    root = write_original_dir(tmp_path / "e", **{"label.npy": counts / K})
    with pytest.raises(SoScopeInputError, match=r"negative counts in 1 features: f3;"):
        read_reference_dir(root, likelihood="joint_gaussian", protein_dim=2)


def test_float32_count_rounding_is_tolerated(tmp_path):
    counts = np.array([[12345.0, 7.0]] * N_SPOTS)
    k = 7
    label = (counts / k).astype(np.float32)
    features = np.ones((N_SPOTS * k, 2), dtype=np.float32)
    sub_adj = np.array([[0, 1, 1.0]])
    root = write_original_dir(
        tmp_path / "d",
        **{"label.npy": label, "support_feature.npy": features, "sub_adj.npy": sub_adj},
    )
    graph = read_reference_dir(root, likelihood="nb")
    assert graph.num_subspots == N_SPOTS * k


def test_make_spot_graph_fields_survive_round_trip_without_positions(tmp_path):
    graph = make_spot_graph(
        torch.ones(2, 1),
        torch.tensor([[0, 1, 0, 1], [1, 0, 0, 1]]),
        torch.tensor([0.5, 0.5, 1.0, 1.0]),
        torch.zeros(2, 3),
        torch.tensor([[0, 1, 0, 1], [1, 0, 0, 1]]),
        torch.tensor([2.0, 2.0, 1.0, 1.0]),
        torch.tensor([0, 1]),
    )
    write_reference_dir(graph, tmp_path / "d")
    assert not (tmp_path / "d" / "feature_names.txt").exists()
    assert_graphs_equal(graph, read_reference_dir(tmp_path / "d"))
