"""Enhanced subspots as SpatialData: the H&E image, the subspots as circles over it and the
enhanced AnnData as the table that annotates them, for spatialdata-plot and napari-spatialdata.

Every element lives in one coordinate system, `global`, in full-resolution image pixels (the
frame of `obsm['spatial']`): the circles as they are, the image through a scale by the inverse
of its scale factor (Space Ranger's hires image is `tissue_hires_scalef` of full resolution).
A dataset AnnData kept as a SpatialData table reads back as that table.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import spatialdata as sd
from spatialdata.models import Image2DModel, ShapesModel, TableModel
from spatialdata.transformations import Identity, Scale

from soscope.data.anndata_io import library_image
from soscope.data.dataset_h5ad import SUBSPOTS
from soscope.errors import SoScopeInputError
from soscope.io_utils import atomic_dir

COORDINATES = "global"
SHAPES, IMAGE, TABLE = "subspots", "image", "table"
REGION_KEY, INSTANCE_KEY = "region", "subspot_id"


def enhanced_spatialdata(adata: ad.AnnData) -> sd.SpatialData:
    """`adata` (one row per subspot, `obsm['spatial']` in full-resolution pixels) as SpatialData:
    shapes `subspots` (circles of the subspot diameter), image `image` (the best of
    `uns['spatial']`, when there is one) and table `table` annotating the circles."""
    if "spatial" not in adata.obsm:
        raise SoScopeInputError("AnnData", "obsm['spatial'] (subspot positions) is missing")
    spatial = adata.uns.get("spatial") or {}
    elements = {"shapes": {SHAPES: subspot_circles(adata, spatial)}}
    image, scale = library_image(spatial)
    if image is not None:
        elements["images"] = {IMAGE: image_element(image, scale)}
    table = adata.copy()
    table.uns.pop("spatial", None)  # the image is an element of its own
    table.obs[REGION_KEY] = pd.Categorical([SHAPES] * table.n_obs)
    table.obs[INSTANCE_KEY] = np.arange(table.n_obs)
    table = TableModel.parse(table, region=SHAPES, region_key=REGION_KEY, instance_key=INSTANCE_KEY)
    return sd.SpatialData(**elements, tables={TABLE: table})


def subspot_circles(adata: ad.AnnData, spatial: dict) -> object:
    """The subspots as circles at `obsm['spatial']`, of the subspot diameter the libraries of
    `uns['spatial']` record (`spot_diameter_fullres`, which the enhanced output sets)."""
    diameters = [
        library.get("scalefactors", {}).get("spot_diameter_fullres") for library in spatial.values()
    ]
    diameter = next((float(d) for d in diameters if d), None)
    if diameter is None:
        raise SoScopeInputError(
            "AnnData", "uns['spatial'] records no subspot diameter (spot_diameter_fullres)"
        )
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    return ShapesModel.parse(
        xy,
        geometry=0,
        radius=np.full(len(xy), diameter / 2),
        index=pd.RangeIndex(len(xy), name=INSTANCE_KEY),
        transformations={COORDINATES: Identity()},
    )


def image_element(image: np.ndarray, scale: float) -> object:
    """An H × W × 3 image (uint8, or floats in [0, 1] as scanpy keeps them) as a SpatialData
    image in the full-resolution frame: its pixels are `scale` of a full-resolution pixel."""
    pixels = np.asarray(image)
    if pixels.dtype.kind == "f":
        pixels = np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return Image2DModel.parse(
        np.moveaxis(pixels[..., :3], -1, 0),
        dims=("c", "y", "x"),
        transformations={COORDINATES: Scale([1 / scale, 1 / scale], axes=("y", "x"))},
    )


def write_spatialdata(sdata: sd.SpatialData, path: str | Path) -> None:
    """Write `sdata` as a `.zarr` store at `path`, atomically (an existing store is replaced)."""
    with atomic_dir(path) as tmp:
        store = tmp / Path(path).name
        sdata.write(store)
        for item in store.iterdir():
            item.rename(tmp / item.name)
        store.rmdir()


def dataset_table(sdata: sd.SpatialData) -> ad.AnnData:
    """The table of `sdata` that holds a soscope dataset (`uns['soscope_subspots']`)."""
    found = [table for table in sdata.tables.values() if SUBSPOTS in table.uns]
    if len(found) != 1:
        raise SoScopeInputError(
            "SpatialData",
            f"expected one table holding a soscope dataset (uns['{SUBSPOTS}']), found "
            f"{len(found)} among {list(sdata.tables)}: make one with soscope.read_visium or "
            "soscope.read_anndata",
        )
    return found[0]
