"""The AnnData output: what lands in obs, obsm, var, uns and layers, and that it writes as h5ad."""

from importlib.metadata import version
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch

from soscope.data.anndata_io import (
    VERSIONED,
    enhanced_anndata,
    index_within_spot,
    package_versions,
    plain,
    spatial_library,
    write_h5ad_atomic,
)
from soscope.data.sample import fixed_layout, make_spot_graph


def tiny_graph(sub_to_spot, with_positions=True):
    n_spots, n_sub = int(max(sub_to_spot)) + 1, len(sub_to_spot)
    loops = torch.arange(n_spots).repeat(2, 1)
    sub_loops = torch.arange(n_sub).repeat(2, 1)
    extra = {"sub_pos": torch.arange(2.0 * n_sub).reshape(n_sub, 2)} if with_positions else {}
    return make_spot_graph(
        torch.ones(n_spots, 3),
        loops,
        torch.ones(n_spots),
        torch.zeros(n_sub, 4),
        sub_loops,
        torch.ones(n_sub),
        torch.as_tensor(sub_to_spot),
        **extra,
    )


CONFIG = {
    "likelihood": {"name": "nb", "protein_dim": 0},
    "ckpt_path": None,
    "epochs": (10, 20),
    "callbacks": [{"_target_": "a.B", "every": 5}, {"_target_": "c.D"}],
    "ragged": [[1, 2], [3]],
    "flag": True,
}


def test_obs_var_obsm_uns_and_layers():
    graph = tiny_graph(fixed_layout(2, 3))
    profiles = np.arange(18, dtype=np.float64).reshape(6, 3)
    truth = profiles + 1
    adata = enhanced_anndata(
        profiles,
        graph,
        feature_names=["CD3E", "MS4A1", "EPCAM"],
        spot_names=["AAAC-1", "AAAG-1"],
        config=CONFIG,
        layers={"truth": truth},
    )
    assert adata.shape == (6, 3) and adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.X, profiles)
    assert list(adata.var_names) == ["CD3E", "MS4A1", "EPCAM"]
    assert adata.obs["spot"].dtype == "category"
    assert list(adata.obs["spot"]) == ["AAAC-1"] * 3 + ["AAAG-1"] * 3
    assert list(adata.obs["subspot"]) == [0, 1, 2, 0, 1, 2]
    assert adata.obs_names.is_unique
    np.testing.assert_array_equal(adata.obsm["spatial"], graph.sub_pos.numpy())
    np.testing.assert_array_equal(adata.layers["truth"], truth)
    uns = adata.uns["soscope"]["config"]
    assert uns["likelihood"] == {"name": "nb", "protein_dim": 0}
    assert uns["ckpt_path"] == "None" and uns["epochs"] == [10, 20] and uns["flag"] is True
    assert uns["callbacks"] == {"0": {"_target_": "a.B", "every": 5}, "1": {"_target_": "c.D"}}


def test_defaults_and_no_positions():
    adata = enhanced_anndata(np.zeros((4, 3)), tiny_graph([0, 0, 1, 1], with_positions=False))
    assert list(adata.var_names) == ["f0", "f1", "f2"]
    assert list(adata.obs["spot"].cat.categories) == ["spot_0", "spot_1"]
    assert "spatial" not in adata.obsm and adata.uns["soscope"]["config"] == {}
    assert "spatial" not in adata.uns


@pytest.mark.parametrize(
    "sub_to_spot, subspot",
    [
        ([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1]),
        ([0, 0, 1, 2, 2, 2], [0, 1, 0, 0, 1, 2]),
        ([2, 1, 2, 0, 0, 2], [0, 0, 1, 0, 1, 2]),
    ],
    ids=["fixed", "variable", "unsorted"],
)
def test_obs_spot_and_subspot_for_any_layout(sub_to_spot, subspot):
    graph = tiny_graph(sub_to_spot)
    adata = enhanced_anndata(np.zeros((6, 3)), graph)
    assert list(adata.obs["spot"]) == [f"spot_{i}" for i in sub_to_spot]
    assert list(adata.obs["spot"].cat.categories) == ["spot_0", "spot_1", "spot_2"]
    assert list(adata.obs["subspot"]) == subspot
    assert adata.obs_names.is_unique
    np.testing.assert_array_equal(adata.obsm["spatial"], graph.sub_pos.numpy())


def test_variable_subspots_per_spot_in_any_order():
    sub_to_spot = np.array([2, 0, 0, 1, 2, 0, 2, 2])
    np.testing.assert_array_equal(index_within_spot(sub_to_spot), [0, 0, 1, 0, 1, 2, 2, 3])
    adata = enhanced_anndata(np.ones((8, 3)), tiny_graph(sub_to_spot))
    assert list(adata.obs["spot"]) == [f"spot_{i}" for i in sub_to_spot]
    assert adata.obs.groupby("spot", observed=True).size().tolist() == [3, 1, 4]


def test_mismatched_lengths_are_refused():
    graph = tiny_graph(fixed_layout(2, 2))
    with pytest.raises(ValueError, match="profile rows"):
        enhanced_anndata(np.zeros((3, 3)), graph)
    with pytest.raises(ValueError, match="feature names"):
        enhanced_anndata(np.zeros((4, 3)), graph, feature_names=["a"])
    with pytest.raises(ValueError, match="spot names"):
        enhanced_anndata(np.zeros((4, 3)), graph, spot_names=["a", "b", "c"])


def test_layers_must_have_a_row_per_subspot():
    with pytest.raises(ValueError, match="rows of layer 'sd'"):
        enhanced_anndata(np.zeros((4, 3)), tiny_graph([0, 0, 1, 1]), layers={"sd": np.ones((3, 3))})


def test_versions_name_python_and_the_main_packages():
    versions = package_versions()
    assert set(versions) == {"python", *VERSIONED}
    assert versions["numpy"] == np.__version__


def test_spatial_library_from_an_image_is_in_the_full_resolution_frame():
    image = np.zeros((30, 40, 3), dtype=np.uint8)
    libraries = spatial_library(7.5, image=image, library_id="tissue")
    assert list(libraries) == ["tissue"]
    assert libraries["tissue"]["images"]["hires"] is not None
    assert libraries["tissue"]["scalefactors"] == {
        "tissue_hires_scalef": 1.0,
        "spot_diameter_fullres": 7.5,
    }


def test_spatial_library_carries_the_input_over_with_the_subspot_diameter():
    carried = {
        "V1": {
            "images": {"lowres": np.ones((5, 5, 3))},
            "scalefactors": {"tissue_lowres_scalef": 0.05, "spot_diameter_fullres": 89.4},
        }
    }
    libraries = spatial_library(30.0, carried=carried, image=np.zeros((2, 2, 3)))
    assert list(libraries) == ["V1"] and list(libraries["V1"]["images"]) == ["lowres"]
    assert libraries["V1"]["scalefactors"] == {
        "tissue_lowres_scalef": 0.05,
        "spot_diameter_fullres": 30.0,
    }
    assert carried["V1"]["scalefactors"]["spot_diameter_fullres"] == 89.4  # input untouched


def test_plain_keeps_scalars_and_arrays_and_stringifies_the_rest():
    array = np.arange(3)
    converted = plain({"a": np.float32(1.5), "b": array, "c": ("x", None), 4: Path("/data/x")})
    assert converted["a"] == np.float32(1.5) and converted["b"] is array
    assert converted["c"] == ["x", "None"] and converted["4"] == "/data/x"


def test_h5ad_round_trip(tmp_path):
    graph = tiny_graph([0, 1, 1, 2, 2, 2])
    adata = enhanced_anndata(
        np.random.default_rng(0).random((6, 3)),
        graph,
        config=CONFIG,
        layers={"raw": np.ones((6, 3), dtype=np.int32)},
    )
    path = tmp_path / "out" / "enhanced.h5ad"
    write_h5ad_atomic(adata, path)
    assert [p.name for p in path.parent.iterdir()] == ["enhanced.h5ad"]
    back = ad.read_h5ad(path)
    np.testing.assert_array_equal(back.X, adata.X)
    assert list(back.obs["spot"]) == list(adata.obs["spot"])
    assert list(back.obs["subspot"]) == [0, 0, 1, 0, 1, 2]
    np.testing.assert_array_equal(back.obsm["spatial"], adata.obsm["spatial"])
    assert back.layers["raw"].dtype == np.int32
    assert list(back.var_names) == ["f0", "f1", "f2"]
    assert back.uns["soscope"]["versions"]["anndata"] == version("anndata")
    uns = back.uns["soscope"]["config"]
    assert uns["likelihood"]["name"] == "nb" and uns["likelihood"]["protein_dim"] == 0
    assert uns["ckpt_path"] == "None" and list(uns["epochs"]) == [10, 20]
    assert uns["callbacks"]["0"]["_target_"] == "a.B" and uns["callbacks"]["0"]["every"] == 5
    assert uns["ragged"]["1"].tolist() == [3] and bool(uns["flag"]) is True


def test_failed_h5ad_write_leaves_no_file(tmp_path, monkeypatch):
    adata = enhanced_anndata(np.ones((4, 3)), tiny_graph([0, 0, 1, 1]))

    def write_half(self, path, *args, **kwargs):
        Path(path).write_bytes(b"half an h5ad")
        raise OSError("disk full")

    monkeypatch.setattr(ad.AnnData, "write_h5ad", write_half)
    with pytest.raises(OSError, match="disk full"):
        write_h5ad_atomic(adata, tmp_path / "enhanced.h5ad")
    assert list(tmp_path.iterdir()) == []
