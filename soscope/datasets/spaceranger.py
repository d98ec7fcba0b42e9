"""A Space Ranger `outs/` folder written from the synthetic tissue, as Space Ranger writes one.

`example_visium` gives a small Visium section to try the whole workflow on (`soscope.read_visium`,
`soscope.SoScope`) without real data; the tests write the same folders in their variants (10x
`.h5` matrix or `filtered_feature_bc_matrix/` mtx folder, positions CSV with or without header
or as Visium HD's parquet, hires and/or lowres images). As in real output, the last spot of the
matrix lies outside the tissue, three positions have no counts, and an antibody feature rides
along with the genes (the reader keeps `Gene Expression`).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
from PIL import Image

from soscope.datasets.synthetic import SyntheticTissue, make_synthetic_tissue

HIRES_SCALE = 0.5
LOWRES_SCALE = HIRES_SCALE / 4


def tissue_counts(tissue: SyntheticTissue) -> np.ndarray:
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


def write_10x_mtx(
    folder: Path, counts: np.ndarray, codes: list[str], names: list[str], types: list[str]
) -> None:
    """A feature-barcode matrix folder as Space Ranger writes it: gzipped Matrix Market
    (features × barcodes), features.tsv.gz and barcodes.tsv.gz."""
    folder.mkdir()
    with gzip.open(folder / "matrix.mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, sp.coo_matrix(counts.T), field="integer")
    ids = [f"ENSG{i:011d}" for i in range(len(names))]
    features = pd.DataFrame({"id": ids, "name": names, "type": types})
    features.to_csv(folder / "features.tsv.gz", sep="\t", header=False, index=False)
    pd.Series(codes).to_csv(folder / "barcodes.tsv.gz", header=False, index=False)


def save_png(pixels: np.ndarray, path: Path) -> Path:
    Image.fromarray(pixels).save(path)
    return path


def downscaled(pixels: np.ndarray, scale: float = HIRES_SCALE) -> np.ndarray:
    height, width = pixels.shape[:2]
    size = (round(width * scale), round(height * scale))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))


def write_spaceranger(
    root: Path,
    tissue: SyntheticTissue,
    header: bool = True,
    counts: np.ndarray | None = None,
    matrix: str = "h5",
    images: tuple[str, ...] = ("hires",),
    positions: str = "csv",
) -> Path:
    """A Space Ranger `outs/` folder with the full-resolution image beside it
    (`root/fullres.png`); returns the `outs/` folder. An antibody feature rides along.

    `matrix`: "h5" or "mtx" (the `filtered_feature_bc_matrix/` folder); `images`: which of
    "hires", "lowres" the `spatial/` folder holds; `positions`: "csv" (with a header unless
    `header` is false) or "parquet" (Visium HD)."""
    outs, spatial = root / "outs", root / "outs" / "spatial"
    spatial.mkdir(parents=True)
    counts = tissue_counts(tissue) if counts is None else counts
    n_genes = counts.shape[1]
    with_antibody = np.column_stack([counts, np.arange(len(counts))])
    table = positions_table(tissue)
    write = write_10x_h5 if matrix == "h5" else write_10x_mtx
    write(
        outs
        / ("filtered_feature_bc_matrix.h5" if matrix == "h5" else "filtered_feature_bc_matrix"),
        with_antibody,
        list(table.barcode[: len(counts)]),
        [*tissue.feature_names, "CD3"],
        ["Gene Expression"] * n_genes + ["Antibody Capture"],
    )
    if positions == "parquet":
        table.to_parquet(spatial / "tissue_positions.parquet", index=False)
    elif header:
        table.to_csv(spatial / "tissue_positions.csv", index=False)
    else:
        table.to_csv(spatial / "tissue_positions_list.csv", index=False, header=False)
    scalefactors = {
        "spot_diameter_fullres": tissue.spot_diameter,
        "tissue_hires_scalef": HIRES_SCALE,
        "fiducial_diameter_fullres": tissue.spot_diameter * 1.6,
        "tissue_lowres_scalef": LOWRES_SCALE,
    }
    (spatial / "scalefactors_json.json").write_text(json.dumps(scalefactors))
    for key, scale in (("hires", HIRES_SCALE), ("lowres", LOWRES_SCALE)):
        if key in images:
            save_png(downscaled(tissue.image, scale), spatial / f"tissue_{key}_image.png")
    save_png(tissue.image, root / "fullres.png")
    return outs


def example_visium(
    folder: str | Path, n_rows: int = 12, n_cols: int = 12, n_features: int = 12, seed: int = 0
) -> Path:
    """Write a small synthetic Visium section (`n_rows` × `n_cols` spots, NB counts of
    `n_features` genes, an H&E-like image) as a Space Ranger `outs/` folder inside `folder`;
    returns the `outs/` folder. The full-resolution image lies beside it, `fullres.png`."""
    tissue = make_synthetic_tissue(
        n_rows=n_rows, n_cols=n_cols, n_features=n_features, likelihood="nb", seed=seed
    )
    return write_spaceranger(Path(folder), tissue)
