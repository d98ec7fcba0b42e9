import numpy as np
import pytest
import torch

from soscope.data.dataset_h5ad import read_dataset_h5ad, write_dataset_h5ad
from soscope.datasets import make_synthetic_tissue
from soscope.errors import SoScopeInputError


def edge_set(index, weight):
    return {(int(i), int(j), round(float(w), 5)) for (i, j), w in zip(index.T, weight, strict=True)}


def test_a_section_round_trips_through_one_h5ad(tmp_path):
    section = make_synthetic_tissue(n_rows=4, n_cols=4, seed=0).to_section()
    write_dataset_h5ad(section, tmp_path / "dataset.h5ad")
    back = read_dataset_h5ad(tmp_path / "dataset.h5ad", likelihood="nb")
    g, h = section.graph, back.graph
    for field in ("x", "sub_feat", "sub_to_spot", "pos", "sub_pos"):
        torch.testing.assert_close(getattr(h, field), getattr(g, field))
    assert edge_set(h.edge_index, h.edge_weight) == edge_set(g.edge_index, g.edge_weight)
    assert edge_set(h.sub_edge_index, h.sub_edge_weight) == edge_set(
        g.sub_edge_index, g.sub_edge_weight
    )
    np.testing.assert_allclose(back.truth, section.truth)
    assert back.feature_names == section.feature_names


def test_bad_dataset_files_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(SoScopeInputError, match="missing.h5ad: file not found"):
        read_dataset_h5ad(tmp_path / "missing.h5ad")
    (tmp_path / "junk.h5ad").write_bytes(b"not hdf5")
    with pytest.raises(SoScopeInputError, match="junk.h5ad: cannot be read"):
        read_dataset_h5ad(tmp_path / "junk.h5ad")
    section = make_synthetic_tissue(n_rows=3, n_cols=3, seed=0).to_section()
    section.graph = section.graph.clone()
    section.graph.x = section.graph.x + 0.3  # totals no longer integers
    write_dataset_h5ad(section, tmp_path / "fractional.h5ad")
    with pytest.raises(SoScopeInputError, match="fractional.h5ad.*non-integer"):
        read_dataset_h5ad(tmp_path / "fractional.h5ad", likelihood="nb")
    read_dataset_h5ad(tmp_path / "fractional.h5ad", likelihood="gaussian")


def test_uns_spatial_travels_through_the_dataset_file(tmp_path):
    section = make_synthetic_tissue(n_rows=3, n_cols=3, seed=0).to_section()
    library = {"images": {"hires": np.zeros((4, 5, 3), np.uint8)}, "scalefactors": {"x": 0.5}}
    section.meta["spatial"] = {"V1_skin": library}
    write_dataset_h5ad(section, tmp_path / "dataset.h5ad")
    back = read_dataset_h5ad(tmp_path / "dataset.h5ad").meta["spatial"]
    assert list(back) == ["V1_skin"] and back["V1_skin"]["scalefactors"]["x"] == 0.5
    assert back["V1_skin"]["images"]["hires"].shape == (4, 5, 3)
