"""Enhanced profiles as AnnData: one row per subspot, in the scanpy/squidpy spatial layout."""

from __future__ import annotations

import copy
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

from soscope.data.matrices import Matrix, as_float32
from soscope.data.reference_io import default_feature_names
from soscope.data.sample import SpotGraph
from soscope.io_utils import atomic_path

SCALARS = (str, int, float, bool, np.number, np.bool_)
VERSIONED = ("soscope", "torch", "torch-geometric", "lightning", "hydra-core", "anndata", "numpy")


def plain(value: Any) -> Any:
    """A config value that AnnData can write into `uns`.

    Dicts keep their (string) keys, None becomes "None", tuples become lists, a list of
    scalars stays a list, and a list holding lists or dicts becomes a dict keyed "0", "1", …
    (h5ad cannot store ragged or mixed lists); numpy arrays pass, anything else becomes str.
    """
    if value is None:
        return "None"
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [plain(item) for item in value]
        if all(isinstance(item, SCALARS) for item in items):
            return items
        return {str(i): item for i, item in enumerate(items)}
    if isinstance(value, (*SCALARS, np.ndarray)):
        return value
    return str(value)


def index_within_spot(sub_to_spot: np.ndarray) -> np.ndarray:
    """0 … K_i − 1 for the subspots of each spot, in their row order; works for any layout."""
    order = np.argsort(sub_to_spot, kind="stable")
    sorted_spots = sub_to_spot[order]
    first_of_spot = np.searchsorted(sorted_spots, sorted_spots, side="left")
    index = np.empty(len(sub_to_spot), dtype=np.int64)
    index[order] = np.arange(len(sub_to_spot)) - first_of_spot
    return index


def package_versions() -> dict[str, str]:
    """Python's and the main packages' versions, recorded with every output for reproduction."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


IMAGE_KEYS = ("hires", "lowres")  # squidpy's names of a library's images, best first


def spatial_library(
    sub_diameter: float,
    carried: dict | None = None,
    image: np.ndarray | None = None,
    library_id: str = "section",
    image_scale: float = 1.0,
) -> dict[str, dict]:
    """`uns['spatial']` for the subspots: the input's libraries (images, scale factors) carried
    over, or one library `library_id` holding `image` as `hires` at `image_scale` (its pixels
    per full-resolution pixel); every library's `spot_diameter_fullres` becomes the subspot
    diameter."""
    if carried:
        libraries = copy.deepcopy(dict(carried))
    else:
        images = {} if image is None else {"hires": np.asarray(image)}
        scale = {"tissue_hires_scalef": float(image_scale)}
        libraries = {library_id: {"images": images, "scalefactors": scale}}
    for library in libraries.values():
        library.setdefault("scalefactors", {})["spot_diameter_fullres"] = float(sub_diameter)
    return libraries


def library_image(spatial: dict | None) -> tuple[np.ndarray | None, float]:
    """The best image of a `uns['spatial']` entry (hires, else lowres, of its first library
    that has one) and its scale factor; (None, 1.0) without one."""
    for library in (spatial or {}).values():
        images, factors = library.get("images", {}), library.get("scalefactors", {})
        for key in IMAGE_KEYS:
            if key in images and f"tissue_{key}_scalef" in factors:
                return np.asarray(images[key]), float(factors[f"tissue_{key}_scalef"])
    return None, 1.0


def _check_length(what: str, found: int, expected: int) -> None:
    if found != expected:
        raise ValueError(f"{what}: expected {expected}, found {found}")


def enhanced_anndata(
    profiles: Matrix,
    graph: SpotGraph,
    feature_names: list[str] | None = None,
    spot_names: list[str] | None = None,
    config: dict | None = None,
    layers: dict[str, Matrix] | None = None,
    spatial: dict[str, dict] | None = None,
) -> ad.AnnData:
    """One row per subspot: `X` the enhanced profiles (float32; dense, or CSR as given),
    `obs['spot']` its parent spot (categorical), `obs['subspot']` its index within the spot,
    `obsm['spatial']` its position (when the graph has `sub_pos`), `uns['soscope']` the run's
    `config` and the package `versions`, `uns['spatial']` as given (see `spatial_library`),
    `layers` as given (dense or CSR).

    Feature names default to `graph.feature_names` when set, else `f0`, `f1`, …; spot names
    to `spot_0`, `spot_1`, ….
    """
    sub_to_spot = graph.sub_to_spot.cpu().numpy()
    profiles = as_float32(profiles)
    if feature_names is None:
        feature_names = getattr(graph, "feature_names", None)
    if feature_names is None:
        feature_names = default_feature_names(profiles.shape[1])
    if spot_names is None:
        spot_names = [f"spot_{i}" for i in range(graph.num_spots)]
    _check_length("profile rows (one per subspot)", profiles.shape[0], len(sub_to_spot))
    _check_length("feature names (one per profile column)", len(feature_names), profiles.shape[1])
    _check_length("spot names (one per spot)", len(spot_names), graph.num_spots)

    spots = np.asarray(spot_names, dtype=str)[sub_to_spot]
    within = index_within_spot(sub_to_spot)
    obs = pd.DataFrame(
        {
            "spot": pd.Categorical(spots, categories=pd.unique(np.asarray(spot_names, dtype=str))),
            "subspot": within,
        },
        index=[f"{spot}_{i}" for spot, i in zip(spots, within, strict=True)],
    )
    adata = ad.AnnData(
        X=profiles,
        obs=obs,
        var=pd.DataFrame(index=[str(name) for name in feature_names]),
    )
    for name, values in (layers or {}).items():
        values = values if sparse.issparse(values) else np.asarray(values)
        _check_length(f"rows of layer {name!r}", values.shape[0], profiles.shape[0])
        adata.layers[name] = values
    if getattr(graph, "sub_pos", None) is not None:
        adata.obsm["spatial"] = graph.sub_pos.detach().cpu().numpy().astype(np.float64)
    if spatial is not None:
        adata.uns["spatial"] = spatial
    adata.uns["soscope"] = {"config": plain(config or {}), "versions": package_versions()}
    return adata


def write_h5ad_atomic(adata: ad.AnnData, path: str | Path) -> None:
    """Write an `.h5ad` under a temporary name beside `path`, then rename it into place."""
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
