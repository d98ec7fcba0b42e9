"""Spatial tiles of a section for mini-batch training and inference, linear in spots.

A tile owns a square patch of spots. Its batch holds those spots plus a halo large enough that
every output the tile's loss reads is exactly what the whole section would give:

- the decoded subspots are the tile's own subspots and the far ends of their subspot-graph
  edges; their parent spots need exact latents, and with the spatial context
  (`context_hops` = 1) so do those spots' graph neighbours (the share prior needs only their
  profiles, which the encoder's halo around the parent spots already holds);
- the spot-graph loss reads the latents at both ends of the own spots' edges;
- an encoder of `encoder_layers` message-passing layers is exact on a set of spots when the
  batch has every spot within that many hops of it (and all edges among them).

So the halo is the encoder's depth around what the losses read: 3 + 1 hops (plus the reach of
the subspot graph's edges) for soScope with `subspot_context=interp`, 3 + 1 for the VGAE. The
loss of a tile covers its own spots, own subspots and the edges that start at them, each
normalised by section totals, so the mean over an epoch's tiles is the full-graph loss; only
the negatives of the graph losses differ, drawn from the pairs the tile holds exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from soscope.data.sample import SpotGraph, spot_spacing, subspot_counts

BATCHING_MODES = ("auto", "full", "tiles")
# `auto` batching trains on the whole section while its subspot × feature values number at most
# this (3,000 Visium spots × 2,000 genes: 42 million, a 2.4 GiB full-graph step), else in tiles
# whose own spots hold at most this many each (their halos add some).
AUTO_FULL_ENTRIES = 1 << 26


def resolve_batching(
    batching: str, tile_size: int, n_spots: int, n_subspots: int, n_features: int
) -> tuple[str, int]:
    """(`full` or `tiles`, spots a tile) for a section of that size: `auto` picks full-graph
    steps up to `AUTO_FULL_ENTRIES` subspot × feature values, else tiles of at most
    `tile_size` spots whose own values number at most that; `full` and `tiles` stay as
    they are."""
    if batching not in BATCHING_MODES:
        raise ValueError(f"unknown batching {batching!r}; choose from {BATCHING_MODES}")
    values = n_subspots * n_features
    if batching != "auto":
        return batching, tile_size
    if values <= AUTO_FULL_ENTRIES:
        return "full", tile_size
    fitting = int(AUTO_FULL_ENTRIES * n_spots / values)
    return "tiles", max(1, min(tile_size, fitting))


@dataclass(frozen=True)
class Tile:
    """Global indices of a tile's spots and subspots and its edges relabelled to them."""

    spots: Tensor  # spots of the batch (own, halo), global ids
    own: Tensor  # bool per batch spot: scored here
    exact: Tensor  # bool per batch spot: latent exact here
    subspots: Tensor  # decoded subspots, global ids
    sub_own: Tensor  # bool per decoded subspot: scored here
    edge_index: Tensor  # spot edges among the batch spots, local ids
    edge_ids: Tensor
    sub_edge_index: Tensor  # subspot edges from own subspots, local ids
    sub_edge_ids: Tensor


def spots_of(batch: SpotGraph) -> Tensor | slice:
    """Section ids of a batch's spots (all of them, in order, for a whole section)."""
    ids = getattr(batch, "global_spot", None)
    return slice(None) if ids is None else ids


def own_rows(batch: SpotGraph, level: str) -> tuple[Tensor | slice, Tensor | slice]:
    """(section ids, batch rows) of the spots or subspots a batch owns: its outputs to keep."""
    own, ids = (
        (getattr(batch, "own", None), getattr(batch, "global_spot", None))
        if level == "spot"
        else (getattr(batch, "sub_own", None), getattr(batch, "global_sub", None))
    )
    if own is None:
        return slice(None), slice(None)
    return ids[own], own


def tile_cells(pos: np.ndarray | None, n_spots: int, tile_size: int) -> list[np.ndarray]:
    """Own spots of each tile: squares of about `tile_size` spots over the positions (runs of
    consecutive spots without positions); empty squares are dropped."""
    if tile_size <= 0:
        raise ValueError(f"data.tile_size must be a positive number of spots, got {tile_size}")
    if pos is None:
        return [np.arange(s, min(s + tile_size, n_spots)) for s in range(0, n_spots, tile_size)]
    low, high = pos.min(0), pos.max(0)
    extent = np.maximum(high - low, 1e-9)
    side = np.sqrt(extent.prod() * tile_size / n_spots)
    shape = np.maximum(np.ceil(extent / side), 1).astype(np.int64)
    cell = np.minimum(((pos - low) / side).astype(np.int64), shape - 1)
    cell_id = cell[:, 0] * shape[1] + cell[:, 1]
    order = np.argsort(cell_id, kind="stable")
    bounds = np.flatnonzero(np.diff(cell_id[order])) + 1
    return np.split(order, bounds)


class _Adjacency:
    """Rows → (item id, far end) lists in CSR form, for look-ups proportional to what they touch."""

    def __init__(self, rows: np.ndarray, ends: np.ndarray, n_rows: int) -> None:
        order = np.argsort(rows, kind="stable")
        self.ids, self.ends = order, ends[order]
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Item ids and far ends of all entries of `rows`."""
        starts, lengths = self.indptr[rows], np.diff(self.indptr)[rows]
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        offsets = offsets + np.arange(int(lengths.sum()))
        return self.ids[offsets], self.ends[offsets]


class _SectionIndex:
    """The section's adjacency lists and scratch maps from global to tile-local ids."""

    def __init__(self, graph: SpotGraph) -> None:
        n, m = graph.num_nodes, graph.num_subspots
        self.edge_index = graph.edge_index.numpy()
        self.sub_edge_index = graph.sub_edge_index.numpy()
        src, dst = self.edge_index
        sub_src, sub_dst = self.sub_edge_index
        self.parent = graph.sub_to_spot.numpy()
        self.into = _Adjacency(dst, src, n)
        self.out_of = _Adjacency(src, dst, n)
        self.sub_out = _Adjacency(sub_src, sub_dst, m)
        self.children = _Adjacency(self.parent, np.arange(m), n)
        self.local = np.full(n, -1, dtype=np.int64)
        self.sub_local = np.full(m, -1, dtype=np.int64)

    def sources(self, spots: np.ndarray, hops: int) -> np.ndarray:
        """`spots` and every spot with a path of at most `hops` edges into them (sorted)."""
        for _ in range(hops):
            spots = np.union1d(spots, self.into.gather(spots)[1])
        return spots


def build_tile(
    index: _SectionIndex, own: np.ndarray, encoder_layers: int, context_hops: int
) -> Tile:
    """The tile that owns the spots `own`, with the halo its losses need (module docstring)."""
    own_subs = index.children.gather(own)[1]
    sub_edges, sub_ends = index.sub_out.gather(own_subs)
    decoded_parents = np.union1d(own, index.parent[sub_ends])
    spot_ends = index.out_of.gather(own)[1]
    exact = np.union1d(index.sources(decoded_parents, context_hops), spot_ends)
    spots = index.sources(exact, encoder_layers)
    index.local[spots] = np.arange(len(spots))
    edges, edge_src = index.into.gather(spots)
    edges = np.sort(edges[index.local[edge_src] >= 0])
    subspots = np.sort(index.children.gather(decoded_parents)[1])
    index.sub_local[subspots] = np.arange(len(subspots))
    edge_index = index.local[index.edge_index[:, edges]]
    sub_edge_index = index.sub_local[index.sub_edge_index[:, sub_edges]]
    index.local[spots] = -1
    index.sub_local[subspots] = -1
    return Tile(
        spots=torch.from_numpy(spots),
        own=torch.from_numpy(np.isin(spots, own)),
        exact=torch.from_numpy(np.isin(spots, exact)),
        subspots=torch.from_numpy(subspots),
        sub_own=torch.from_numpy(np.isin(subspots, own_subs)),
        edge_index=torch.from_numpy(edge_index),
        edge_ids=torch.from_numpy(edges),
        sub_edge_index=torch.from_numpy(sub_edge_index),
        sub_edge_ids=torch.from_numpy(sub_edges),
    )


def make_tiles(
    graph: SpotGraph, tile_size: int, encoder_layers: int, context_hops: int
) -> list[Tile]:
    """Cut `graph` into spatial tiles of about `tile_size` own spots each, with exact halos."""
    pos = getattr(graph, "pos", None)
    cells = tile_cells(None if pos is None else pos.numpy(), graph.num_nodes, tile_size)
    index = _SectionIndex(graph)
    return [build_tile(index, own, encoder_layers, context_hops) for own in cells]


SPOT_FIELDS = ("x", "pos", "val_mask", "x_true")
SUBSPOT_FIELDS = ("sub_feat", "sub_pos")


class TiledSection(Dataset):
    """A section served tile by tile: item i is the batch of tile i (`tile_graph`)."""

    def __init__(
        self, graph: SpotGraph, tile_size: int, encoder_layers: int, context_hops: int
    ) -> None:
        self.graph = graph
        self.tiles = make_tiles(graph, tile_size, encoder_layers, context_hops)
        self.counts = subspot_counts(graph)
        self.totals = section_totals(graph, len(self.tiles))
        if getattr(graph, "pos", None) is not None:  # the kernels' spot spacing: the section's
            self.totals["spacing"] = spot_spacing(graph.pos.float(), graph.edge_index)

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> SpotGraph:
        return tile_graph(self.graph, self.tiles[index], self.counts, self.totals)


class TilesOnDevice:
    """A section's tiles moved to `device` one at a time as they are iterated (again and again:
    inference passes over them once for the latents, once for the subspots)."""

    def __init__(self, tiles: TiledSection, device: torch.device) -> None:
        self.tiles, self.device = tiles, device

    def __iter__(self) -> Iterator[SpotGraph]:
        return (tile.to(self.device) for tile in self.tiles)

    def __len__(self) -> int:
        return len(self.tiles)


def on_device(
    tiles: TiledSection | None, device: torch.device
) -> TiledSection | TilesOnDevice | None:
    """`tiles` served on `device` (None stays None: the whole section is one batch)."""
    return None if tiles is None else TilesOnDevice(tiles, device)


def tile_graph(graph: SpotGraph, tile: Tile, counts: Tensor, totals: dict) -> SpotGraph:
    """The batch of one tile: its spots, decoded subspots and edges, with the scope fields
    (`own`, `exact`, `sub_own`, section `totals`) that make its loss a share of the section's."""
    batch = SpotGraph(
        edge_index=tile.edge_index,
        edge_weight=graph.edge_weight[tile.edge_ids],
        sub_edge_index=tile.sub_edge_index,
        sub_edge_weight=graph.sub_edge_weight[tile.sub_edge_ids],
        sub_to_spot=torch.searchsorted(tile.spots, graph.sub_to_spot[tile.subspots]),
        num_nodes=len(tile.spots),
        spot_k=counts[tile.spots],
        own=tile.own,
        exact=tile.exact,
        sub_own=tile.sub_own,
        global_spot=tile.spots,
        global_sub=tile.subspots,
        **totals,
    )
    for key in SPOT_FIELDS:
        if getattr(graph, key, None) is not None:
            batch[key] = graph[key][tile.spots]
    for key in SUBSPOT_FIELDS:
        if getattr(graph, key, None) is not None:
            batch[key] = graph[key][tile.subspots]
    return batch


def section_totals(graph: SpotGraph, n_tiles: int) -> dict[str, Any]:
    """The section-wide sizes a tile's loss is normalised by (`soscope.training.scope`) and
    its mean profile over the training spots (`level`, the image path's starting point)."""
    val_mask = getattr(graph, "val_mask", None)
    n = graph.num_nodes
    train_x = graph.x if val_mask is None else graph.x[~val_mask]
    return {
        "section_spots": n,
        "section_train_spots": n if val_mask is None else int((~val_mask).sum()),
        "section_subspots": graph.num_subspots,
        "section_sub_weight": float(graph.sub_edge_weight.sum()),
        "n_tiles": n_tiles,
        "level": train_x.float().mean(0),
    }
