"""The three readers: Space Ranger folders, AnnData files and CSV pairs give the same spots."""

import numpy as np
import pandas as pd
import pytest

from soscope.errors import SoScopeInputError
from soscope.preprocess.readers import read_anndata, read_csv_pair, read_spaceranger
from tests.preprocess.fakes import (
    HIRES_SCALE,
    hires,
    positions_table,
    save_png,
    spot_counts,
    write_anndata,
    write_csv_pair,
    write_spaceranger,
)


def expected_spots(tissue):
    """Everything but the last spot, which the fakes mark outside the tissue."""
    table = positions_table(tissue).iloc[: len(tissue.spot_pos) - 1]
    xy = table[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(float)
    return list(table.barcode), xy, spot_counts(tissue)[:-1]


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
    np.testing.assert_array_equal(raw.counts.toarray(), spot_counts(visium_tissue))
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
