"""Enhanced profiles as AnnData: one row per subspot, in the scanpy/squidpy spatial layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from soscope.data.sample import SpotGraph
from soscope.io_utils import atomic_path


def plain(value: Any) -> Any:
    """A config value AnnData can store in `uns`: dicts and lists of str/int/float/bool."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value if v is not None]
    if isinstance(value, str | int | float | bool | np.number):
        return value
    return str(value)


def _index_within_spot(sub_to_spot: np.ndarray) -> np.ndarray:
    """0 … K_i − 1 for the subspots of each spot, in their order; works for any layout."""
    order = np.argsort(sub_to_spot, kind="stable")
    sorted_spots = sub_to_spot[order]
    starts = np.searchsorted(sorted_spots, sorted_spots, side="left")
    index = np.empty_like(sub_to_spot)
    index[order] = np.arange(len(sub_to_spot)) - starts
    return index


def enhanced_anndata(
    profiles: np.ndarray,
    graph: SpotGraph,
    feature_names: list[str] | None = None,
    spot_names: list[str] | None = None,
    config: dict | None = None,
    layers: dict[str, np.ndarray] | None = None,
) -> ad.AnnData:
    """Subspot profiles with `obs['spot']`, `obs['subspot']`, `obsm['spatial']` and `uns['soscope']`."""
    sub_to_spot = graph.sub_to_spot.numpy()
    n_features = profiles.shape[1]
    spot_names = spot_names or [f"spot_{i}" for i in range(graph.num_spots)]
    spots = np.asarray(spot_names, dtype=object)[sub_to_spot]
    within = _index_within_spot(sub_to_spot)
    obs = pd.DataFrame(
        {
            "spot": pd.Categorical(spots, categories=list(dict.fromkeys(spot_names))),
            "subspot": within,
        },
        index=[f"{s}_{i}" for s, i in zip(spots, within, strict=True)],
    )
    adata = ad.AnnData(
        X=np.asarray(profiles, dtype=np.float32),
        obs=obs,
        var=pd.DataFrame(index=feature_names or [f"f{i}" for i in range(n_features)]),
        layers={k: np.asarray(v, dtype=np.float32) for k, v in (layers or {}).items()},
    )
    if getattr(graph, "sub_pos", None) is not None:
        adata.obsm["spatial"] = graph.sub_pos.numpy().astype(np.float64)
    adata.uns["soscope"] = plain(config or {})
    return adata


def write_h5ad_atomic(adata: ad.AnnData, path: str | Path) -> None:
    """Write an `.h5ad` under a temporary name, then rename it into place."""
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
