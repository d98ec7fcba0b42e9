"""Image features projected onto their top principal directions (soscope.data.features)."""

import torch

from soscope.data.datamodule import SpotDataModule
from soscope.data.features import principal_basis, project_features
from soscope.datasets import make_synthetic_tissue


def low_rank_features(rows: int = 300, columns: int = 40, rank: int = 5) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    left = torch.rand(rows, rank, generator=generator)
    return left @ torch.rand(rank, columns, generator=generator)


def test_the_basis_is_orthonormal_and_keeps_features_of_lower_rank_exactly():
    features = low_rank_features()
    basis = principal_basis(features, 8)
    assert basis.shape == (40, 8)
    torch.testing.assert_close(basis.T @ basis, torch.eye(8), atol=1e-5, rtol=0)
    # Rank 5 ≤ 8 directions: projecting and mapping back loses nothing, so any first layer
    # on the features has an equal one on the projection.
    torch.testing.assert_close(features @ basis @ basis.T, features, atol=1e-4, rtol=1e-4)


def test_the_top_direction_carries_the_most_variance():
    features = low_rank_features()
    projected = project_features(features, 3)
    energy = projected.pow(2).sum(0)
    assert bool((energy[:-1] >= energy[1:]).all())
    assert energy.sum() <= features.pow(2).sum() * (1 + 1e-5)


def test_projection_is_reproducible_and_keeps_the_dtype():
    features = low_rank_features().half()
    first, second = project_features(features, 4), project_features(features.clone(), 4)
    assert first.dtype == torch.float16 and first.shape == (300, 4)
    assert torch.equal(first, second)


def test_no_projection_when_asked_for_none_or_when_there_are_few_columns():
    features = low_rank_features()
    assert project_features(features, None) is features
    assert project_features(features, 40) is features


def test_the_data_module_serves_projected_features_and_leaves_the_section_alone():
    section = make_synthetic_tissue(n_rows=6, n_cols=6, seed=0).to_section()
    width = section.graph.sub_feat.size(1)
    data = SpotDataModule(section, feature_components=4)
    assert data.section.graph.sub_feat.shape == (section.graph.num_subspots, 4)
    assert data.train_graph.sub_feat.size(1) == 4
    assert section.graph.sub_feat.size(1) == width
    assert SpotDataModule(section).section.graph.sub_feat.size(1) == width
