"""Raw inputs written the way real tools write them, from a synthetic Visium tissue.

A Space Ranger `outs/` folder (10x `.h5` matrix, positions CSV with or without header,
scalefactors JSON, full-resolution and hires images), a scanpy/squidpy AnnData and a pair of
counts/positions CSVs. The last spot of the matrix is marked outside the tissue and three
positions have no counts, as in real output.
"""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from PIL import Image

from soscope.datasets import SyntheticTissue

HIRES_SCALE = 0.5


def spot_counts(tissue: SyntheticTissue) -> np.ndarray:
    """Integer spot totals (N × G): the sum of each spot's subspot truth."""
    totals = np.zeros((len(tissue.spot_pos), tissue.truth.shape[1]))
    np.add.at(totals, tissue.graph.sub_to_spot.numpy(), tissue.truth)
    return np.rint(totals).astype(np.int64)


def barcodes(n: int) -> list[str]:
    bases = np.array(list("ACGT"))
    rng = np.random.default_rng(7)
    return ["".join(bases[rng.integers(0, 4, 16)]) + f"{i:04d}-1" for i in range(n)]


def positions_table(tissue: SyntheticTissue) -> pd.DataFrame:
    """Space Ranger's tissue positions: every spot, then 3 spots without counts off the tissue."""
    n = len(tissue.spot_pos)
    rows, cols = tissue.array_coords.T
    extra_rows = rows.max() + 2 + np.arange(3) % 2
    table = pd.DataFrame(
        {
            "barcode": barcodes(n + 3),
            "in_tissue": np.r_[np.ones(n - 1, int), 0, np.zeros(3, int)],
            "array_row": np.r_[rows, extra_rows],
            "array_col": np.r_[cols, 2 * np.arange(3) + extra_rows % 2],
            "pxl_row_in_fullres": np.r_[np.rint(tissue.spot_pos[:, 1]), [1, 1, 1]].astype(int),
            "pxl_col_in_fullres": np.r_[np.rint(tissue.spot_pos[:, 0]), [1, 2, 3]].astype(int),
        }
    )
    return table


def write_10x_h5(
    path: Path, counts: np.ndarray, codes: list[str], names: list[str], types: list[str]
) -> None:
    """A feature-barcode matrix in Space Ranger's layout: CSC features × barcodes."""
    matrix = sp.csr_matrix(counts)  # barcodes × features = CSC of features × barcodes
    with h5py.File(path, "w") as h5:
        group = h5.create_group("matrix")
        group["barcodes"] = np.array(codes, dtype="S")
        group["data"] = matrix.data.astype(np.int32)
        group["indices"] = matrix.indices.astype(np.int64)
        group["indptr"] = matrix.indptr.astype(np.int64)
        group["shape"] = np.array([counts.shape[1], counts.shape[0]], dtype=np.int32)
        features = group.create_group("features")
        features["id"] = np.array([f"ENSG{i:011d}" for i in range(len(names))], dtype="S")
        features["name"] = np.array(names, dtype="S")
        features["feature_type"] = np.array(types, dtype="S")
        features["genome"] = np.array(["GRCh38"] * len(names), dtype="S")
        features["_all_tag_keys"] = np.array([b"genome"])


def save_png(pixels: np.ndarray, path: Path) -> Path:
    Image.fromarray(pixels).save(path)
    return path


def hires(pixels: np.ndarray) -> np.ndarray:
    height, width = pixels.shape[:2]
    size = (round(width * HIRES_SCALE), round(height * HIRES_SCALE))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))


def write_spaceranger(
    root: Path,
    tissue: SyntheticTissue,
    header: bool = True,
    counts: np.ndarray | None = None,
) -> Path:
    """A Space Ranger `outs/` folder with the hires image inside and the full-resolution image
    beside it (`root/fullres.png`); returns the `outs/` folder. An antibody feature rides along."""
    outs, spatial = root / "outs", root / "outs" / "spatial"
    spatial.mkdir(parents=True)
    counts = spot_counts(tissue) if counts is None else counts
    n_genes = counts.shape[1]
    with_antibody = np.column_stack([counts, np.arange(len(counts))])
    table = positions_table(tissue)
    write_10x_h5(
        outs / "filtered_feature_bc_matrix.h5",
        with_antibody,
        list(table.barcode[: len(counts)]),
        [*tissue.feature_names, "CD3"],
        ["Gene Expression"] * n_genes + ["Antibody Capture"],
    )
    if header:
        table.to_csv(spatial / "tissue_positions.csv", index=False)
    else:
        table.to_csv(spatial / "tissue_positions_list.csv", index=False, header=False)
    scalefactors = {
        "spot_diameter_fullres": tissue.spot_diameter,
        "tissue_hires_scalef": HIRES_SCALE,
        "fiducial_diameter_fullres": tissue.spot_diameter * 1.6,
        "tissue_lowres_scalef": HIRES_SCALE / 4,
    }
    (spatial / "scalefactors_json.json").write_text(json.dumps(scalefactors))
    save_png(hires(tissue.image), spatial / "tissue_hires_image.png")
    save_png(tissue.image, root / "fullres.png")
    return outs


def write_anndata(path: Path, tissue: SyntheticTissue) -> Path:
    """The scanpy/squidpy layout: counts in X, obsm['spatial'], uns['spatial'] hires image."""
    table = positions_table(tissue).iloc[: len(tissue.spot_pos)]
    adata = ad.AnnData(
        X=sp.csr_matrix(spot_counts(tissue).astype(np.float32)),
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
    counts = pd.DataFrame(spot_counts(tissue), index=table.barcode, columns=tissue.feature_names)
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
