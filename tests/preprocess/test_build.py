"""Raw inputs → dataset folder → training, end to end, through the command's configuration."""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_module

from soscope.config import CONF_MODULE
from soscope.data.dataset_h5ad import read_dataset_h5ad
from soscope.data.graph import VISIUM_OFFSETS, lattice_edges
from soscope.data.reference_io import read_reference_dir
from soscope.datasets.spaceranger import HIRES_SCALE, tissue_counts, write_spaceranger
from soscope.job import run
from soscope.preprocess.cli import preprocess
from soscope.preprocess.layouts import cells_in_spots
from tests.preprocess.fakes import hires, write_anndata

ROOT = Path(__file__).resolve().parents[2]
N_KEPT = 35  # the fakes mark the last of 36 spots outside the tissue


def train_a_few_steps(dataset: Path, out: Path) -> np.ndarray:
    """Both stages for two epochs on a dataset `.h5ad`; returns the enhanced profiles."""
    overrides = [
        "data=anndata",
        f"data.path={dataset}",
        "likelihood=nb",
        "epochs.vgae=2",
        "epochs.soscope=2",
        "model.z_dim=16",
        "model.hidden=32",
        "logger=none",
        "callbacks=none",
        "trainer.enable_progress_bar=false",
        f"paths.output_dir={out}",
    ]
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        run(compose("config", overrides=overrides))
    return ad.read_h5ad(out / "enhanced.h5ad").X


def rule_weights(features: np.ndarray, edges: np.ndarray, scale: float = 2.0) -> np.ndarray:
    """The edge-weight rule computed directly: exp((λ − d)/δ), δ = (median − λ)/ln(scale)."""
    d = np.array([np.linalg.norm(features[i] - features[j]) for i, j in edges])
    lam = d.min()
    return np.exp((lam - d) / ((np.median(d) - lam) / np.log(scale)))


def test_space_ranger_folder_to_a_trained_model(tmp_path, visium_tissue, preprocess_config):
    outs = write_spaceranger(tmp_path / "raw", visium_tissue)
    out = tmp_path / "section"
    built, seconds = preprocess(
        preprocess_config(
            f"input.path={outs}", f"out={out}", "features=handcrafted", "genes.n_top=8"
        )
    )
    assert {"read", "select features", "layout", "image features", "graphs", "write"} <= set(
        seconds
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "adj.npy",
        "dataset.h5ad",
        "feature_names.txt",
        "label.npy",
        "positions.csv",
        "sub_adj.npy",
        "sub_positions.csv",
        "summary.json",
        "support_feature.npy",
    ]
    graph = read_reference_dir(out, likelihood="nb")
    section = read_dataset_h5ad(out / "dataset.h5ad", likelihood="nb")
    assert graph.num_spots == section.graph.num_spots == N_KEPT
    assert graph.num_subspots == N_KEPT * 7 and graph.sub_feat.shape[1] == 38
    assert len(section.feature_names) == 8 and section.spot_names[0].endswith("0000-1")
    torch.testing.assert_close(graph.x, section.graph.x)

    genes = [visium_tissue.feature_names.index(name) for name in section.feature_names]
    counts = tissue_counts(visium_tissue)[:N_KEPT][:, genes]
    np.testing.assert_allclose(graph.x.numpy() * 7, counts, rtol=1e-6)
    np.testing.assert_allclose(built.counts, counts)
    np.testing.assert_allclose(graph.pos.numpy(), np.rint(visium_tissue.spot_pos[:N_KEPT]))
    ring = graph.sub_pos.numpy().reshape(N_KEPT, 7, 2) - graph.pos.numpy()[:, None]
    np.testing.assert_allclose(
        np.linalg.norm(ring[:, 1:], axis=-1), visium_tissue.spot_diameter / 3, rtol=1e-3
    )

    adjacency = np.load(out / "adj.npy")
    expected = lattice_edges(visium_tissue.array_coords[:N_KEPT], VISIUM_OFFSETS)
    assert {tuple(e) for e in adjacency[:, :2].astype(int)} == {tuple(e) for e in expected.T}
    x = np.load(out / "label.npy")
    np.testing.assert_allclose(
        adjacency[:, 2], rule_weights(x, adjacency[:, :2].astype(int)), rtol=1e-5
    )
    sub_adj = np.load(out / "sub_adj.npy")
    features = np.load(out / "support_feature.npy")
    np.testing.assert_allclose(
        sub_adj[:, 2], rule_weights(features, sub_adj[:, :2].astype(int)), rtol=1e-4
    )
    meta = section.meta
    assert meta["layout"] == "visium7" and meta["image_scale"] == 0.5
    assert meta["image"].endswith("tissue_hires_image.png")

    enhanced = train_a_few_steps(out / "dataset.h5ad", tmp_path / "run")
    assert enhanced.shape == (N_KEPT * 7, 8) and np.isfinite(enhanced).all()


def test_no_header_and_full_resolution_image_give_the_same_spots(
    tmp_path, visium_tissue, preprocess_config
):
    outs = write_spaceranger(tmp_path / "raw", visium_tissue, header=False)
    common = [f"input.path={outs}", "features=handcrafted", "genes.method=all"]
    hires, _ = preprocess(preprocess_config(*common, f"out={tmp_path / 'hires'}"))
    fullres, _ = preprocess(
        preprocess_config(
            *common, f"input.image={tmp_path / 'raw' / 'fullres.png'}", f"out={tmp_path / 'full'}"
        )
    )
    a, b = hires.section.graph, fullres.section.graph
    torch.testing.assert_close(a.sub_pos, b.sub_pos)
    torch.testing.assert_close(a.x, b.x)
    assert hires.summary["patch_size"] == 7 and fullres.summary["patch_size"] == 14
    # the same tissue seen at two resolutions: features agree far better than chance
    agreement = np.corrcoef(a.sub_feat.numpy().ravel(), b.sub_feat.numpy().ravel())[0, 1]
    assert agreement > 0.6


def test_anndata_to_a_trained_model(tmp_path, visium_tissue, preprocess_config):
    path = write_anndata(tmp_path / "section.h5ad", visium_tissue)
    out = tmp_path / "dataset"
    built, _ = preprocess(
        preprocess_config(
            "input=anndata",
            f"input.path={path}",
            f"out={out}",
            "features=handcrafted",
            "genes.n_top=6",
        )
    )
    assert built.summary["spots"] == N_KEPT and built.summary["spots_outside_tissue"] == 1
    enhanced = train_a_few_steps(out / "dataset.h5ad", tmp_path / "run")
    assert enhanced.shape == (N_KEPT * 7, 6) and np.isfinite(enhanced).all()
    # The AnnData's own image library travels on, scale factors and all.
    for written in (out / "dataset.h5ad", tmp_path / "run" / "enhanced.h5ad"):
        library = ad.read_h5ad(written).uns["spatial"]["section1"]
        assert library["images"]["hires"].shape[:2] == hires(visium_tissue.image).shape[:2]
        assert library["scalefactors"]["tissue_hires_scalef"] == HIRES_SCALE


def test_bayesspace_six_and_given_cells(tmp_path, visium_tissue, preprocess_config):
    outs = write_spaceranger(tmp_path / "raw", visium_tissue)
    common = [f"input.path={outs}", "features=none", "genes.method=all"]
    six, _ = preprocess(preprocess_config(*common, "layout=bayesspace6", f"out={tmp_path / 'six'}"))
    assert six.summary["subspots"] == N_KEPT * 6 and six.summary["subspots_per_spot"] == 6

    centres = np.rint(visium_tissue.spot_pos)  # as Space Ranger writes them
    cells = cells_in_spots(centres, visium_tissue.spot_diameter, np.random.default_rng(0))
    stray = visium_tissue.spot_pos[:4] + visium_tissue.spot_diameter  # between spots: no spot
    xy = np.vstack([cells.sub_pos, stray])
    pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]}).to_csv(tmp_path / "cells.csv", index=False)
    out = tmp_path / "cells"
    built, _ = preprocess(
        preprocess_config(
            *common, "layout=cells", f"layout.cells={tmp_path / 'cells.csv'}", f"out={out}"
        )
    )
    assert sorted(p.name for p in out.iterdir()) == ["dataset.h5ad", "summary.json"]
    section = read_dataset_h5ad(out / "dataset.h5ad", likelihood="nb")
    per_spot = np.bincount(cells.sub_to_spot)[:N_KEPT]
    np.testing.assert_array_equal(np.bincount(section.graph.sub_to_spot.numpy()), per_spot)
    np.testing.assert_allclose(
        section.graph.x.numpy() * per_spot[:, None],
        tissue_counts(visium_tissue)[:N_KEPT],
        rtol=1e-6,
    )
    assert built.summary["subspots_per_spot"] == 0

    np.save(tmp_path / "per_cell.npy", xy)  # features computed elsewhere, one row per given cell
    given, _ = preprocess(
        preprocess_config(
            *common,
            "layout=cells",
            f"layout.cells={tmp_path / 'cells.csv'}",
            "features=precomputed",
            f"features.path={tmp_path / 'per_cell.npy'}",
            "standardize_features=false",
            f"out={tmp_path / 'given'}",
        )
    )
    torch.testing.assert_close(given.section.graph.sub_feat, given.section.graph.sub_pos)


def test_a_rerun_takes_image_features_from_the_cache(tmp_path, visium_tissue, preprocess_config):
    outs = write_spaceranger(tmp_path / "raw", visium_tissue)
    common = [f"input.path={outs}", "features=handcrafted", "genes.n_top=4"]
    first, _ = preprocess(preprocess_config(*common, f"out={tmp_path / 'a'}"))
    again, _ = preprocess(preprocess_config(*common, f"out={tmp_path / 'a'}", "overwrite=true"))
    assert not first.summary["image_features_cached"] and again.summary["image_features_cached"]
    torch.testing.assert_close(first.section.graph.sub_feat, again.section.graph.sub_feat)


@pytest.mark.parametrize("layout", ["grid", "bayesspace9"])
def test_square_layouts_need_a_square_lattice(tmp_path, visium_tissue, preprocess_config, layout):
    from soscope.errors import SoScopeInputError

    outs = write_spaceranger(tmp_path / "raw", visium_tissue)
    cfg = preprocess_config(
        f"input.path={outs}", "features=none", f"layout={layout}", f"out={tmp_path / 'o'}"
    )
    with pytest.raises(SoScopeInputError, match="no two spots are neighbours on the grid lattice"):
        preprocess(cfg)
    assert not (tmp_path / "o").exists()


def test_without_array_coordinates_the_nearest_spots_are_neighbours(
    tmp_path, visium_tissue, preprocess_config
):
    import anndata as ad

    path = write_anndata(tmp_path / "section.h5ad", visium_tissue)
    adata = ad.read_h5ad(path)
    del adata.obs["array_row"], adata.obs["array_col"]
    adata.write_h5ad(path)
    built, _ = preprocess(
        preprocess_config(
            "input=anndata", f"input.path={path}", "features=none", f"out={tmp_path / 'o'}"
        )
    )
    assert built.summary["spot_graph"] == "6 nearest neighbours"
    src, dst = built.section.graph.edge_index.numpy()
    expected = lattice_edges(visium_tissue.array_coords[:N_KEPT], VISIUM_OFFSETS)
    found = {(i, j) for i, j in zip(src, dst, strict=True) if i != j}
    assert set(map(tuple, expected.T)) <= found  # every lattice neighbour is among the nearest
    assert np.bincount(src[src != dst]).min() >= 6  # and border spots reach further


def test_features_from_a_named_timm_model_and_its_local_weights(
    tmp_path, visium_tissue, preprocess_config
):
    timm = pytest.importorskip("timm")
    network = timm.create_model("test_vit", pretrained=False, num_classes=0)
    torch.save(network.state_dict(), tmp_path / "vit.pth")
    outs = write_spaceranger(tmp_path / "raw", visium_tissue)
    preprocess(
        preprocess_config(
            f"input.path={outs}",
            f"out={tmp_path / 'section'}",
            "features=timm",
            "features.model=test_vit",
            f"features.weights={tmp_path / 'vit.pth'}",
            "features.device=cpu",
            "standardize_features=false",
            "genes.n_top=8",
        )
    )
    section = read_dataset_h5ad(tmp_path / "section" / "dataset.h5ad", likelihood="nb")
    assert section.graph.sub_feat.shape == (N_KEPT * 7, network.num_features)
    assert section.graph.sub_feat.std(0).min() > 0  # every column varies over the patches
