"""Readers of raw spatial data: a Space Ranger `outs/` folder, an AnnData `.h5ad`, counts + positions CSVs.

Each returns a `RawSection`: raw counts of the in-tissue spots, their positions in
full-resolution pixels (x, y), the array coordinates of the platform's lattice when known, and
the image with its scale. Every problem is one `SoScopeInputError` naming the file.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from soscope.data.dataset_h5ad import read_h5ad_checked
from soscope.errors import SoScopeInputError
from soscope.preprocess.images import SectionImage, image_from_array, load_image

MATRIX_H5 = "filtered_feature_bc_matrix.h5"
POSITIONS_CSV, POSITIONS_LIST_CSV = "tissue_positions.csv", "tissue_positions_list.csv"
SCALEFACTORS_JSON = "scalefactors_json.json"
SPACERANGER_COLUMNS = [
    "barcode",
    "in_tissue",
    "array_row",
    "array_col",
    "pxl_row_in_fullres",
    "pxl_col_in_fullres",
]


@dataclass
class RawSection:
    """The spots of one section as read, before layout and features.

    `counts` (N × G sparse, raw values), `spot_pos` (N × 2, (x, y) full-resolution pixels),
    `array_coords` (N × 2 integer (row, col), or None), `spot_diameter` (full-resolution
    pixels, or None), `frame` (in words: where positions and image came from), the files to
    name in messages, and how many spots with counts lay outside the tissue and were dropped.
    """

    counts: sp.csr_matrix
    feature_names: list[str]
    barcodes: list[str]
    spot_pos: np.ndarray
    array_coords: np.ndarray | None
    image: SectionImage | None
    spot_diameter: float | None
    frame: str
    counts_source: str
    positions_source: str
    dropped_outside_tissue: int = 0


def read_spaceranger(
    path: str | Path,
    image: str | Path | None = None,
    image_scale: float = 1.0,
    feature_type: str | None = "Gene Expression",
) -> RawSection:
    """A Space Ranger `outs/` folder: `filtered_feature_bc_matrix.h5` and `spatial/`.

    `image` is the full-resolution image given to Space Ranger (or any copy, with
    `image_scale` its pixels per full-resolution pixel); without it the folder's
    `spatial/tissue_hires_image.png` is used at `tissue_hires_scalef`. `feature_type` keeps one
    kind of feature (None: all).
    """
    outs = Path(path)
    if not outs.is_dir():
        raise SoScopeInputError(outs, "Space Ranger output folder not found")
    counts, barcodes, names = read_10x_h5(outs / MATRIX_H5, feature_type)
    positions_path, positions = _spaceranger_positions(outs / "spatial")
    scalefactors_path = outs / "spatial" / SCALEFACTORS_JSON
    scalefactors = _read_json(scalefactors_path)
    hires = outs / "spatial" / "tissue_hires_image.png"
    if image is not None:
        section_image = load_image(image, image_scale)
    elif hires.is_file():
        scale = _scalefactor(scalefactors, "tissue_hires_scalef", scalefactors_path)
        section_image = load_image(hires, scale)
    else:
        section_image = None
    return _assemble(
        counts,
        names,
        barcodes,
        positions,
        x="pxl_col_in_fullres",
        y="pxl_row_in_fullres",
        image=section_image,
        spot_diameter=_scalefactor(scalefactors, "spot_diameter_fullres", scalefactors_path),
        frame="Space Ranger full-resolution pixels (pxl_col/pxl_row_in_fullres)",
        counts_source=str(outs / MATRIX_H5),
        positions_source=str(positions_path),
    )


def read_anndata(
    path: str | Path,
    layer: str | None = None,
    library_id: str | None = None,
    image_key: str = "hires",
    image: str | Path | None = None,
    image_scale: float = 1.0,
) -> RawSection:
    """An AnnData `.h5ad` in the scanpy/squidpy layout.

    Counts from `X` (or `layers[layer]`), full-resolution positions from `obsm['spatial']`,
    array coordinates from `obs['array_row', 'array_col']` and tissue from `obs['in_tissue']`
    when present, and the image `uns['spatial'][library_id]['images'][image_key]` at its
    `tissue_{image_key}_scalef` (or the file `image` at `image_scale`).
    """
    path = Path(path)
    adata = read_h5ad_checked(path)
    if layer is not None and layer not in adata.layers:
        raise SoScopeInputError(path, f"layers['{layer}'] is missing; found {list(adata.layers)}")
    if "spatial" not in adata.obsm:
        raise SoScopeInputError(path, "obsm['spatial'] (spot positions) is missing")
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] < 2:
        raise SoScopeInputError(path, f"obsm['spatial'] must be N × 2, found {xy.shape}")
    positions = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]}, index=adata.obs_names.astype(str))
    for column in ("in_tissue", "array_row", "array_col"):
        if column in adata.obs:
            positions[column] = adata.obs[column].to_numpy()
    library_id, library = _library(adata, library_id, path)
    scalefactors = library.get("scalefactors", {})
    if image is not None:
        section_image = load_image(image, image_scale)
    elif image_key in library.get("images", {}):
        key = f"{path} uns['spatial']['{library_id}']['images']['{image_key}']"
        scale = _scalefactor(scalefactors, f"tissue_{image_key}_scalef", path)
        section_image = image_from_array(np.asarray(library["images"][image_key]), scale, key)
    else:
        section_image = None
    diameter = scalefactors.get("spot_diameter_fullres")
    return _assemble(
        sp.csr_matrix(adata.X if layer is None else adata.layers[layer]),
        list(adata.var_names.astype(str)),
        list(positions.index),
        positions,
        x="x",
        y="y",
        image=section_image,
        spot_diameter=None if diameter is None else float(diameter),
        frame="obsm['spatial'] as full-resolution pixels",
        counts_source=f"{path} {'X' if layer is None else f'layers[{layer!r}]'}",
        positions_source=f"{path} obsm['spatial']",
    )


def read_csv_pair(
    counts: str | Path,
    positions: str | Path,
    image: str | Path | None = None,
    image_scale: float = 1.0,
    barcode: str = "barcode",
    row: str = "row",
    col: str = "col",
    x: str = "imagecol",
    y: str = "imagerow",
) -> RawSection:
    """A counts CSV (spots × features, barcodes in the first column) and a positions CSV.

    The positions CSV has a barcode column, the array coordinates `row`, `col` and the pixel
    coordinates `x`, `y` (full-resolution pixels of `image`); an `in_tissue` column is honoured.
    """
    counts, positions = Path(counts), Path(positions)
    table = _read_csv(counts, index_col=0)
    text = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if text:
        raise SoScopeInputError(counts, f"non-numeric values in {len(text)} features: {text[:5]}")
    spots = _read_csv(positions)
    _require_columns(spots, [barcode, row, col, x, y], positions)
    spots = spots.set_index(spots[barcode].astype(str)).rename(
        columns={row: "array_row", col: "array_col"}
    )
    return _assemble(
        sp.csr_matrix(table.to_numpy(dtype=np.float64)),
        [str(name) for name in table.columns],
        [str(name) for name in table.index],
        spots,
        x=x,
        y=y,
        image=None if image is None else load_image(image, image_scale),
        spot_diameter=None,
        frame=f"positions CSV columns {x}, {y} as full-resolution pixels",
        counts_source=str(counts),
        positions_source=str(positions),
    )


def read_10x_h5(
    path: Path, feature_type: str | None = None
) -> tuple[sp.csr_matrix, list[str], list[str]]:
    """A 10x feature-barcode matrix `.h5` (Cell Ranger / Space Ranger ≥ 3): barcodes × features."""
    if not path.is_file():
        raise SoScopeInputError(path, "feature-barcode matrix not found")
    try:
        with h5py.File(path, "r") as h5:
            group = h5["matrix"]
            n_features, n_barcodes = (int(n) for n in group["shape"][:])
            matrix = sp.csr_matrix(
                (group["data"][:], group["indices"][:], group["indptr"][:]),
                shape=(n_barcodes, n_features),
            )
            barcodes = _decode(group["barcodes"][:])
            names = _decode(group["features"]["name"][:])
            types = _decode(group["features"]["feature_type"][:])
    except (OSError, KeyError, ValueError) as err:
        raise SoScopeInputError(
            path, f"cannot be read as a 10x feature-barcode matrix (Space Ranger ≥ 3): {err}"
        ) from None
    if feature_type is not None:
        keep = np.flatnonzero(np.asarray(types) == feature_type)
        if len(keep) == 0:
            raise SoScopeInputError(
                path, f"has no features of type {feature_type!r}; found {sorted(set(types))}"
            )
        matrix, names = matrix[:, keep], [names[i] for i in keep]
    return matrix, barcodes, names


def _assemble(
    counts: sp.csr_matrix,
    names: list[str],
    barcodes: list[str],
    positions: pd.DataFrame,
    x: str,
    y: str,
    image: SectionImage | None,
    spot_diameter: float | None,
    frame: str,
    counts_source: str,
    positions_source: str,
) -> RawSection:
    """Join counts to positions by barcode, drop spots outside the tissue, check everything."""
    _check_unique(barcodes, "barcodes", counts_source)
    _check_unique(list(positions.index), "barcodes", positions_source)
    missing = [b for b in barcodes if b not in positions.index]
    if missing:
        raise SoScopeInputError(
            positions_source,
            f"has no position for {len(missing)} of the {len(barcodes)} barcodes in "
            f"{counts_source}, e.g. {missing[:3]}",
        )
    spots = positions.loc[barcodes]
    inside = (
        spots["in_tissue"].to_numpy() != 0 if "in_tissue" in spots else np.ones(len(spots), bool)
    )
    if not inside.any():
        raise SoScopeInputError(positions_source, "no spot with counts lies inside the tissue")
    spots, counts = spots[inside], sp.csr_matrix(counts)[np.flatnonzero(inside)]
    pos = _numbers(spots, [x, y], positions_source, "pixel positions")
    _check_counts(counts, counts_source, names)
    coords = None
    if {"array_row", "array_col"} <= set(spots.columns):
        coords = _numbers(spots, ["array_row", "array_col"], positions_source, "array coordinates")
        if not np.array_equal(coords, np.round(coords)):
            raise SoScopeInputError(positions_source, "array coordinates must be integers")
        coords = coords.astype(np.int64)
    if image is not None:
        image.check_inside(pos, positions_source)
    return RawSection(
        counts=counts.astype(np.float64),
        feature_names=_unique(names),
        barcodes=[barcodes[i] for i in np.flatnonzero(inside)],
        spot_pos=pos,
        array_coords=coords,
        image=image,
        spot_diameter=spot_diameter,
        frame=frame,
        counts_source=counts_source,
        positions_source=positions_source,
        dropped_outside_tissue=int((~inside).sum()),
    )


def _check_counts(counts: sp.csr_matrix, source: str, names: list[str]) -> None:
    """Finite and non-negative; the message names the features affected."""
    values = counts.tocoo()
    for problem, bad in (
        ("NaN or infinite", ~np.isfinite(values.data)),
        ("negative", values.data < 0),
    ):
        if bad.any():
            features = sorted({names[c] for c in values.col[bad]})
            shown = ", ".join(features[:5]) + (
                f" and {len(features) - 5} more" if len(features) > 5 else ""
            )
            raise SoScopeInputError(
                source, f"{int(bad.sum())} {problem} counts in {len(features)} features: {shown}"
            )


def _numbers(table: pd.DataFrame, columns: list[str], source: str, what: str) -> np.ndarray:
    """The columns as finite float64 values, one row per spot."""
    try:
        values = table[columns].to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        raise SoScopeInputError(source, f"{what} ({', '.join(columns)}) must be numbers") from None
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise SoScopeInputError(
            source,
            f"{int(bad.sum())} spots have NaN or infinite {what}, e.g. {table.index[bad][0]}",
        )
    return values


def _check_unique(labels: list[str], what: str, source: str) -> None:
    repeated = [label for label, n in Counter(labels).items() if n > 1]
    if repeated:
        raise SoScopeInputError(source, f"{len(repeated)} repeated {what}, e.g. {repeated[:3]}")


def _unique(names: list[str]) -> list[str]:
    """Feature names made unique by suffixes -1, -2, … on repeats (as scanpy does)."""
    seen: Counter[str] = Counter()
    out = []
    for name in names:
        out.append(name if not seen[name] else f"{name}-{seen[name]}")
        seen[name] += 1
    return out


def _decode(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _spaceranger_positions(spatial: Path) -> tuple[Path, pd.DataFrame]:
    """`tissue_positions.csv` (with a header) or the older `tissue_positions_list.csv` (without)."""
    if (spatial / POSITIONS_CSV).is_file():
        path, table = spatial / POSITIONS_CSV, _read_csv(spatial / POSITIONS_CSV)
    elif (spatial / POSITIONS_LIST_CSV).is_file():
        path = spatial / POSITIONS_LIST_CSV
        table = _read_csv(path, header=None, names=SPACERANGER_COLUMNS)
    else:
        raise SoScopeInputError(spatial, f"neither {POSITIONS_CSV} nor {POSITIONS_LIST_CSV} found")
    _require_columns(table, SPACERANGER_COLUMNS, path)
    return path, table.set_index(table["barcode"].astype(str))


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    if not path.is_file():
        raise SoScopeInputError(path, "file not found")
    try:
        return pd.read_csv(path, **kwargs)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise SoScopeInputError(path, f"cannot be read as CSV ({err})") from None


def _require_columns(table: pd.DataFrame, columns: list[str], path: Path) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SoScopeInputError(path, f"lacks columns {missing}; found {list(table.columns)}")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise SoScopeInputError(path, "file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise SoScopeInputError(path, f"cannot be read as JSON ({err})") from None


def _scalefactor(scalefactors: dict, key: str, source: Path) -> float:
    value = scalefactors.get(key)
    if not isinstance(value, int | float) or not value > 0:
        raise SoScopeInputError(source, f"scale factor {key!r} is missing or not positive")
    return float(value)


def _library(adata: ad.AnnData, library_id: str | None, path: Path) -> tuple[str, dict]:
    """(name, `uns['spatial'][name]`): the only library when not named; ("", {}) without any."""
    libraries = adata.uns.get("spatial", {})
    if library_id is None:
        if len(libraries) > 1:
            raise SoScopeInputError(
                path, f"uns['spatial'] holds several libraries {list(libraries)}; name one"
            )
        return next(iter(libraries.items()), ("", {}))
    if library_id not in libraries:
        raise SoScopeInputError(path, f"uns['spatial'] has no library {library_id!r}")
    return library_id, libraries[library_id]
