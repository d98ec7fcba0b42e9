"""The embedded synthetic tissue: fields, count blocks, seeding and the signal it carries."""

import numpy as np
import pytest
import torch

from soscope.data.sample import Section, SpotGraph
from soscope.datasets import SyntheticTissue, make_synthetic_tissue, synthetic_section
from soscope.datasets.synthetic import LIKELIHOODS
from soscope.preprocess.image_features import FEATURE_NAMES

SMALL = {"n_rows": 6, "n_cols": 7, "n_features": 6, "protein_dim": 2}
SUBSPOTS_PER_SPOT = {"visium": 7, "grid": 9}
COUNT_BLOCK = {  # which features must be non-negative integers
    "nb": slice(0, 6),
    "poisson": slice(0, 6),
    "gaussian": slice(0, 0),
    "joint_pnb": slice(0, 6),
    "joint_gaussian": slice(2, 6),
}


def _small(platform: str, likelihood: str = "nb", **kwargs) -> SyntheticTissue:
    return make_synthetic_tissue(platform, factor=3, likelihood=likelihood, **SMALL, **kwargs)


def _has_self_loops(edge_index: torch.Tensor, weight: torch.Tensor, n: int) -> bool:
    loops = edge_index[0] == edge_index[1]
    return sorted(edge_index[0, loops].tolist()) == list(range(n)) and bool(
        torch.all(weight[loops] == 1.0)
    )


def _mixed_spot_fraction(tissue: SyntheticTissue, k: int) -> float:
    per_spot = tissue.sub_domain.reshape(-1, k)
    return float(np.mean((per_spot != per_spot[:, :1]).any(axis=1)))


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("platform", ["visium", "grid"])
def test_fields_have_the_contracted_shapes_and_dtypes(platform, likelihood):
    tissue = _small(platform, likelihood)
    n, k, g = 42, SUBSPOTS_PER_SPOT[platform], 6
    m = n * k
    graph = tissue.graph
    assert isinstance(graph, SpotGraph)
    assert graph.x.shape == (n, g) and graph.x.dtype == torch.float32
    assert graph.sub_feat.shape == (m, len(FEATURE_NAMES))
    assert graph.sub_to_spot.dtype == torch.long
    assert torch.equal(graph.sub_to_spot, torch.arange(n).repeat_interleave(k))
    assert graph.edge_index.dtype == torch.long and graph.edge_weight.dtype == torch.float32
    assert graph.sub_edge_index.max() < m and graph.edge_index.max() < n
    assert _has_self_loops(graph.edge_index, graph.edge_weight, n)
    assert _has_self_loops(graph.sub_edge_index, graph.sub_edge_weight, m)
    assert graph.pos.shape == (n, 2) and graph.sub_pos.shape == (m, 2)
    assert tissue.truth.shape == (m, g) and tissue.truth.dtype == np.float32
    assert torch.equal(graph.sub_truth, torch.from_numpy(tissue.truth))
    assert tissue.image.dtype == np.uint8 and tissue.image.shape[2] == 3
    assert tissue.spot_pos.shape == (n, 2) and tissue.sub_pos.shape == (m, 2)
    assert tissue.array_coords.shape == (n, 2) and tissue.array_coords.dtype == np.int64
    assert tissue.sub_domain.shape == (m,)
    assert len(tissue.feature_names) == g
    assert tissue.protein_dim == (2 if likelihood.startswith("joint") else 0)
    assert (tissue.platform, tissue.likelihood) == (platform, likelihood)
    assert tissue.sub_diameter == pytest.approx(14.0)
    height, width = tissue.image.shape[:2]
    assert (tissue.sub_pos >= 0).all() and (tissue.sub_pos < [width, height]).all()


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_spot_profile_is_the_mean_of_its_subspots(likelihood):
    tissue = _small("visium", likelihood)
    per_spot = tissue.truth.reshape(-1, 7, 6).mean(axis=1)
    np.testing.assert_allclose(tissue.graph.x.numpy(), per_spot, rtol=1e-6)


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
def test_count_blocks_hold_non_negative_integers(likelihood):
    tissue = _small("grid", likelihood)
    counts = tissue.truth[:, COUNT_BLOCK[likelihood]]
    assert (counts >= 0).all() and np.array_equal(counts, np.round(counts))
    totals = tissue.graph.x.numpy()[:, COUNT_BLOCK[likelihood]] * 9
    np.testing.assert_allclose(totals, np.round(totals), atol=1e-3)
    if likelihood.endswith("gaussian"):
        gaussian = tissue.truth[:, : 6 if likelihood == "gaussian" else 2]
        assert not np.array_equal(gaussian, np.round(gaussian))


def test_markers_are_tens_per_subspot():
    tissue = make_synthetic_tissue()
    domain_means = [tissue.truth[tissue.sub_domain == d].mean(0) for d in range(4)]
    assert np.max(domain_means, axis=0).min() > 15  # every feature is a marker somewhere


def test_same_seed_same_tissue_other_seed_other_tissue():
    first, again, other = _small("visium"), _small("visium"), _small("visium", seed=1)
    np.testing.assert_array_equal(first.truth, again.truth)
    np.testing.assert_array_equal(first.image, again.image)
    assert torch.equal(first.graph.sub_feat, again.graph.sub_feat)
    assert torch.equal(first.graph.edge_weight, again.graph.edge_weight)
    assert torch.equal(first.graph.sub_edge_index, again.graph.sub_edge_index)
    assert not np.array_equal(first.truth, other.truth)
    assert not np.array_equal(first.image, other.image)


@pytest.mark.parametrize(("platform", "k"), [("visium", 7), ("grid", 4)])
def test_domains_vary_within_spots(platform, k):
    tissue = make_synthetic_tissue(platform)
    assert _mixed_spot_fraction(tissue, k) > 0.2
    assert len(np.unique(tissue.sub_domain)) == 4


def test_image_features_predict_the_subspot_domain():
    tissue = make_synthetic_tissue()
    features, domain = tissue.graph.sub_feat.numpy(), tissue.sub_domain
    order = np.random.default_rng(0).permutation(len(domain))
    train, test = order[: len(order) // 2], order[len(order) // 2 :]
    centroids = np.stack([features[train][domain[train] == d].mean(0) for d in range(4)])
    distance = np.linalg.norm(features[test][:, None] - centroids[None], axis=-1)
    accuracy = np.mean(distance.argmin(axis=1) == domain[test])
    chance = np.bincount(domain).max() / len(domain)
    assert accuracy > 0.75 and accuracy > chance + 0.3


def test_subspot_graph_weights_favour_same_domain_neighbours():
    tissue = make_synthetic_tissue()
    src, dst = tissue.graph.sub_edge_index.numpy()
    weight = tissue.graph.sub_edge_weight.numpy()
    keep = src != dst
    same = tissue.sub_domain[src[keep]] == tissue.sub_domain[dst[keep]]
    assert weight[keep][same].mean() > weight[keep][~same].mean() + 0.1


def test_constant_image_gives_constant_features_and_unit_weights():
    tissue = _small("visium", constant_image=True)
    assert torch.all(tissue.graph.sub_feat == tissue.graph.sub_feat[0])
    assert torch.all(tissue.graph.sub_edge_weight == 1.0)


def test_to_section_carries_truth_and_image():
    tissue = _small("grid", "poisson")
    section = tissue.to_section()
    assert isinstance(section, Section) and section.graph is tissue.graph
    assert section.truth is tissue.truth and section.image is tissue.image
    assert section.feature_names == tissue.feature_names
    assert section.meta["likelihood"] == "poisson"


def test_synthetic_section_takes_the_hydra_arguments():
    section = synthetic_section(platform="visium", factor=None, likelihood="nb", protein_dim=0)
    assert isinstance(section, Section) and section.graph.num_subspots == 7 * 400


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"platform": "slide-seq"}, "platform"),
        ({"likelihood": "zinb"}, "likelihood"),
        ({"likelihood": "joint_pnb", "n_features": 5, "protein_dim": 5}, "protein_dim"),
        ({"n_rows": 0}, "positive"),
        ({"platform": "grid", "factor": None}, "factor"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_tissue(**kwargs)


def test_cell_level_tissue_has_variable_cells_per_spot_and_spot_means():
    import numpy as np

    from soscope.datasets import make_synthetic_tissue

    tissue = make_synthetic_tissue(platform="cells", n_rows=5, n_cols=5, seed=1)
    graph = tissue.graph
    counts = np.bincount(graph.sub_to_spot.numpy(), minlength=graph.num_spots)
    assert counts.min() >= 1 and len(set(counts)) > 1
    sums = np.zeros_like(graph.x.numpy(), dtype=np.float64)
    np.add.at(sums, graph.sub_to_spot.numpy(), tissue.truth)
    np.testing.assert_allclose(graph.x.numpy(), sums / counts[:, None], rtol=1e-5)
