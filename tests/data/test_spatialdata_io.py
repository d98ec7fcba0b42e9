"""Enhanced subspots as SpatialData: circles over the H&E image in one coordinate system."""

import numpy as np
import pytest
import spatialdata as sd
from spatialdata.transformations import get_transformation

from soscope.data.anndata_io import enhanced_anndata, spatial_library
from soscope.data.spatialdata_io import (
    IMAGE,
    SHAPES,
    TABLE,
    enhanced_spatialdata,
    write_spatialdata,
)
from soscope.datasets import make_synthetic_tissue
from soscope.errors import SoScopeInputError


@pytest.fixture(scope="module")
def enhanced():
    tissue = make_synthetic_tissue(n_rows=3, n_cols=3, seed=2)
    section = tissue.to_section()
    spatial = spatial_library(tissue.sub_diameter, image=tissue.image, image_scale=0.5)
    return enhanced_anndata(section.truth, section.graph, section.feature_names, spatial=spatial)


def test_subspots_are_circles_over_the_image(enhanced):
    sdata = enhanced_spatialdata(enhanced)
    circles = sdata.shapes[SHAPES]
    np.testing.assert_allclose(
        np.c_[circles.geometry.x, circles.geometry.y], enhanced.obsm["spatial"]
    )
    diameter = enhanced.uns["spatial"]["section"]["scalefactors"]["spot_diameter_fullres"]
    np.testing.assert_allclose(circles.radius, diameter / 2)
    # an image at scale 0.5 is drawn twice as large in the full-resolution frame
    scale = get_transformation(sdata.images[IMAGE], to_coordinate_system="global")
    np.testing.assert_allclose(scale.scale, [2.0, 2.0])
    table = sdata.tables[TABLE]
    assert table.uns["spatialdata_attrs"]["region"] == SHAPES
    np.testing.assert_array_equal(table.X, enhanced.X)


def test_written_atomically_and_read_back(enhanced, tmp_path):
    path = tmp_path / "enhanced.zarr"
    write_spatialdata(enhanced_spatialdata(enhanced), path)
    write_spatialdata(enhanced_spatialdata(enhanced), path)  # replaces the store
    back = sd.read_zarr(path)
    assert set(back.shapes) == {SHAPES} and set(back.images) == {IMAGE}
    assert [p.name for p in tmp_path.iterdir()] == ["enhanced.zarr"]


def test_subspots_need_positions(enhanced):
    bare = enhanced.copy()
    del bare.obsm["spatial"]
    with pytest.raises(SoScopeInputError, match="obsm"):
        enhanced_spatialdata(bare)
