"""Readers of raw spatial data: a Space Ranger `outs/` folder, an AnnData `.h5ad`, counts + positions CSVs.

Each returns a `RawSection`: raw counts of the in-tissue spots, their positions in
full-resolution pixels (x, y), the array coordinates of the platform's lattice when known, the
image with its scale, and the section's images in squidpy's layout (`uns['spatial']`) to carry
into the dataset and the enhanced output. Matrices are read with scanpy's 10x readers. Every
problem is one `SoScopeInputError` naming the file, the problem and the fix.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from soscope.data.dataset_h5ad import read_h5ad_checked
from soscope.errors import SoScopeInputError
from soscope.preprocess.images import (
    SectionImage,
    image_from_array,
    load_image,
    squidpy_library,
    thumbnail,
)

MATRIX_H5, MATRIX_DIR = "filtered_feature_bc_matrix.h5", "filtered_feature_bc_matrix"
POSITIONS_CSV, POSITIONS_LIST_CSV = "tissue_positions.csv", "tissue_positions_list.csv"
POSITIONS_PARQUET = "tissue_positions.parquet"  # Visium HD binned outputs
SCALEFACTORS_JSON = "scalefactors_json.json"
# Space Ranger's downscaled images, best first, each at its tissue_<key>_scalef.
SPACERANGER_IMAGES = {"hires": "tissue_hires_image.png", "lowres": "tissue_lowres_image.png"}
VALUES = ("counts", "continuous")
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
    `array_coords` (N × 2 integer (row, col), or None), `image` (the one image features are
    taken from), `spatial` (the section's images and scale factors in squidpy's
    `uns['spatial']` layout, or None), `spot_diameter` (full-resolution pixels, or None),
    `frame` (in words: where positions and image came from), the files to name in messages
    (`image_search`: where an image was looked for), and how many spots with counts lay
    outside the tissue and were dropped.
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
    spatial: dict | None = None
    image_search: str = ""
    dropped_outside_tissue: int = 0


def read_spaceranger(
    path: str | Path,
    image: str | Path | None = None,
    image_scale: float = 1.0,
    feature_type: str | None = "Gene Expression",
    values: str = "counts",
) -> RawSection:
    """A Space Ranger `outs/` folder (or a Visium HD `binned_outputs/square_<n>um/` folder).

    Counts from `filtered_feature_bc_matrix.h5` or the `filtered_feature_bc_matrix/` (mtx)
    folder, positions from `spatial/tissue_positions.csv` (`tissue_positions_list.csv`,
    `tissue_positions.parquet`), scale factors from `spatial/scalefactors_json.json`.
    `image` is the full-resolution image given to Space Ranger (or any copy, with
    `image_scale` its pixels per full-resolution pixel); without it the folder's hires image
    is used, else its lowres one, each at its scale factor. `feature_type` keeps one kind of
    feature (None: all).
    """
    outs = Path(path)
    if not outs.is_dir():
        raise SoScopeInputError(outs, "Space Ranger output folder not found: " + OUTS_HINT)
    counts, barcodes, names, counts_source = read_10x_matrix(outs, feature_type)
    spatial = outs / "spatial"
    positions_path, positions = _spaceranger_positions(spatial)
    scalefactors_path = spatial / SCALEFACTORS_JSON
    scalefactors = _read_json(scalefactors_path)
    found = spaceranger_images(spatial, scalefactors, scalefactors_path)
    section_image = load_image(image, image_scale) if image is not None else None
    if section_image is None and found:
        section_image = next(iter(found.values()))
    if not found and section_image is not None:
        found = {"hires": thumbnail(section_image)}
    library = squidpy_library(found, scalefactors) if found else None
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
        counts_source=counts_source,
        positions_source=str(positions_path),
        spatial=None if library is None else {_library_id(outs): library},
        image_search=f"{spatial} (no {' or '.join(SPACERANGER_IMAGES.values())})",
        values=values,
    )


OUTS_HINT = (
    "give input.path the Space Ranger outs/ folder (Visium HD: one of its "
    "binned_outputs/square_<n>um/ folders, with layout=grid)"
)


def read_10x_matrix(
    outs: Path, feature_type: str | None
) -> tuple[sp.csr_matrix, list[str], list[str], str]:
    """(barcodes × features counts, barcodes, feature names, the file read) from a 10x
    `filtered_feature_bc_matrix.h5` or, without one, the `filtered_feature_bc_matrix/` folder."""
    h5, folder = outs / MATRIX_H5, outs / MATRIX_DIR
    if h5.is_file():
        source, read = h5, lambda: sc.read_10x_h5(h5, gex_only=False)
    elif folder.is_dir():
        source = folder
        read = lambda: sc.read_10x_mtx(folder, gex_only=False, make_unique=False)  # noqa: E731
    else:
        raise SoScopeInputError(outs, f"has neither {MATRIX_H5} nor {MATRIX_DIR}/: {OUTS_HINT}")
    try:
        with warnings.catch_warnings():  # repeated gene names are made unique below
            warnings.simplefilter("ignore")
            adata = read()
    except Exception as err:  # h5py, gzip, scipy and pandas errors all mean a damaged matrix
        raise SoScopeInputError(
            source, f"cannot be read as a 10x feature-barcode matrix ({err}); is it complete?"
        ) from None
    names = [str(name) for name in adata.var_names]
    if feature_type is not None and "feature_types" in adata.var:
        types = adata.var["feature_types"].astype(str).to_numpy()
        keep = np.flatnonzero(types == feature_type)
        if len(keep) == 0:
            raise SoScopeInputError(
                source,
                f"has no features of type {feature_type!r}; found {sorted(set(types))} "
                "(input.feature_type=<one of them>, or null for all)",
            )
        adata, names = adata[:, keep], [names[i] for i in keep]
    counts = sp.csr_matrix(adata.X)
    return counts, [str(b) for b in adata.obs_names], names, str(source)


def spaceranger_images(
    spatial: Path, scalefactors: dict, scalefactors_path: Path
) -> dict[str, SectionImage]:
    """The folder's hires and lowres images that exist, best first, each at its scale factor."""
    images = {}
    for key, name in SPACERANGER_IMAGES.items():
        if (spatial / name).is_file():
            scale = _scalefactor(scalefactors, f"tissue_{key}_scalef", scalefactors_path)
            images[key] = load_image(spatial / name, scale)
    return images


def _library_id(outs: Path) -> str:
    """The section's name in `uns['spatial']`: the sample folder above `outs/`."""
    named = outs.parent if outs.name == "outs" else outs
    return named.name or "section"


def read_anndata(
    path: str | Path,
    layer: str | None = None,
    library_id: str | None = None,
    image_key: str | None = None,
    image: str | Path | None = None,
    image_scale: float = 1.0,
    values: str = "counts",
) -> RawSection:
    """An AnnData `.h5ad` in the scanpy/squidpy layout.

    Counts from `X` (or `layers[layer]`), full-resolution positions from `obsm['spatial']`,
    array coordinates from `obs['array_row', 'array_col']` and tissue from `obs['in_tissue']`
    when present. Image features come from the file `image` at `image_scale`, else from
    `uns['spatial'][library_id]['images'][image_key]` (None: hires, else lowres) at its
    `tissue_<key>_scalef`; the library's images travel on into the dataset.
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
    scalefactors = dict(library.get("scalefactors", {}))
    found = library_images(library, library_id, path)
    if image is not None:
        section_image = load_image(image, image_scale)
    elif image_key is not None:
        if image_key not in found:
            raise SoScopeInputError(
                path,
                f"uns['spatial']['{library_id}'] has no image {image_key!r} with a scale factor "
                f"tissue_{image_key}_scalef; found {list(found)} (input.image_key=<one of them>)",
            )
        section_image = found[image_key]
    else:
        section_image = next(iter(found.values()), None)
    if not found and section_image is not None:
        found = {"hires": thumbnail(section_image)}
    diameter = scalefactors.get("spot_diameter_fullres")
    where = "X" if layer is None else f"layers[{layer!r}]"
    others = [name for name in adata.layers if name != layer]
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
        counts_source=f"{path} {where}",
        positions_source=f"{path} obsm['spatial']",
        spatial={library_id or path.stem: squidpy_library(found, scalefactors)} if found else None,
        image_search=f"{path} uns['spatial']",
        values=values,
        raw_counts_hint=f"input.layer=<one of {others}>" if others else "",
    )


def library_images(library: dict, library_id: str, path: Path) -> dict[str, SectionImage]:
    """The images of an AnnData's `uns['spatial']` library that have a scale factor, hires and
    lowres first."""
    images, scalefactors = library.get("images", {}), library.get("scalefactors", {})
    keys = sorted(images, key=lambda key: (key not in SPACERANGER_IMAGES, key != "hires", key))
    found = {}
    for key in keys:
        scale = scalefactors.get(f"tissue_{key}_scalef")
        if isinstance(scale, int | float | np.number) and scale > 0:
            source = f"{path} uns['spatial']['{library_id}']['images']['{key}']"
            found[key] = image_from_array(np.asarray(images[key]), float(scale), source)
    return found


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
    values: str = "counts",
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
    section_image = None if image is None else load_image(image, image_scale)
    library = (
        None if section_image is None else squidpy_library({"hires": thumbnail(section_image)})
    )
    return _assemble(
        sp.csr_matrix(table.to_numpy(dtype=np.float64)),
        [str(name) for name in table.columns],
        [str(name) for name in table.index],
        spots,
        x=x,
        y=y,
        image=section_image,
        spot_diameter=None,
        frame=f"positions CSV columns {x}, {y} as full-resolution pixels",
        counts_source=str(counts),
        positions_source=str(positions),
        spatial=None if library is None else {counts.stem: library},
        image_search=str(positions),
        values=values,
    )


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
    spatial: dict | None = None,
    image_search: str = "",
    values: str = "counts",
    raw_counts_hint: str = "",
) -> RawSection:
    """Join counts to positions by barcode, drop spots outside the tissue, check everything
    (`values`: "counts" must be whole numbers; `raw_counts_hint` says where raw counts may be)."""
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
    _check_values(counts, counts_source, names, values, raw_counts_hint)
    coords = None
    if {"array_row", "array_col"} <= set(spots.columns):
        coords = _numbers(spots, ["array_row", "array_col"], positions_source, "array coordinates")
        if not np.array_equal(coords, np.round(coords)):
            raise SoScopeInputError(positions_source, "array coordinates must be integers")
        coords = coords.astype(np.int64)
    if image is not None:
        image.check_inside(pos, positions_source)
        image.check_spread(pos, positions_source)
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
        spatial=spatial,
        image_search=image_search or positions_source,
        dropped_outside_tissue=int((~inside).sum()),
    )


def _check_values(
    counts: sp.csr_matrix, source: str, names: list[str], values: str, hint: str
) -> None:
    """Finite; for `values="counts"` also non-negative whole numbers (log-normalised values
    are refused: the likelihoods and the feature selection model raw counts). The message
    names the features affected and the fix."""
    if values not in VALUES:
        raise SoScopeInputError("input.values", f"unknown {values!r}; choose from {VALUES}")
    data = counts.tocoo()
    checks = [("NaN or infinite", ~np.isfinite(data.data), "")]
    if values == "counts":
        fix = f"give the raw counts ({hint})" if hint else "give the raw counts"
        fix += ", or input.values=continuous for values that are not counts"
        checks += [
            ("negative", data.data < 0, fix),
            ("non-integer", np.isfinite(data.data) & (data.data != np.round(data.data)), fix),
        ]
    for problem, bad, fix in checks:
        if bad.any():
            features = sorted({names[c] for c in data.col[bad]})
            shown = ", ".join(features[:5]) + (
                f" and {len(features) - 5} more" if len(features) > 5 else ""
            )
            example = f" (e.g. {data.data[bad][0]:.4g})" if problem == "non-integer" else ""
            raise SoScopeInputError(
                source,
                f"{int(bad.sum())} {problem} counts{example} in {len(features)} features: "
                f"{shown}" + (f"; {fix}" if fix else ""),
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


def _spaceranger_positions(spatial: Path) -> tuple[Path, pd.DataFrame]:
    """`tissue_positions.csv` (with a header), the older `tissue_positions_list.csv` (without)
    or Visium HD's `tissue_positions.parquet`."""
    if (spatial / POSITIONS_CSV).is_file():
        path, table = spatial / POSITIONS_CSV, _read_csv(spatial / POSITIONS_CSV)
    elif (spatial / POSITIONS_LIST_CSV).is_file():
        path = spatial / POSITIONS_LIST_CSV
        table = _read_csv(path, header=None, names=SPACERANGER_COLUMNS)
    elif (spatial / POSITIONS_PARQUET).is_file():
        path = spatial / POSITIONS_PARQUET
        try:
            table = pd.read_parquet(path)
        except (ValueError, OSError) as err:
            raise SoScopeInputError(path, f"cannot be read as parquet ({err})") from None
    else:
        raise SoScopeInputError(
            spatial,
            f"has none of {POSITIONS_CSV}, {POSITIONS_LIST_CSV}, {POSITIONS_PARQUET}: " + OUTS_HINT,
        )
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
