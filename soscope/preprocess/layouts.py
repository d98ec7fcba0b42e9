"""Where the subspots of each spot lie (SPEC §2), in full-resolution image pixels.

Positions are (x, y): x the column and y the row of the image, as in AnnData's
`obsm['spatial']`; pixel (x, y) is `image[y, x]`. Subspots of spot i are rows i·K … i·K+K−1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SubspotLayout:
    """Subspot centres `sub_pos` (M, 2) as (x, y), parent spots `sub_to_spot` (M,), their disc
    diameter in pixels and K, the number of subspots per spot (0 when it varies, as for cells)."""

    sub_pos: np.ndarray
    sub_to_spot: np.ndarray
    sub_diameter: float
    per_spot: int


def visium_subspots(spot_pos: np.ndarray, spot_diameter: float) -> SubspotLayout:
    """Seven subspots per round spot: its centre first, then six on a hexagon around it.

    Seven discs of diameter d/3 (the centre one and six with centres d/3 away) tile a spot of
    diameter d: they touch each other and the spot's rim.
    """
    ring = spot_diameter / 3.0
    angles = np.arange(6) * (np.pi / 3.0)
    offsets = np.vstack([[0.0, 0.0], ring * np.column_stack([np.cos(angles), np.sin(angles)])])
    return _place(spot_pos, offsets, sub_diameter=spot_diameter / 3.0)


def grid_subspots(spot_pos: np.ndarray, spot_spacing: float, factor: int) -> SubspotLayout:
    """factor × factor subspots on a regular sub-grid inside each square spot, row-major."""
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    step = spot_spacing / factor
    centres = (np.arange(factor) - (factor - 1) / 2.0) * step
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    offsets = np.column_stack([xs.ravel(), ys.ravel()])
    return _place(spot_pos, offsets, sub_diameter=step)


def _place(spot_pos: np.ndarray, offsets: np.ndarray, sub_diameter: float) -> SubspotLayout:
    spot_pos = np.asarray(spot_pos, dtype=np.float64)
    if spot_pos.ndim != 2 or spot_pos.shape[1] != 2:
        raise ValueError(f"spot positions must be (N, 2), got {spot_pos.shape}")
    if not sub_diameter > 0:
        raise ValueError(f"spot size must be positive, got subspot diameter {sub_diameter}")
    sub_pos = (spot_pos[:, None, :] + offsets[None, :, :]).reshape(-1, 2)
    sub_to_spot = np.repeat(np.arange(len(spot_pos), dtype=np.int64), len(offsets))
    return SubspotLayout(sub_pos, sub_to_spot, float(sub_diameter), per_spot=len(offsets))


def cells_in_spots(
    spot_pos: np.ndarray,
    spot_diameter: float,
    rng: np.random.Generator,
    min_cells: int = 3,
    max_cells: int = 10,
) -> SubspotLayout:
    """Cell-level "subspots": a random number of cells scattered uniformly in each round spot.

    The count per spot varies (uniform in [min_cells, max_cells]), so K is 0; cells of spot i
    come before those of spot i+1.
    """
    if not 1 <= min_cells <= max_cells:
        raise ValueError(f"need 1 <= min_cells <= max_cells, got {min_cells}, {max_cells}")
    spot_pos = np.asarray(spot_pos, dtype=np.float64)
    counts = rng.integers(min_cells, max_cells + 1, size=len(spot_pos))
    sub_to_spot = np.repeat(np.arange(len(spot_pos), dtype=np.int64), counts)
    radius = spot_diameter / 2 * np.sqrt(rng.random(len(sub_to_spot)))
    angle = rng.uniform(0, 2 * np.pi, len(sub_to_spot))
    offsets = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    cell_diameter = spot_diameter / np.sqrt(counts.mean())
    return SubspotLayout(spot_pos[sub_to_spot] + offsets, sub_to_spot, float(cell_diameter), 0)
