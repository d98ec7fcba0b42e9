"""The aggregation benchmark's data: fine-resolution units grouped into pseudo-spots.

Square grids group k×k blocks; the Visium hexagonal lattice groups a centre unit with its six
neighbours. Only complete groups are kept, so every pseudo-spot has K units and the units keep
their measured profiles as the ground truth the enhancement is scored against.
"""

from __future__ import annotations

import numpy as np

from soscope.data.graph import lattice_edges, platform_offsets
from soscope.data.sample import Section
from soscope.datasets.synthetic import assemble_graph
from soscope.evaluate.metrics import median_spacing
from soscope.preprocess.layouts import SubspotLayout

PLATFORMS = ("grid", "visium")
HEX_GROUP = 7  # a centre unit and its six neighbours


def grid_blocks(array_coords: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Complete k×k blocks of a square lattice: unit indices (N×k², row-major) and block (row, col).

    Blocks are (row // k, col // k) of the lattice's own numbering, so they do not move with
    the tissue's first row or column (on the skin data these are the blocks of its published
    equal-split floors, 0.650 at 2×2 and 0.557 at 3×3); the block lattice is itself square.
    """
    if k < 1:
        raise ValueError(f"the block side k must be a positive integer, got {k}")
    block, within = np.divmod(np.asarray(array_coords, dtype=np.int64), k)
    key = np.unique(block, axis=0, return_inverse=True)[1].ravel()
    order = np.lexsort((within[:, 1], within[:, 0], key))  # by block, then row-major inside
    _, first, size = np.unique(key[order], return_index=True, return_counts=True)
    complete = size == k * k
    groups = order[first[complete][:, None] + np.arange(k * k)]
    return groups, block[groups[:, 0]]


def hex_groups(array_coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Complete 7-unit groups of a Visium lattice: unit indices (N×7, centre first) and a
    Visium-style (row, col) of each group on the lattice the group centres form.

    In axial coordinates (q, r) the six neighbour steps change q + 3r by ±1, ±2, ±3, all
    different mod 7, so the units with q + 3r ≡ 0 (mod 7) are centres whose neighbourhoods
    tile the lattice; the centres form a hexagonal lattice spanned by (3, −1) and (1, 2).
    """
    coords = np.asarray(array_coords, dtype=np.int64)
    if len(np.unique(coords.sum(axis=1) % 2)) > 1:
        raise ValueError("a Visium lattice needs row + col of the same parity for every unit")
    q, r = (coords[:, 1] - coords[:, 0]) // 2, coords[:, 0]
    centres = np.flatnonzero((q + 3 * r) % HEX_GROUP == 0)
    src, dst = lattice_edges(coords, platform_offsets("visium"))
    is_centre = np.isin(src, centres)
    src, dst = src[is_centre], dst[is_centre]
    complete = np.bincount(src, minlength=len(coords))[centres] == HEX_GROUP - 1
    centres = centres[complete]
    ring = dst[np.isin(src, centres)].reshape(-1, HEX_GROUP - 1)  # edges come grouped by source
    # Coordinates (i, j) on the centres' lattice, then the Visium doubled-width convention.
    i, j = (2 * q[centres] - r[centres]) // HEX_GROUP, (q[centres] + 3 * r[centres]) // HEX_GROUP
    return np.column_stack([centres, ring]), np.column_stack([j, 2 * i + j])


def make_pseudospots(
    values: np.ndarray,
    array_coords: np.ndarray,
    pos: np.ndarray,
    platform: str,
    k: int = 2,
    image_features: np.ndarray | None = None,
    feature_names: list[str] | None = None,
    scale: float = 2.0,
) -> Section:
    """A `Section` of pseudo-spots built from fine units (U×G `values`, (row, col), (x, y) `pos`).

    `platform` is `grid` (k×k blocks) or `visium` (centre + 6 neighbours, `k` unused). The
    units become the subspots (truth = their values) and each pseudo-spot's `x` is the mean of
    its units; without `image_features` every unit gets one constant feature.
    """
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}; choose from {PLATFORMS}")
    if platform == "grid":
        groups, spot_coords = grid_blocks(array_coords, k)
    else:
        groups, spot_coords = hex_groups(array_coords)
    if len(groups) == 0:
        raise ValueError(f"no complete group of units on this {platform} lattice")
    units = groups.ravel()
    values = np.asarray(values, dtype=np.float32)
    pos = np.asarray(pos, dtype=np.float64)
    truth, sub_pos = values[units], pos[units]
    x = values[groups].mean(axis=1)
    constant = image_features is None
    feat = np.ones((len(values), 1)) if constant else np.asarray(image_features)
    layout = SubspotLayout(
        sub_pos=sub_pos,
        sub_to_spot=np.repeat(np.arange(len(groups)), groups.shape[1]),
        sub_diameter=median_spacing(sub_pos),
        per_spot=groups.shape[1],
    )
    spot_pos = pos[groups].mean(axis=1)
    sub_feat = feat[units].astype(np.float32)
    graph = assemble_graph(platform, spot_coords, spot_pos, layout, x, truth, sub_feat, scale)
    return Section(
        graph=graph,
        feature_names=feature_names or [f"feature_{g}" for g in range(values.shape[1])],
        truth=truth,
        name=f"pseudospots_{platform}_K{groups.shape[1]}",
        meta={
            "platform": platform,
            "subspots_per_spot": groups.shape[1],
            "image_features": "constant" if constant else "given",
            "unit_index": units,
        },
    )
