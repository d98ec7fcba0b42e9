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
    PLATFORM_OFFSETS,
    build_knn_graph,
    build_spot_graph,
    platform_offsets,
)
from soscope.data.sample import Section, SpotGraph, make_spot_graph
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


@dataclass(frozen=True)
class GivenCells:
    """Cell centroids as given (file order) and which of them became subspots, in layout order:
    features computed elsewhere come one row per given cell and are picked through `kept`."""

    centroids: np.ndarray
    kept: np.ndarray


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
    with timer("layout"):
        subspots, spots, cells = lay_out(layout, raw)
    with timer("image features"):
        sub_feat, cached, patch = subspot_features(extractor, raw, subspots, cells, cache_dir)
        if standardize:
            sub_feat = standardize_columns(sub_feat)
    counts = raw.counts[spots][:, chosen].toarray()
    with timer("graphs"):
        graph, rules = assemble_graph(raw, spots, counts, subspots, sub_feat, layout, graph_scale)
    meta = {
        "layout": layout.kind,
        "lattice": layout.lattice,
        "subspots_per_spot": subspots.per_spot,
        "sub_diameter": subspots.sub_diameter,
        "patch_size": patch,
        "spot_diameter": layout.spot_diameter or raw.spot_diameter,
        "frame": raw.frame,
        "counts_source": raw.counts_source,
        "positions_source": raw.positions_source,
        "image": None if raw.image is None else raw.image.source,
        "image_scale": None if raw.image is None else raw.image.scale,
        "image_features": extractor.name,
        **rules,
    }
    section = Section(
        graph=graph,
        feature_names=[raw.feature_names[i] for i in chosen],
        spot_names=[raw.barcodes[i] for i in spots],
        name=name,
        meta={**{k: v for k, v in meta.items() if v is not None}, "spatial": raw.spatial},
    )
    summary = {
        "spots": len(spots),
        "spots_outside_tissue": raw.dropped_outside_tissue,
        "spots_without_subspots": len(raw.barcodes) - len(spots),
        "subspots": graph.num_subspots,
        "features": len(chosen),
        "features_in_input": len(raw.feature_names),
        "image_feature_dim": int(sub_feat.shape[1]),
        "image_features_cached": cached,
        "spot_edges": int(graph.edge_index.shape[1] - graph.num_spots),  # less the self-loops
        "subspot_edges": int(graph.sub_edge_index.shape[1] - graph.num_subspots),
        **meta,
    }
    return BuiltDataset(section, counts, summary)


def lay_out(
    spec: LayoutSpec, raw: RawSection
) -> tuple[SubspotLayout, np.ndarray, GivenCells | None]:
    """The subspots, numbered by the spots kept (`spots`: indices into `raw`; only cell
    layouts leave spots out, those that hold no cell), and the given cells if any."""
    fit = None
    if raw.array_coords is not None:
        fit = fit_lattice(raw.array_coords, raw.spot_pos, raw.positions_source)
    subspots, cells = make_layout(spec, raw, fit)
    spots = np.flatnonzero(np.bincount(subspots.sub_to_spot, minlength=len(raw.spot_pos)) > 0)
    new_index = np.full(len(raw.spot_pos), -1, dtype=np.int64)
    new_index[spots] = np.arange(len(spots))
    renumbered = new_index[subspots.sub_to_spot]
    kept = SubspotLayout(subspots.sub_pos, renumbered, subspots.sub_diameter, subspots.per_spot)
    return kept, spots, cells


def assemble_graph(
    raw: RawSection,
    spots: np.ndarray,
    counts: np.ndarray,
    subspots: SubspotLayout,
    sub_feat: np.ndarray,
    spec: LayoutSpec,
    scale: float,
) -> tuple[SpotGraph, dict[str, str]]:
    """The graph sample: x = counts / subspots per spot, graphs A and W with self-loops; and
    the rule each graph followed, in words."""
    per_spot = np.bincount(subspots.sub_to_spot, minlength=len(spots))
    x = (counts / per_spot[:, None]).astype(np.float32)
    coords = None if raw.array_coords is None else raw.array_coords[spots]
    pos = raw.spot_pos[spots]
    spot_graph, spot_rule = spot_edges(coords, pos, x, spec, scale, raw.positions_source)
    sub_graph, sub_rule = subspot_edges(coords, subspots, sub_feat, spec, scale)
    graph = make_spot_graph(
        torch.from_numpy(x),
        *spot_graph,
        torch.from_numpy(sub_feat),
        *sub_graph,
        torch.from_numpy(subspots.sub_to_spot),
        pos=torch.from_numpy(pos).float(),
        sub_pos=torch.from_numpy(subspots.sub_pos).float(),
    )
    return graph, {"spot_graph": spot_rule, "subspot_graph": sub_rule}


def make_layout(
    spec: LayoutSpec, raw: RawSection, fit: LatticeFit | None
) -> tuple[SubspotLayout, GivenCells | None]:
    """The subspots of `spec.kind` at the raw spots (cells: only spots holding a cell get any),
    and for `cells` the centroids as given."""
    if spec.kind not in LAYOUTS:
        raise SoScopeInputError(
            "layout.kind", f"unknown layout {spec.kind!r}; choose from {LAYOUTS}"
        )
    needs_lattice = {"grid": "grid", "bayesspace6": "visium"}.get(spec.kind, spec.lattice)
    if spec.lattice != needs_lattice or spec.lattice not in PLATFORM_OFFSETS:
        raise SoScopeInputError(
            "layout.lattice", f"layout {spec.kind} needs layout.lattice={needs_lattice}"
        )
    offsets = platform_offsets(spec.lattice)
    if spec.kind in ("bayesspace6", "grid") and fit is None:
        raise SoScopeInputError(
            raw.positions_source,
            f"layout {spec.kind} needs the spots' array coordinates (row, col); none were read",
        )
    if spec.kind == "grid":
        return grid_subspots(raw.spot_pos, fit.steps, spec.factor), None
    angle = 0.0 if fit is None else fit.angle(VISIUM_RING)
    if spec.kind == "bayesspace6":
        return bayesspace_subspots(raw.spot_pos, fit.spacing(offsets), angle), None
    diameter = spec.spot_diameter or raw.spot_diameter
    if diameter is None and fit is not None:
        diameter = fit.spacing(offsets) * VISIUM_SPOT_FRACTION
    if diameter is None:
        raise SoScopeInputError(
            raw.positions_source, "the spot diameter is unknown: set layout.spot_diameter (pixels)"
        )
    if spec.kind == "visium7":
        return visium_subspots(raw.spot_pos, diameter, angle), None
    centroids = _cell_centroids(spec)
    layout, kept = assign_cells(raw.spot_pos, diameter, centroids, spec.cell_diameter)
    if len(kept) == 0:
        raise SoScopeInputError(str(spec.cells), "no cell centroid lies inside any spot")
    return layout, GivenCells(centroids, kept)


def subspot_features(
    extractor: Extractor,
    raw: RawSection,
    layout: SubspotLayout,
    cells: GivenCells | None,
    cache_dir: str | Path | None,
) -> tuple[np.ndarray, bool, int]:
    """(features (M, D), whether they came from the cache, patch size in image pixels).

    The patch spans one subspot diameter, converted into the image's pixels. Extractors that
    read no image (precomputed) are asked for every given cell and the kept rows picked.
    """
    image = raw.image
    if extractor.needs_image and image is None:
        raise SoScopeInputError(
            raw.image_search,
            f"no H&E image found, and image features '{extractor.name}' need one: give "
            "input.image=<the H&E image> (input.image_scale=<its pixels per full-resolution "
            "pixel>), or features=none / features=precomputed",
        )
    scale = 1.0 if image is None else image.scale
    patch = max(MIN_PATCH, round(layout.sub_diameter * scale))
    per_given_cell = cells is not None and not extractor.needs_image
    features, cached = cached_features(
        extractor,
        None if image is None else image.pixels,
        (cells.centroids if per_given_cell else layout.sub_pos) * scale,
        patch,
        "image" if image is None else image.source,
        cache_dir,
    )
    if per_given_cell:
        features = features[cells.kept]
    if not np.isfinite(features).all():
        raise SoScopeInputError(extractor.name, "image features contain NaN or inf")
    return features, cached, patch


def spot_edges(
    coords: np.ndarray | None,
    pos: np.ndarray,
    x: np.ndarray,
    layout: LayoutSpec,
    scale: float,
    source: str,
) -> tuple[tuple[torch.Tensor, torch.Tensor], str]:
    """Spot graph A (self-loops added) and its rule in words; an edgeless graph is an error."""
    k = len(platform_offsets(layout.lattice))
    if coords is not None:
        edges = build_spot_graph(coords, x, layout.lattice, scale, source)
        rule = f"{layout.lattice} lattice ({k} neighbours)"
    else:
        edges = build_knn_graph(pos, x, k, scale)
        rule = f"{k} nearest neighbours"
    if edges[0].shape[1] == 0:
        raise SoScopeInputError(
            source,
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
