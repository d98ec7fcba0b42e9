"""The three readers: Space Ranger folders, AnnData files and CSV pairs give the same spots."""

import numpy as np
import pandas as pd
import pytest

from soscope.datasets import make_synthetic_tissue
from soscope.datasets.spaceranger import (
    HIRES_SCALE,
    LOWRES_SCALE,
    positions_table,
    save_png,
    tissue_counts,
    write_spaceranger,
)
from soscope.errors import SoScopeInputError
from soscope.preprocess.readers import read_anndata, read_csv_pair, read_spaceranger
from tests.preprocess.fakes import hires, write_anndata, write_csv_pair


def expected_spots(tissue):
    """Everything but the last spot, which the fakes mark outside the tissue."""
    table = positions_table(tissue).iloc[: len(tissue.spot_pos) - 1]
    xy = table[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(float)
    return list(table.barcode), xy, tissue_counts(tissue)[:-1]


@pytest.mark.parametrize("header", [True, False])
def test_space_ranger_folder_with_and_without_header(tmp_path, visium_tissue, header):
    outs = write_spaceranger(tmp_path, visium_tissue, header=header)
    raw = read_spaceranger(outs)
    codes, xy, counts = expected_spots(visium_tissue)
    assert raw.barcodes == codes and raw.dropped_outside_tissue == 1
    np.testing.assert_array_equal(raw.spot_pos, xy)
    np.testing.assert_array_equal(raw.counts.toarray(), counts)
    assert raw.feature_names == visium_tissue.feature_names  # the antibody feature is left out
    np.testing.assert_array_equal(raw.array_coords, visium_tissue.array_coords[:-1])
    assert raw.spot_diameter == visium_tissue.spot_diameter
    assert raw.image.scale == HIRES_SCALE and raw.image.source.endswith("tissue_hires_image.png")
    assert "full-resolution" in raw.frame
    positions = "tissue_positions.csv" if header else "tissue_positions_list.csv"
    assert raw.positions_source.endswith(positions)


def test_the_mtx_folder_reads_as_the_h5_matrix(tmp_path, visium_tissue):
    from_h5 = read_spaceranger(write_spaceranger(tmp_path / "h5", visium_tissue))
    outs = write_spaceranger(tmp_path / "mtx", visium_tissue, matrix="mtx")
    from_mtx = read_spaceranger(outs)
    assert from_mtx.counts_source.endswith("filtered_feature_bc_matrix")
    assert from_mtx.barcodes == from_h5.barcodes
    assert from_mtx.feature_names == from_h5.feature_names == visium_tissue.feature_names
    np.testing.assert_array_equal(from_mtx.counts.toarray(), from_h5.counts.toarray())


def test_without_a_hires_image_the_lowres_one_is_used(tmp_path, visium_tissue):
    raw = read_spaceranger(write_spaceranger(tmp_path, visium_tissue, images=("lowres",)))
    assert raw.image.scale == LOWRES_SCALE and raw.image.source.endswith("lowres_image.png")
    (library,) = raw.spatial.values()
    assert set(library["images"]) == {"lowres"}
    assert library["scalefactors"]["tissue_lowres_scalef"] == LOWRES_SCALE
    assert library["scalefactors"]["spot_diameter_fullres"] == visium_tissue.spot_diameter


def test_both_images_travel_in_the_squidpy_layout(tmp_path, visium_tissue):
    outs = write_spaceranger(tmp_path / "sample1", visium_tissue, images=("hires", "lowres"))
    raw = read_spaceranger(outs)
    assert raw.image.scale == HIRES_SCALE  # features from the better image
    assert list(raw.spatial) == ["sample1"]
    images = raw.spatial["sample1"]["images"]
    assert set(images) == {"hires", "lowres"} and images["hires"].dtype == np.uint8


def test_a_full_resolution_image_keeps_a_hires_sized_copy(tmp_path, visium_tissue):
    outs = write_spaceranger(tmp_path, visium_tissue, images=())
    big = save_png(np.repeat(np.repeat(visium_tissue.image, 4, 0), 4, 1), tmp_path / "big.png")
    raw = read_spaceranger(outs, image=big, image_scale=4.0)
    assert raw.image.scale == 4.0 and max(raw.image.pixels.shape[:2]) > 2000
    (library,) = raw.spatial.values()
    assert max(library["images"]["hires"].shape[:2]) == 2000
    scale = library["scalefactors"]["tissue_hires_scalef"]
    assert scale == pytest.approx(4.0 * 2000 / max(raw.image.pixels.shape[:2]))


def test_visium_hd_bins_with_parquet_positions(tmp_path):
    tissue = make_synthetic_tissue(n_rows=4, n_cols=4, platform="grid", n_features=6, seed=2)
    outs = write_spaceranger(tmp_path, tissue, positions="parquet")
    raw = read_spaceranger(outs)
    assert raw.positions_source.endswith("tissue_positions.parquet")
    np.testing.assert_array_equal(raw.array_coords, tissue.array_coords[:-1])


def test_space_ranger_with_the_full_resolution_image(tmp_path, visium_tissue):
    outs = write_spaceranger(tmp_path, visium_tissue)
    raw = read_spaceranger(outs, image=tmp_path / "fullres.png", feature_type=None)
    assert raw.image.scale == 1.0
    np.testing.assert_array_equal(raw.image.pixels, visium_tissue.image)
    assert raw.feature_names[-1] == "CD3"


def test_anndata_in_the_squidpy_layout(tmp_path, visium_tissue):
    raw = read_anndata(write_anndata(tmp_path / "section.h5ad", visium_tissue))
    codes, xy, counts = expected_spots(visium_tissue)
    assert raw.barcodes == codes and raw.dropped_outside_tissue == 1
    np.testing.assert_array_equal(raw.spot_pos, xy)
    np.testing.assert_array_equal(raw.counts.toarray(), counts)
    assert raw.image.scale == HIRES_SCALE and "uns['spatial']['section1']" in raw.image.source
    assert raw.image.pixels.dtype == np.uint8 and raw.image.pixels.max() > 1
    assert raw.spot_diameter == visium_tissue.spot_diameter


def test_counts_and_positions_csv(tmp_path, visium_tissue):
    counts, positions = write_csv_pair(tmp_path, visium_tissue)
    raw = read_csv_pair(counts, positions)
    table = positions_table(visium_tissue).iloc[: len(visium_tissue.spot_pos)]
    assert raw.barcodes == list(table.barcode) and raw.image is None
    np.testing.assert_array_equal(raw.counts.toarray(), tissue_counts(visium_tissue))
    np.testing.assert_array_equal(raw.array_coords, visium_tissue.array_coords)
    assert "imagecol, imagerow" in raw.frame


def test_positions_are_joined_by_barcode_not_by_row(tmp_path, visium_tissue):
    counts, positions = write_csv_pair(tmp_path, visium_tissue)
    shuffled = pd.read_csv(positions).sample(frac=1.0, random_state=0)
    shuffled.to_csv(positions, index=False)
    raw = read_csv_pair(counts, positions)
    table = positions_table(visium_tissue).iloc[: len(visium_tissue.spot_pos)]
    np.testing.assert_array_equal(raw.spot_pos[:, 0], table.pxl_col_in_fullres)


def test_csv_with_an_image_and_its_scale(tmp_path, visium_tissue):
    counts, positions = write_csv_pair(tmp_path, visium_tissue)
    image = save_png(hires(visium_tissue.image), tmp_path / "hires.png")
    raw = read_csv_pair(counts, positions, image=image, image_scale=HIRES_SCALE)
    assert raw.image.scale == HIRES_SCALE and raw.image.pixels.shape[2] == 3


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.assign(imagerow=t.imagerow.astype(float).mask(t.index == 2)),
            "1 spots have NaN or infinite pixel positions",
        ),
        (
            lambda t: t.assign(col=t.col.astype(str).mask(t.index == 0, "left")),
            "array coordinates .* must be numbers",
        ),
        (lambda t: t.assign(row=t.row + 0.5), "array coordinates must be integers"),
        (lambda t: pd.concat([t, t.iloc[[3]]]), "1 repeated barcodes"),
    ],
)
def test_bad_positions_name_the_file(tmp_path, visium_tissue, edit, message):
    counts, positions = write_csv_pair(tmp_path, visium_tissue)
    edit(pd.read_csv(positions)).to_csv(positions, index=False)
    with pytest.raises(SoScopeInputError, match=rf"positions\.csv: {message}"):
        read_csv_pair(counts, positions)
