"""A whole dataset in one `.h5ad`: spots as rows, subspots and both graphs alongside.

Layout (N spots, M subspots): `X` the spot profiles x (per-subspot mean), `var_names` the
features, `obs_names` the spots, `obsm['spatial']` spot positions (full-resolution pixels),
`obsp['soscope_graph']` the spot graph A, and `uns['soscope_subspots']` with `features`
(M×D), `sub_to_spot` (M), `edges` (E'×3 rows i, j, w of the subspot graph W) and optionally
`positions` (M×2) and `truth` (M×G). Graphs are stored without self-loops. Optional:
`layers` (e.g. `counts`, the raw spot counts from preprocessing) and `uns['soscope_meta']`, the
section's `meta` (how it was made: layout, image scale, sources).
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from soscope.data.reference_io import count_columns, edge_rows, edges_with_self_loops
from soscope.data.sample import Section, make_spot_graph
from soscope.data.validate import check_counts, check_matrix, to_float32
from soscope.errors import SoScopeInputError
from soscope.io_utils import atomic_path

GRAPH, SUBSPOTS, META = "soscope_graph", "soscope_subspots", "soscope_meta"


def write_dataset_h5ad(
    section: Section, path: str | Path, layers: dict[str, np.ndarray] | None = None
) -> None:
    """Write a section as one dataset `.h5ad` (atomically), with extra spot × feature `layers`."""
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
    if section.meta:
        uns[META] = {k: v for k, v in section.meta.items() if v is not None}
    adata = ad.AnnData(X=graph.x.numpy(), uns=uns, layers=layers)
    adata.var_names = section.feature_names
    adata.obs_names = section.spot_names or [f"spot_{i}" for i in range(n)]
    adata.obsp[GRAPH] = adjacency
    if getattr(graph, "pos", None) is not None:
        adata.obsm["spatial"] = graph.pos.numpy()
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)


def read_h5ad_checked(path: str | Path) -> ad.AnnData:
    """`anndata.read_h5ad`, with a missing or damaged file reported as `SoScopeInputError`."""
    path = Path(path)
    if not path.is_file():
        raise SoScopeInputError(path, "file not found")
    try:
        return ad.read_h5ad(path)
    except Exception as err:  # h5py and anndata raise many types for a damaged file
        raise SoScopeInputError(path, f"cannot be read as an .h5ad file ({err})") from None


def _required(adata: ad.AnnData, path: Path, where: str, key: str):
    store = adata.uns.get(SUBSPOTS, {}) if where == "uns" else getattr(adata, where)
    if key not in store:
        raise SoScopeInputError(path, f"is not a soscope dataset: {where}['{key}'] is missing")
    return store[key]


def read_dataset_h5ad(
    path: str | Path, likelihood: str | None = None, protein_dim: int = 0
) -> Section:
    """Read and validate a dataset `.h5ad` into a `Section` (graphs with self-loops added)."""
    path = Path(path)
    adata = read_h5ad_checked(path)
    x = to_float32(check_matrix(np.asarray(sp.csr_matrix(adata.X).todense()), f"{path} X"), path)
    n = x.shape[0]
    features = np.asarray(_required(adata, path, "uns", "features"))
    features = to_float32(check_matrix(features, f"{path} features"), path)
    sub_to_spot = np.asarray(_required(adata, path, "uns", "sub_to_spot"))
    if sub_to_spot.shape != (len(features),) or not np.isin(sub_to_spot, np.arange(n)).all():
        raise SoScopeInputError(
            path, f"sub_to_spot must give each of the {len(features)} subspots a spot in 0…{n - 1}"
        )
    names = list(adata.var_names)
    columns = count_columns(likelihood, protein_dim)
    if columns is not None:
        totals = x[:, columns].astype(np.float64) * np.bincount(sub_to_spot, minlength=n)[:, None]
        check_counts(totals, f"{path} (spot totals = X × subspots per spot)", names[columns])
    spot_edges = sp.coo_matrix(_required(adata, path, "obsp", GRAPH))
    spot_rows = np.column_stack([spot_edges.row, spot_edges.col, spot_edges.data])
    extra = {}
    if "spatial" in adata.obsm:
        extra["pos"] = torch.from_numpy(to_float32(np.asarray(adata.obsm["spatial"]), path))
    if "positions" in adata.uns[SUBSPOTS]:
        sub_pos = np.asarray(adata.uns[SUBSPOTS]["positions"])
        extra["sub_pos"] = torch.from_numpy(to_float32(check_matrix(sub_pos, path, 2), path))
    graph = make_spot_graph(
        torch.from_numpy(x),
        *edges_with_self_loops(spot_rows, n, f"{path} obsp['{GRAPH}']"),
        torch.from_numpy(features),
        *edges_with_self_loops(
            _required(adata, path, "uns", "edges"), len(features), f"{path} edges"
        ),
        torch.from_numpy(sub_to_spot.astype(np.int64)),
        **extra,
    )
    truth = adata.uns[SUBSPOTS].get("truth")
    return Section(
        graph=graph,
        feature_names=names,
        spot_names=list(adata.obs_names),
        truth=None if truth is None else np.asarray(truth),
        name=path.stem,
        meta=dict(adata.uns.get(META, {})),
    )
