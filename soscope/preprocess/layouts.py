"""Where the subspots of each spot lie, in full-resolution image pixels.

Positions are (x, y): x the column and y the row of the image, as in AnnData's
`obsm['spatial']`; pixel (x, y) is `image[y, x]`. Subspots of spot i are rows i·K … i·K+K−1
(cells: those of spot i before those of spot i+1). Array coordinates are the platform's
integer (row, col) lattice; `fit_lattice` finds how they map to pixels, so layouts follow a
rotated or flipped slide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from soscope.errors import SoScopeInputError

VISIUM_SPOT_FRACTION = 55.0 / 100.0  # Visium: spot diameter per centre-to-centre distance


@dataclass(frozen=True)
class SubspotLayout:
    """Subspot centres `sub_pos` (M, 2) as (x, y), parent spots `sub_to_spot` (M,), their disc
    diameter in pixels and K, the number of subspots per spot (0 when it varies, as for cells)."""

    sub_pos: np.ndarray
    sub_to_spot: np.ndarray
    sub_diameter: float
    per_spot: int


def visium_subspots(
    spot_pos: np.ndarray, spot_diameter: float, angle: float = 0.0
) -> SubspotLayout:
    """Seven subspots per round spot: its centre first, then six on a hexagon around it.

    Seven discs of diameter d/3 (the centre one and six with centres d/3 away) tile a spot of
    diameter d: they touch each other and the spot's rim. `angle` (radians) is the direction of
    the first ring subspot; the ring points at the lattice neighbours when it is the direction
    of array offset (0, 2) (`LatticeFit.angle`).
    """
    offsets = np.vstack([[0.0, 0.0], _hexagon(spot_diameter / 3.0, angle)])
    return _place(spot_pos, offsets, sub_diameter=spot_diameter / 3.0)


def bayesspace_subspots(
    spot_pos: np.ndarray, spot_pitch: float, angle: float = 0.0
) -> SubspotLayout:
    """BayesSpace-style six subspots per hexagonal-lattice spot, one toward each neighbour.

    Their centres lie a third of the way to the six neighbouring spots (`spot_pitch` is the
    centre-to-centre distance), so the subspots tile the lattice's whole hexagonal cell, gaps
    between the round spots included. `angle` as in `visium_subspots`.
    """
    return _place(spot_pos, _hexagon(spot_pitch / 3.0, angle), sub_diameter=spot_pitch / 3.0)


def grid_subspots(
    spot_pos: np.ndarray, spot_spacing: float | np.ndarray, factor: int
) -> SubspotLayout:
    """factor × factor subspots on a regular sub-grid inside each square spot, row-major.

    `spot_spacing` is the spot spacing in pixels of an axis-aligned grid (array rows along y, columns
    along x), or the 2×2 matrix `LatticeFit.steps` of a rotated or flipped one. Subspot
    (i, j) of a spot at array (row, col) sits at array (row + (i − (f−1)/2)/f, col + …), so on
    the fine lattice it is (f·row + i, f·col + j) (`fine_grid_coords`).
    """
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    sub_steps = _step_matrix(spot_spacing) / factor
    centred = np.arange(factor) - (factor - 1) / 2.0
    rows, cols = np.meshgrid(centred, centred, indexing="ij")
    offsets = np.column_stack([rows.ravel(), cols.ravel()]) @ sub_steps.T
    return _place(spot_pos, offsets, sub_diameter=float(np.linalg.norm(sub_steps, axis=0).mean()))


def fine_grid_coords(array_coords: np.ndarray, factor: int) -> np.ndarray:
    """Integer (row, col) of each `grid_subspots` subspot on the f-times finer square lattice."""
    coords = np.asarray(array_coords, dtype=np.int64)
    rows, cols = np.meshgrid(np.arange(factor), np.arange(factor), indexing="ij")
    within = np.column_stack([rows.ravel(), cols.ravel()])
    return (factor * coords[:, None, :] + within[None]).reshape(-1, 2)


def _hexagon(radius: float, angle: float) -> np.ndarray:
    angles = angle + np.arange(6) * (np.pi / 3.0)
    return radius * np.column_stack([np.cos(angles), np.sin(angles)])


def _step_matrix(steps: float | np.ndarray) -> np.ndarray:
    steps = np.asarray(steps, dtype=np.float64)
    if steps.ndim == 0:
        return float(steps) * np.array([[0.0, 1.0], [1.0, 0.0]])
    if steps.shape != (2, 2):
        raise ValueError(f"steps must be a spacing or a 2×2 matrix, got shape {steps.shape}")
    return steps


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


def assign_cells(
    spot_pos: np.ndarray,
    spot_diameter: float,
    cell_pos: np.ndarray,
    cell_diameter: float | None = None,
) -> tuple[SubspotLayout, np.ndarray]:
    """Given cell centroids as subspots: each cell goes to the spot whose disc contains it.

    Returns the layout (cells ordered by spot, input order within a spot; K = 0) and the index
    of each kept cell in `cell_pos`; cells outside every spot are left out. The cell diameter
    defaults to the median distance between neighbouring cells.
    """
    spot_pos = np.asarray(spot_pos, dtype=np.float64)
    cell_pos = np.asarray(cell_pos, dtype=np.float64)
    distance, spot = cKDTree(spot_pos).query(cell_pos, workers=-1)
    kept = np.flatnonzero(distance <= spot_diameter / 2.0)
    kept = kept[np.argsort(spot[kept], kind="stable")]
    if cell_diameter is None:
        cell_diameter = _median_neighbour_distance(cell_pos)
    layout = SubspotLayout(cell_pos[kept], spot[kept].astype(np.int64), float(cell_diameter), 0)
    return layout, kept


def _median_neighbour_distance(pos: np.ndarray) -> float:
    if len(pos) < 2:
        raise ValueError("need at least two cells to estimate their diameter")
    distance, _ = cKDTree(pos).query(pos, k=2, workers=-1)
    return float(np.median(distance[:, 1]))


@dataclass(frozen=True)
class LatticeFit:
    """The affine map from array coordinates (row, col) to pixels (x, y).

    `steps[:, 0]` is the pixel displacement of one array row, `steps[:, 1]` of one array
    column; pixel = steps @ (row, col) + origin.
    """

    steps: np.ndarray
    origin: np.ndarray

    def spacing(self, offsets: np.ndarray) -> float:
        """Mean pixel distance of the lattice offsets (row, col): the centre-to-centre pitch."""
        return float(np.linalg.norm(np.asarray(offsets) @ self.steps.T, axis=1).mean())

    def angle(self, offset: tuple[int, int]) -> float:
        """Direction (radians, in the image's x–y frame) of one array offset (row, col)."""
        x, y = self.steps @ np.asarray(offset, dtype=np.float64)
        return float(np.arctan2(y, x))


def fit_lattice(
    array_coords: np.ndarray, spot_pos: np.ndarray, source: str = "positions"
) -> LatticeFit:
    """Least-squares affine map from array coordinates to pixel positions.

    Raises `SoScopeInputError` naming `source` when the spots do not span two dimensions or the
    positions stray from the fitted lattice by more than a quarter of a step (swapped columns,
    or positions from another image).
    """
    coords = np.asarray(array_coords, dtype=np.float64)
    pos = np.asarray(spot_pos, dtype=np.float64)
    design = np.column_stack([coords, np.ones(len(coords))])
    solution, _, rank, _ = np.linalg.lstsq(design, pos, rcond=None)
    if rank < 3:
        raise SoScopeInputError(
            source, "the spots' array coordinates span a single line; cannot orient the lattice"
        )
    fit = LatticeFit(steps=solution[:2].T, origin=solution[2])
    step = np.linalg.norm(fit.steps, axis=0).min()
    stray = np.linalg.norm(design @ solution - pos, axis=1).max()
    if stray > step / 4:
        raise SoScopeInputError(
            source,
            f"pixel positions stray up to {stray:.1f} px from a regular lattice of their array "
            f"coordinates (one step is {step:.1f} px): are the row/column or x/y columns swapped?",
        )
    return fit
