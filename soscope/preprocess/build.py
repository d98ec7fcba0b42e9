"""From a `RawSection` to a dataset: features kept, subspots laid out, image features, graphs.

The spot profile x is each spot's raw counts divided by its number of subspots (the
original's `label.npy`); the spot graph A joins lattice neighbours (k nearest without array
coordinates) weighted by profile similarity, the subspot graph W joins neighbouring subspots
weighted by image-feature similarity (`soscope.data.graph`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch_geometric.utils import add_remaining_self_loops

from soscope.data.graph import (
    build_knn_graph,
    build_spot_graph,
    platform_offsets,
)
from soscope.data.sample import Section, make_spot_graph
from soscope.errors import SoScopeInputError
from soscope.preprocess.extractors import Extractor
from soscope.preprocess.feature_cache import cached_features
from soscope.preprocess.image_features import MIN_PATCH, standardize_columns
from soscope.preprocess.layouts import (
    VISIUM_SPOT_FRACTION,
    LatticeFit,
    SubspotLayout,
    assign_cells,
    bayesspace_subspots,
    fine_grid_coords,
    fit_lattice,
    grid_subspots,
    visium_subspots,
)
from soscope.preprocess.readers import RawSection
from soscope.preprocess.selection import select_features
from soscope.preprocess.timing import StepTimer

LAYOUTS = ("visium7", "bayesspace6", "grid", "cells")
VISIUM_RING = (0, 2)  # array offset toward the right-hand neighbour on Visium's lattice


@dataclass(frozen=True)
class LayoutSpec:
    """Which subspots to build (`kind`, one of `LAYOUTS`) and the spots' lattice
    (`visium`: hexagonal, 6 neighbours; `grid`: square, 4).

    `factor` is f of the f × f grid; `cells` a CSV of cell centroids (columns `cell_x`,
    `cell_y` in full-resolution pixels) with `cell_diameter` (default: estimated);
    `spot_diameter` overrides the input's (Visium: `spot_diameter_fullres`).
    """

    kind: str = "visium7"
    lattice: str = "visium"
    factor: int = 2
    cells: str | None = None
    cell_x: str = "x"
    cell_y: str = "y"
    cell_diameter: float | None = None
    spot_diameter: float | None = None


@dataclass
class BuiltDataset:
    """The section ready to write, the raw counts of its spots (N × G) and the run's summary."""

    section: Section
    counts: np.ndarray
    summary: dict[str, Any]


def build_dataset(
    raw: RawSection,
    layout: LayoutSpec,
    extractor: Extractor,
    genes: dict[str, Any] | None = None,
    graph_scale: float = 2.0,
    standardize: bool = True,
    cache_dir: str | Path | None = None,
    timer: StepTimer | None = None,
    name: str = "section",
) -> BuiltDataset:
    """Assemble the dataset `name` of `raw`; `genes` holds `select_features`' settings."""
    timer = timer or StepTimer()
    with timer("select features"):
        chosen = select_features(raw.counts, raw.feature_names, **(genes or {}))
        counts = raw.counts[:, chosen].toarray()
    with timer("layout"):
        fit = None
        if raw.array_coords is not None:
            fit = fit_lattice(raw.array_coords, raw.spot_pos, raw.positions_source)
        subspots = make_layout(layout, raw, fit)
        spots = np.flatnonzero(np.bincount(subspots.sub_to_spot, minlength=len(counts)) > 0)
        subspots = _keep_spots(subspots, spots)
    with timer("image features"):
        sub_feat, cached, patch = subspot_features(extractor, raw, subspots, cache_dir)
        if standardize:
            sub_feat = standardize_columns(sub_feat)
    with timer("graphs"):
        per_spot = np.bincount(subspots.sub_to_spot, minlength=len(spots))
        x = (counts[spots] / per_spot[:, None]).astype(np.float32)
        coords = None if raw.array_coords is None else raw.array_coords[spots]
        spot_graph, spot_rule = spot_edges(coords, raw.spot_pos[spots], x, layout, graph_scale, raw)
        sub_graph, sub_rule = subspot_edges(coords, subspots, sub_feat, layout, graph_scale)
    graph = make_spot_graph(
        torch.from_numpy(x),
        *spot_graph,
        torch.from_numpy(sub_feat),
        *sub_graph,
        torch.from_numpy(subspots.sub_to_spot),
        pos=torch.from_numpy(raw.spot_pos[spots]).float(),
        sub_pos=torch.from_numpy(subspots.sub_pos).float(),
    )
    image = raw.image
    meta = {
        "layout": layout.kind,
        "lattice": layout.lattice,
        "subspots_per_spot": subspots.per_spot,
        "sub_diameter": subspots.sub_diameter,
        "patch_size": patch,
        "spot_diameter": raw.spot_diameter if layout.spot_diameter is None else layout.spot_diameter,
        "frame": raw.frame,
        "counts_source": raw.counts_source,
        "positions_source": raw.positions_source,
        "image": None if image is None else image.source,
        "image_scale": None if image is None else image.scale,
        "image_features": extractor.name,
        "spot_graph": spot_rule,
        "subspot_graph": sub_rule,
    }
    section = Section(
        graph=graph,
        feature_names=[raw.feature_names[i] for i in chosen],
        spot_names=[raw.barcodes[i] for i in spots],
        name=name,
        meta={k: v for k, v in meta.items() if v is not None},
    )
    summary = {
        "spots": len(spots),
        "spots_outside_tissue": raw.dropped_outside_tissue,
        "spots_without_subspots": len(counts) - len(spots),
        "subspots": len(subspots.sub_to_spot),
        "features": len(chosen),
        "features_in_input": len(raw.feature_names),
        "image_feature_dim": int(sub_feat.shape[1]),
        "image_features_cached": cached,
        "spot_edges": int(spot_graph[0].shape[1] - len(spots)),
        "subspot_edges": int(sub_graph[0].shape[1] - len(sub_feat)),
        **meta,
    }
    return BuiltDataset(section, counts[spots], summary)


def make_layout(spec: LayoutSpec, raw: RawSection, fit: LatticeFit | None) -> SubspotLayout:
    """The subspots of `spec.kind` at the raw spots (cells: only spots holding a cell get any)."""
    if spec.kind not in LAYOUTS:
        raise ValueError(f"unknown layout {spec.kind!r}; choose from {LAYOUTS}")
    offsets = platform_offsets(spec.lattice)
    needs_lattice = {"grid": "grid", "bayesspace6": "visium"}.get(spec.kind, spec.lattice)
    if spec.lattice != needs_lattice:
        raise ValueError(f"layout {spec.kind} needs layout.lattice={needs_lattice}")
    if spec.kind in ("bayesspace6", "grid") and fit is None:
        raise SoScopeInputError(
            raw.positions_source,
            f"layout {spec.kind} needs the spots' array coordinates (row, col); none were read",
        )
    if spec.kind == "grid":
        return grid_subspots(raw.spot_pos, fit.steps, spec.factor)
    angle = 0.0 if fit is None else fit.angle(VISIUM_RING)
    if spec.kind == "bayesspace6":
        return bayesspace_subspots(raw.spot_pos, fit.spacing(offsets), angle)
    diameter = spec.spot_diameter or raw.spot_diameter
    if diameter is None and fit is not None:
        diameter = fit.spacing(offsets) * VISIUM_SPOT_FRACTION
    if diameter is None:
        raise SoScopeInputError(
            raw.positions_source, "the spot diameter is unknown: set layout.spot_diameter (pixels)"
        )
    if spec.kind == "visium7":
        return visium_subspots(raw.spot_pos, diameter, angle)
    layout, _ = assign_cells(raw.spot_pos, diameter, _cell_centroids(spec), spec.cell_diameter)
    if len(layout.sub_to_spot) == 0:
        raise SoScopeInputError(str(spec.cells), "no cell centroid lies inside any spot")
    return layout


def subspot_features(
    extractor: Extractor,
    raw: RawSection,
    layout: SubspotLayout,
    cache_dir: str | Path | None,
) -> tuple[np.ndarray, bool, int]:
    """(features (M, D), whether they came from the cache, patch size in image pixels).

    The patch spans one subspot diameter, converted into the image's pixels.
    """
    image = raw.image
    if extractor.needs_image and image is None:
        raise SoScopeInputError(
            raw.positions_source,
            f"image features '{extractor.name}' need an image and none was given: set "
            "input.image=<full-resolution H&E>, or features=none / features=precomputed",
        )
    scale = 1.0 if image is None else image.scale
    patch = max(MIN_PATCH, round(layout.sub_diameter * scale))
    features, cached = cached_features(
        extractor,
        None if image is None else image.pixels,
        layout.sub_pos * scale,
        patch,
        "image" if image is None else image.source,
        cache_dir,
    )
    if not np.isfinite(features).all():
        raise SoScopeInputError(extractor.name, "image features contain NaN or inf")
    return features, cached, patch


def spot_edges(
    coords: np.ndarray | None,
    pos: np.ndarray,
    x: np.ndarray,
    layout: LayoutSpec,
    scale: float,
    raw: RawSection,
) -> tuple[tuple[torch.Tensor, torch.Tensor], str]:
    """Spot graph A (self-loops added) and its rule in words; an edgeless graph is an error."""
    k = len(platform_offsets(layout.lattice))
    if coords is not None:
        edges = build_spot_graph(coords, x, layout.lattice, scale, raw.positions_source)
        rule = f"{layout.lattice} lattice ({k} neighbours)"
    else:
        edges = build_knn_graph(pos, x, k, scale)
        rule = f"{k} nearest neighbours"
    if edges[0].shape[1] == 0:
        raise SoScopeInputError(
            raw.positions_source,
            f"no two spots are neighbours on the {layout.lattice} lattice; does "
            f"layout.lattice={layout.lattice} match this platform's array coordinates?",
        )
    return _with_self_loops(edges, len(x)), rule


def subspot_edges(
    coords: np.ndarray | None,
    layout: SubspotLayout,
    sub_feat: np.ndarray,
    spec: LayoutSpec,
    scale: float,
) -> tuple[tuple[torch.Tensor, torch.Tensor], str]:
    """Subspot graph W (self-loops added): the fine square lattice of a grid layout, else the
    platform's number of nearest subspots."""
    if spec.kind == "grid":
        fine = fine_grid_coords(coords, spec.factor)
        edges = build_spot_graph(fine, sub_feat, "grid", scale)
        rule = f"{spec.factor}×-finer grid lattice (4 neighbours)"
    else:
        k = len(platform_offsets(spec.lattice))
        edges = build_knn_graph(layout.sub_pos, sub_feat, k, scale)
        rule = f"{k} nearest neighbours"
    return _with_self_loops(edges, len(sub_feat)), rule


def _with_self_loops(
    edges: tuple[torch.Tensor, torch.Tensor], n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    return add_remaining_self_loops(*edges, fill_value=1.0, num_nodes=n)


def _keep_spots(layout: SubspotLayout, spots: np.ndarray) -> SubspotLayout:
    """Renumber parent spots after dropping spots without subspots (`spots`: those kept)."""
    new_index = np.full(int(spots.max(initial=-1)) + 1, -1, dtype=np.int64)
    new_index[spots] = np.arange(len(spots))
    return SubspotLayout(
        layout.sub_pos, new_index[layout.sub_to_spot], layout.sub_diameter, layout.per_spot
    )


def _cell_centroids(spec: LayoutSpec) -> np.ndarray:
    if spec.cells is None:
        raise SoScopeInputError("layout.cells", "layout cells needs a CSV of cell centroids")
    path = Path(spec.cells)
    if not path.is_file():
        raise SoScopeInputError(path, "cell centroid file not found")
    try:
        table = pd.read_csv(path)
        xy = table[[spec.cell_x, spec.cell_y]].to_numpy(dtype=np.float64)
    except (KeyError, ValueError, OSError) as err:
        raise SoScopeInputError(
            path, f"expected a CSV with numeric columns {spec.cell_x}, {spec.cell_y} ({err})"
        ) from None
    if not np.isfinite(xy).all():
        raise SoScopeInputError(path, "cell centroids contain NaN or inf")
    return xy
