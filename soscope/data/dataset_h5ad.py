"""A whole dataset in one `.h5ad`: spots as rows, subspots and both graphs alongside.

Layout (N spots, M subspots): `X` the spot profiles x (per-subspot mean), `var_names` the
features, `obs_names` the spots, `obsm['spatial']` spot positions (full-resolution pixels),
`obsp['soscope_graph']` the spot graph A, and `uns['soscope_subspots']` with `features`
(M×D), `sub_to_spot` (M), `edges` (E'×3 rows i, j, w of the subspot graph W) and optionally
`positions` (M×2) and `truth` (M×G). Graphs are stored without self-loops. Optional:
`layers` (e.g. `counts`, the raw spot counts from preprocessing), `uns['soscope_meta']`, the
section's `meta` (how it was made: layout, image scale, sources), and `uns['spatial']`
(scanpy/squidpy: images and scale factors per library), which travels along into
`Section.meta['spatial']` so the enhanced output can carry it over; its best image (hires,
else lowres) becomes the section's image for the run's figures.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from soscope.data.anndata_io import library_image
from soscope.data.reference_io import count_columns, edge_rows, edges_with_self_loops
from soscope.data.sample import Section, make_spot_graph
from soscope.data.validate import (
    check_counts,
    check_matrix,
    check_numeric,
    check_unique,
    to_float32,
)
from soscope.errors import SoScopeInputError
from soscope.io_utils import atomic_path

GRAPH, SUBSPOTS, META = "soscope_graph", "soscope_subspots", "soscope_meta"


def dataset_anndata(section: Section, layers: dict[str, np.ndarray] | None = None) -> ad.AnnData:
    """A section as a dataset AnnData (the layout above), with extra spot × feature `layers`."""
    graph = section.graph
    n = graph.num_spots
    rows = edge_rows(graph.edge_index, graph.edge_weight)
    adjacency = sp.csr_matrix((rows[:, 2], (rows[:, 0], rows[:, 1])), shape=(n, n))
    subspots = {
        "features": graph.sub_feat.numpy(),
        "sub_to_spot": graph.sub_to_spot.numpy(),
        "edges": edge_rows(graph.sub_edge_index, graph.sub_edge_weight),
    }
    if getattr(graph, "sub_pos", None) is not None:
        subspots["positions"] = graph.sub_pos.numpy()
    if section.truth is not None:
        subspots["truth"] = np.asarray(section.truth, dtype=np.float32)
    uns = {SUBSPOTS: subspots}
    meta = {k: v for k, v in section.meta.items() if v is not None and k != "spatial"}
    if meta:
        uns[META] = meta
    if section.meta.get("spatial"):
        uns["spatial"] = section.meta["spatial"]
    adata = ad.AnnData(X=graph.x.numpy(), uns=uns, layers=layers)
    adata.var_names = section.feature_names
    adata.obs_names = section.spot_names or [f"spot_{i}" for i in range(n)]
    adata.obsp[GRAPH] = adjacency
    if getattr(graph, "pos", None) is not None:
        adata.obsm["spatial"] = graph.pos.numpy()
    return adata


def write_dataset_h5ad(
    section: Section, path: str | Path, layers: dict[str, np.ndarray] | None = None
) -> None:
    """Write a section as one dataset `.h5ad` (atomically), with extra spot × feature `layers`."""
    with atomic_path(path) as tmp:
        dataset_anndata(section, layers).write_h5ad(tmp)


def read_h5ad_checked(path: str | Path) -> ad.AnnData:
    """`anndata.read_h5ad`, with a missing or damaged file reported as `SoScopeInputError`."""
    path = Path(path)
    if not path.is_file():
        raise SoScopeInputError(path, "file not found")
    try:
        with warnings.catch_warnings():  # duplicate names get soscope's own clear error
            warnings.filterwarnings("ignore", message=".*names are not unique")
            return ad.read_h5ad(path)
    except Exception as err:  # h5py and anndata raise many types for a damaged file
        raise SoScopeInputError(path, f"cannot be read as an .h5ad file ({err})") from None


def _required(adata: ad.AnnData, path: Path, where: str, key: str):
    if SUBSPOTS not in adata.uns:
        raise SoScopeInputError(
            path,
            f"is not a soscope dataset (no uns['{SUBSPOTS}']): make one from this AnnData with "
            f"`soscope-preprocess input=anndata input.path={path} out=<folder>`, then train "
            "with data.path=<folder>/dataset.h5ad (in Python: soscope.read_anndata(adata))",
        )
    store = adata.uns.get(SUBSPOTS, {}) if where == "uns" else getattr(adata, where)
    if not hasattr(store, "keys") or key not in store:
        raise SoScopeInputError(path, f"is not a soscope dataset: {where}['{key}'] is missing")
    return store[key]


def _matrix(value, source: str, rows: int | None = None, ncols: int | None = None) -> np.ndarray:
    """A finite float32 matrix from an h5ad field (dense or sparse) with the expected shape."""
    array = value.toarray() if sp.issparse(value) else np.asarray(value)
    array = to_float32(check_matrix(check_numeric(array, source), source, ncols), source)
    if rows is not None and len(array) != rows:
        raise SoScopeInputError(source, f"has {len(array)} rows, expected {rows}")
    return array


def _sub_to_spot(value, source: str, n_subspots: int, n_spots: int) -> np.ndarray:
    """Each subspot's spot, an integer in [0, n_spots); every spot must have a subspot."""
    index = check_numeric(value, source)
    if index.shape != (n_subspots,) or not np.isin(index, np.arange(n_spots)).all():
        raise SoScopeInputError(
            source,
            f"must give each of the {n_subspots} subspots a spot in 0…{n_spots - 1} "
            f"(found shape {index.shape}, values {np.unique(index)[:5].tolist()}…)",
        )
    empty = np.flatnonzero(np.bincount(index.astype(np.int64), minlength=n_spots) == 0)
    if len(empty):
        raise SoScopeInputError(
            source, f"{len(empty)} spots have no subspot (the first: spot {int(empty[0])})"
        )
    return index.astype(np.int64)


def _extras(adata: ad.AnnData, path: Path, n_spots: int, n_subspots: int) -> dict:
    """Spot and subspot positions when the file has them."""
    extra = {}
    if "spatial" in adata.obsm:
        pos = _matrix(adata.obsm["spatial"], f"{path} obsm['spatial']", n_spots, 2)
        extra["pos"] = torch.from_numpy(pos)
    if "positions" in adata.uns[SUBSPOTS]:
        source = f"{path} uns['{SUBSPOTS}']['positions']"
        sub_pos = _matrix(adata.uns[SUBSPOTS]["positions"], source, n_subspots, 2)
        extra["sub_pos"] = torch.from_numpy(sub_pos)
    return extra


def _meta(adata: ad.AnnData) -> dict:
    """The section's `meta`: how it was made, and the scanpy/squidpy `spatial` entry."""
    meta = dict(adata.uns.get(META, {}))
    if "spatial" in adata.uns:
        meta["spatial"] = dict(adata.uns["spatial"])
    return meta


def read_dataset_h5ad(
    path: str | Path, likelihood: str | None = None, protein_dim: int = 0
) -> Section:
    """Read and validate a dataset `.h5ad` into a `Section` (graphs with self-loops added)."""
    path = Path(path)
    return dataset_section(read_h5ad_checked(path), path, likelihood, protein_dim, path.stem)


def dataset_section(
    adata: ad.AnnData,
    path: str | Path = "AnnData",
    likelihood: str | None = None,
    protein_dim: int = 0,
    name: str = "section",
) -> Section:
    """Validate a dataset AnnData (the layout above) into a `Section` named `name` (graphs with
    self-loops added); errors name `path`, where the AnnData came from."""
    x = _matrix(adata.X, f"{path} X")
    n = x.shape[0]
    names = [str(name) for name in adata.var_names]
    check_unique(names, f"{path} var_names", "feature names")
    check_unique([str(name) for name in adata.obs_names], f"{path} obs_names", "spot names")
    uns = f"{path} uns['{SUBSPOTS}']"
    features = _matrix(_required(adata, path, "uns", "features"), f"{uns}['features']")
    m = len(features)
    sub_to_spot = _sub_to_spot(
        _required(adata, path, "uns", "sub_to_spot"), f"{uns}['sub_to_spot']", m, n
    )
    columns = count_columns(likelihood, protein_dim)
    if columns is not None:
        totals = x[:, columns].astype(np.float64) * np.bincount(sub_to_spot, minlength=n)[:, None]
        check_counts(totals, f"{path} (spot totals = X × subspots per spot)", names[columns])
    spot_edges = sp.coo_matrix(_required(adata, path, "obsp", GRAPH))
    spot_rows = np.column_stack([spot_edges.row, spot_edges.col, spot_edges.data])
    graph = make_spot_graph(
        torch.from_numpy(x),
        *edges_with_self_loops(spot_rows, n, f"{path} obsp['{GRAPH}']"),
        torch.from_numpy(features),
        *edges_with_self_loops(
            check_numeric(_required(adata, path, "uns", "edges"), f"{uns}['edges']"),
            m,
            f"{uns}['edges']",
        ),
        torch.from_numpy(sub_to_spot),
        **_extras(adata, path, n, m),
    )
    truth = adata.uns[SUBSPOTS].get("truth")
    if truth is not None:
        truth = _matrix(truth, f"{uns}['truth']", m, x.shape[1])
    meta = _meta(adata)
    image, image_scale = library_image(meta.get("spatial"))
    return Section(
        graph=graph,
        feature_names=names,
        spot_names=list(adata.obs_names),
        truth=truth,
        image=image,
        image_scale=image_scale,
        name=name,
        meta=meta,
    )
