"""A run's outputs as users take them: the .h5ad in scanpy and squidpy, the figures, summary.md."""

import json
from pathlib import Path

import anndata as ad
import matplotlib
import numpy as np
import pytest
import spatialdata as sd
from scipy import sparse

from soscope.config import load_config
from soscope.data.anndata_io import enhanced_anndata
from soscope.datasets import make_synthetic_tissue
from soscope.evaluate.baselines import BASELINES
from soscope.evaluate.metrics import median_spacing
from soscope.job import run
from soscope.pipeline import subspot_library, write_outputs

matplotlib.use("Agg")
TINY = ["data.n_rows=5", "data.n_cols=5", "model.z_dim=16", "model.hidden=32"]
N_SUBSPOTS = 5 * 5 * 7


def config(out_dir: Path, *overrides: str):
    return load_config(*TINY, "trainer.enable_progress_bar=false", *overrides, output_dir=out_dir)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("run")
    run(config(out_dir, "epochs.vgae=3", "epochs.soscope=3", "infer_subspot_npy=true"))
    return out_dir


@pytest.fixture(scope="module")
def enhanced(run_dir):
    return ad.read_h5ad(run_dir / "enhanced.h5ad")


def test_the_h5ad_is_in_the_scanpy_squidpy_spatial_layout(run_dir, enhanced):
    tissue = make_synthetic_tissue(n_rows=5, n_cols=5, seed=0)
    assert enhanced.shape == (N_SUBSPOTS, 9) and enhanced.X.dtype == np.float32
    np.testing.assert_array_equal(enhanced.X, np.load(run_dir / "infer_subspot.npy"))
    np.testing.assert_allclose(enhanced.obsm["spatial"], tissue.sub_pos, rtol=1e-6)
    assert list(enhanced.obs["subspot"][:8]) == [0, 1, 2, 3, 4, 5, 6, 0]
    np.testing.assert_allclose(enhanced.layers["truth"], tissue.truth)
    # X in the input's units: a spot's subspots add up to its measured counts.
    totals = enhanced.to_df().groupby(enhanced.obs["spot"], observed=True).sum().to_numpy()
    np.testing.assert_allclose(totals, tissue.graph.x.numpy() * 7, rtol=1e-4, atol=1e-3)
    (library,) = enhanced.uns["spatial"].values()
    assert library["images"]["hires"].shape == tissue.image.shape
    assert library["scalefactors"]["tissue_hires_scalef"] == 1.0
    assert library["scalefactors"]["spot_diameter_fullres"] == pytest.approx(tissue.sub_diameter)
    assert enhanced.uns["soscope"]["config"]["likelihood"]["name"] == "nb"
    assert set(enhanced.uns["soscope"]["versions"]) >= {"soscope", "torch", "anndata"}


def test_scanpy_clusters_the_output_unchanged(enhanced):
    import scanpy as sc

    adata = enhanced.copy()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=5)
    sc.pp.neighbors(adata, n_neighbors=10, method="gauss")  # umap's method compiles for seconds
    sc.tl.leiden(adata, flavor="igraph", n_iterations=2, directed=False)
    assert adata.obs["leiden"].nunique() > 1


def test_squidpy_draws_the_output_over_its_image(enhanced, tmp_path):
    import matplotlib.pyplot as plt
    import squidpy as sq

    sq.pl.spatial_scatter(enhanced, color=enhanced.var_names[0])
    (axis,) = [a for a in plt.gcf().axes if a.get_title() == enhanced.var_names[0]]
    assert axis.images, "the H&E image is drawn under the subspots"
    plt.savefig(tmp_path / "scatter.png")
    plt.close("all")


def test_the_run_folder_holds_figures_and_a_summary(run_dir):
    for name in ("enhanced.png", "vgae.png", "loss_curves.png", "evaluation.png"):
        assert (run_dir / name).stat().st_size > 10_000, name
    summary = (run_dir / "summary.md").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"25 spots, {N_SUBSPOTS} subspots (7 per spot), 9 features" in summary
    assert f"| soscope | {metrics['soscope']['median_pearson']:.4f} |" in summary
    for method in BASELINES:
        assert f"| {method} |" in summary
    for name in ("enhanced.h5ad", "enhanced.zarr/", "infer_subspot.npy", "checkpoints/"):
        assert f"`{name}`" in summary
    assert "`likelihood.name=nb`" in summary and "`epochs.soscope=3`" in summary


def test_the_run_folder_holds_the_subspots_as_spatialdata(run_dir, enhanced):
    sdata = sd.read_zarr(run_dir / "enhanced.zarr")
    assert len(sdata.shapes["subspots"]) == N_SUBSPOTS
    np.testing.assert_array_equal(sdata.tables["table"].X, enhanced.X)
    assert "image" in sdata.images


def test_sparse_outputs_hold_the_same_values_through_every_writer(tmp_path, run_dir, enhanced):
    run(config(tmp_path, "epochs.vgae=3", "epochs.soscope=3", "sparse_output=true"))
    back = ad.read_h5ad(tmp_path / "enhanced.h5ad")
    for name, values in [("X", back.X), ("sd", back.layers["sd"])]:
        assert isinstance(values, sparse.csr_matrix) and values.dtype == np.float32, name
    assert isinstance(back.layers["truth"], np.ndarray)  # given dense, kept dense
    np.testing.assert_allclose(back.X.toarray(), enhanced.X, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(back.layers["sd"].toarray(), enhanced.layers["sd"], rtol=1e-5)
    table = sd.read_zarr(tmp_path / "enhanced.zarr").tables["table"]
    np.testing.assert_array_equal(sparse.csr_matrix(table.X).toarray(), back.X.toarray())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    expected = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["soscope"] == pytest.approx(expected["soscope"], rel=1e-4, abs=1e-6)
    assert (tmp_path / "enhanced.png").stat().st_size > 10_000


def test_the_outputs_hold_the_anndata_given(tmp_path):
    tissue = make_synthetic_tissue(n_rows=3, n_cols=3, seed=1)
    section = tissue.to_section()
    values = np.abs(tissue.truth) + 1
    layers = {"sd": np.sqrt(values), "mean_unclipped": values - 2}
    adata = enhanced_anndata(values, section.graph, layers=layers)
    write_outputs(adata, {"objective": None}, tmp_path, infer_subspot_npy=True)
    back = ad.read_h5ad(tmp_path / "enhanced.h5ad")
    assert set(back.layers) == {"sd", "mean_unclipped"}
    np.testing.assert_allclose(back.layers["sd"], layers["sd"], rtol=1e-6)
    np.testing.assert_allclose(back.layers["mean_unclipped"], values - 2, rtol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "infer_subspot.npy"), values, rtol=1e-6)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"objective": None}


def test_the_input_library_is_carried_over_with_the_subspot_diameter():
    section = make_synthetic_tissue(n_rows=3, n_cols=3, seed=0).to_section()
    section.meta = {
        "spatial": {"V1": {"images": {}, "scalefactors": {"spot_diameter_fullres": 42}}}
    }
    (library,) = subspot_library(section).values()
    spacing = median_spacing(section.graph.sub_pos.numpy())
    assert library["scalefactors"]["spot_diameter_fullres"] == pytest.approx(spacing)
    assert section.meta["spatial"]["V1"]["scalefactors"]["spot_diameter_fullres"] == 42
