"""Raw inputs written the way real tools write them, from a synthetic Visium tissue: a
scanpy/squidpy AnnData and a pair of counts/positions CSVs (Space Ranger folders:
`soscope.datasets.spaceranger`). The last spot is marked outside the tissue, as in real output.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from soscope.datasets import SyntheticTissue
from soscope.datasets.spaceranger import (
    HIRES_SCALE,
    downscaled,
    positions_table,
    tissue_counts,
)


def hires(pixels: np.ndarray) -> np.ndarray:
    return downscaled(pixels, HIRES_SCALE)


def write_anndata(path: Path, tissue: SyntheticTissue) -> Path:
    """The scanpy/squidpy layout: counts in X, obsm['spatial'], uns['spatial'] hires image."""
    table = positions_table(tissue).iloc[: len(tissue.spot_pos)]
    adata = ad.AnnData(
        X=sp.csr_matrix(tissue_counts(tissue).astype(np.float32)),
        obs=pd.DataFrame(
            {
                "in_tissue": table.in_tissue.to_numpy(),
                "array_row": table.array_row.to_numpy(),
                "array_col": table.array_col.to_numpy(),
            },
            index=table.barcode.to_numpy(),
        ),
        var=pd.DataFrame(index=tissue.feature_names),
    )
    adata.obsm["spatial"] = table[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(float)
    adata.uns["spatial"] = {
        "section1": {
            "images": {"hires": hires(tissue.image).astype(np.float32) / 255.0},
            "scalefactors": {
                "spot_diameter_fullres": tissue.spot_diameter,
                "tissue_hires_scalef": HIRES_SCALE,
            },
        }
    }
    adata.write_h5ad(path)
    return path


def write_csv_pair(root: Path, tissue: SyntheticTissue) -> tuple[Path, Path]:
    """Counts CSV (barcodes × features) and a positions CSV in the spatial-CITE-seq layout."""
    table = positions_table(tissue).iloc[: len(tissue.spot_pos)]
    counts = pd.DataFrame(tissue_counts(tissue), index=table.barcode, columns=tissue.feature_names)
    counts.to_csv(root / "counts.csv")
    positions = pd.DataFrame(
        {
            "barcode": table.barcode,
            "row": table.array_row,
            "col": table.array_col,
            "imagerow": table.pxl_row_in_fullres,
            "imagecol": table.pxl_col_in_fullres,
        }
    )
    positions.to_csv(root / "positions.csv", index=False)
    return root / "counts.csv", root / "positions.csv"
