"""`soscope.SoScope`: set up from a dataset AnnData or SpatialData, fit, enhance, save, load."""

import numpy as np
import pytest
import torch
from scipy import sparse

import soscope
from soscope.data.dataset_h5ad import dataset_anndata
from soscope.data.spatialdata_io import enhanced_spatialdata
from soscope.datasets import make_synthetic_tissue
from soscope.errors import SoScopeInputError
from soscope.models.aggregation import aggregate

TINY = {
    "model": {"z_dim": 8, "hidden": 16},
    "trainer": {"enable_progress_bar": False},
    "logger": "none",
    "callbacks": "none",
    "predictive_sd_samples": 4,
}


@pytest.fixture(scope="module")
def dataset():
    """A 4 × 4 Visium tissue (112 subspots, 9 NB genes) as a dataset AnnData."""
    return dataset_anndata(make_synthetic_tissue(n_rows=4, n_cols=4, seed=3).to_section())


@pytest.fixture(scope="module")
def trained(dataset):
    model = soscope.SoScope(dataset, likelihood="nb", device="cpu", **TINY)
    return model.fit(epochs={"vgae": 2, "soscope": 2})


def test_enhance_gives_the_subspots_as_anndata(trained, dataset):
    enhanced = trained.enhance()
    graph = trained.section.graph
    assert enhanced.shape == (graph.num_subspots, dataset.n_vars)
    assert list(enhanced.var_names) == list(dataset.var_names)
    assert set(enhanced.layers) == {"sd", "truth"}
    assert enhanced.obsm["spatial"].shape == (graph.num_subspots, 2)
    assert "spatial" in enhanced.uns
    # consistency=rescale (the default): each spot's subspots add up to its observed total
    totals = aggregate(torch.from_numpy(enhanced.X), graph.sub_to_spot, graph.num_spots)
    k = torch.bincount(graph.sub_to_spot).unsqueeze(-1)
    torch.testing.assert_close(totals, graph.x * k, rtol=1e-4, atol=1e-3)


def test_enhance_takes_output_options_for_one_call(trained):
    enhanced = trained.enhance(
        predictive_sd_samples=0, consistency="none", mean_unclipped_layer=True
    )
    assert set(enhanced.layers) == {"mean_unclipped", "truth"}
    assert trained.cfg.consistency == "rescale"
    with pytest.raises(SoScopeInputError, match="unknown options"):
        trained.enhance(epochs=3)


def test_enhance_stores_csr_matrices_on_request(trained):
    as_dense, found = trained.enhance(sparse_output=False), trained.enhance(sparse_output=True)
    for name in ("X", "sd"):
        values = found.X if name == "X" else found.layers[name]
        assert sparse.isspmatrix_csr(values) and values.dtype == np.float32
        expected = as_dense.X if name == "X" else as_dense.layers[name]
        np.testing.assert_array_equal(values.toarray(), expected)
    assert isinstance(trained.enhance().X, np.ndarray)  # auto: these counts are rarely zero
    with pytest.raises(SoScopeInputError, match="sparse_output"):
        trained.enhance(sparse_output="yes")


def test_fit_records_its_overrides(trained):
    assert "epochs.vgae=2" in trained.overrides
    assert trained.cfg.epochs.vgae == 2 and trained.cfg.trainer.accelerator == "cpu"
    assert "spots" in repr(trained) and "trained" in repr(trained)


def test_save_and_load_give_the_same_enhancement(trained, tmp_path):
    folder = trained.save(tmp_path / "model")
    with pytest.raises(SoScopeInputError, match="already exists"):
        trained.save(folder)
    loaded = soscope.SoScope.load(folder)
    np.testing.assert_allclose(loaded.enhance().X, trained.enhance().X, rtol=1e-5, atol=1e-6)
    assert loaded.cfg.epochs.vgae == 2


def test_load_refuses_a_folder_without_a_model(tmp_path):
    with pytest.raises(SoScopeInputError, match="model.pt"):
        soscope.SoScope.load(tmp_path)


def test_a_model_must_be_trained_first(dataset):
    model = soscope.SoScope(dataset, device="cpu")
    with pytest.raises(SoScopeInputError, match="fit"):
        model.enhance()
    with pytest.raises(SoScopeInputError, match="fit"):
        model.save("never")


def test_counts_are_checked_against_the_likelihood(dataset):
    fractional = dataset.copy()
    fractional.X = fractional.X + 0.3
    with pytest.raises(SoScopeInputError, match="non-integer|whole"):
        soscope.SoScope(fractional, likelihood="nb", device="cpu")
    soscope.SoScope(fractional, likelihood="gaussian", device="cpu")


def test_a_spatialdata_table_or_zarr_store_sets_it_up(dataset, trained, tmp_path):
    sdata = enhanced_spatialdata(trained.enhance())
    with pytest.raises(SoScopeInputError, match="one table holding a soscope dataset"):
        soscope.SoScope(sdata, device="cpu")
    sdata.tables["dataset"] = dataset
    model = soscope.SoScope(sdata, device="cpu")
    assert model.section.graph.num_subspots == trained.section.graph.num_subspots


def test_an_unknown_device_is_refused(dataset):
    with pytest.raises(SoScopeInputError, match="device"):
        soscope.SoScope(dataset, device="tpu")
