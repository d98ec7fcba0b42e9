"""Feature selection: count-based highly variable features, a user's list, or all."""

import numpy as np
import pytest
import scipy.sparse as sp

from soscope.errors import SoScopeInputError
from soscope.preprocess.selection import pearson_residual_variance, select_features


def _counts(seed: int = 0) -> tuple[sp.csr_matrix, list[str]]:
    """300 spots of varying depth in two domains: genes 0-2 mark one, 3-5 the other (so both
    have the same expected total), 14 are Poisson noise."""
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.5, 2.0, size=300)
    domain = np.arange(300) % 2
    means = np.full((300, 20), 5.0)
    means[:, :3] = np.where(domain[:, None] == 1, 20.0, 1.0)
    means[:, 3:6] = np.where(domain[:, None] == 0, 20.0, 1.0)
    counts = rng.poisson(means * depth[:, None])
    return sp.csr_matrix(counts), [f"g{i}" for i in range(20)]


def test_highly_variable_features_are_the_domain_markers():
    counts, names = _counts()
    np.testing.assert_array_equal(select_features(counts, names, "hvg", n_top=6), np.arange(6))
    assert len(select_features(counts, names, "hvg", n_top=50)) == 20


def test_depth_alone_does_not_make_a_feature_variable():
    counts, _ = _counts()
    variance = pearson_residual_variance(counts)
    assert variance[6:].max() < 1.5 < variance[:6].min()  # Poisson noise: residual variance ≈ 1


def test_features_never_seen_have_zero_variance():
    counts, _ = _counts()
    dense = counts.toarray()
    dense[:, 3] = 0
    assert pearson_residual_variance(sp.csr_matrix(dense))[3] == 0.0


def test_a_list_or_a_file_of_names(tmp_path):
    counts, names = _counts()
    np.testing.assert_array_equal(select_features(counts, names, "list", keep=["g9", "g2"]), [2, 9])
    listed = tmp_path / "genes.txt"
    listed.write_text("g4\n\ng1\n")
    np.testing.assert_array_equal(select_features(counts, names, "list", keep=str(listed)), [1, 4])
    np.testing.assert_array_equal(select_features(counts, names, "all"), np.arange(20))


def test_names_that_are_not_in_the_data_are_reported(tmp_path):
    counts, names = _counts()
    with pytest.raises(SoScopeInputError, match=r"genes\.keep: 2 listed features.*'CD99'"):
        select_features(counts, names, "list", keep=["g1", "CD99", "XIST"])
    with pytest.raises(SoScopeInputError, match="missing.txt: feature list not found"):
        select_features(counts, names, "list", keep=str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="unknown feature selection"):
        select_features(counts, names, "pca")
