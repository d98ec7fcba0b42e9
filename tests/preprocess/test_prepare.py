"""Raw inputs to a dataset AnnData in one call, the same as `soscope-preprocess` writes."""

import anndata as ad
import numpy as np
import pytest

import soscope
from soscope.data.dataset_h5ad import SUBSPOTS, read_dataset_h5ad
from soscope.datasets.spaceranger import example_visium
from soscope.errors import SoScopeInputError
from tests.preprocess.fakes import write_anndata

OPTIONS = {"features": "handcrafted", "genes": {"method": "all"}}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SOSCOPE_CACHE", str(tmp_path / "cache"))


def test_read_visium_matches_the_command(tmp_path, cache, run_command):
    outs = example_visium(tmp_path / "raw", n_rows=5, n_cols=5)
    adata = soscope.read_visium(outs, **OPTIONS)
    assert SUBSPOTS in adata.uns and "counts" in adata.layers and "spatial" in adata.uns
    assert adata.n_obs == 5 * 5 - 1  # the example's last spot lies outside the tissue
    overrides = [f"input.path={outs}", f"out={tmp_path / 'out'}", "features=handcrafted"]
    assert run_command([*overrides, "genes.method=all"]) == 0
    written = read_dataset_h5ad(tmp_path / "out" / "dataset.h5ad")
    np.testing.assert_allclose(adata.X, written.graph.x.numpy())
    np.testing.assert_allclose(adata.uns[SUBSPOTS]["features"], written.graph.sub_feat.numpy())


def test_read_anndata_takes_an_object_or_a_file(tmp_path, cache, visium_tissue):
    path = write_anndata(tmp_path / "section.h5ad", visium_tissue)
    from_file = soscope.read_anndata(path, **OPTIONS)
    from_object = soscope.read_anndata(ad.read_h5ad(path), "layout=visium7", **OPTIONS)
    np.testing.assert_array_equal(from_file.X, from_object.X)
    assert from_file.n_obs == len(visium_tissue.spot_pos) - 1


def test_bad_options_name_the_input(tmp_path, cache):
    with pytest.raises(SoScopeInputError, match="nothing: Space Ranger output folder not found"):
        soscope.read_visium(tmp_path / "nothing", **OPTIONS)
