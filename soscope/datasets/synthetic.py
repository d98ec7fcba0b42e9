"""The embedded synthetic tissue: domains at subspot scale, counts, an H&E image.

Spatial domains are a warped Voronoi partition whose boundaries cut through spots, so spots mix
domains and enhancement has something to find. Each domain has a marker program; a subspot's
mean profile is its program times a smooth depth gradient, and its values are drawn from the
chosen likelihood. The image's colour and texture follow the same domains, so the subspots'
image features predict them. All positions are (x, y) full-resolution pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch_geometric.utils import add_remaining_self_loops

from soscope.data.graph import build_knn_graph, build_spot_graph
from soscope.data.sample import Section, SpotGraph, make_spot_graph
from soscope.datasets.histology import domain_styles, render_he_image
from soscope.models.aggregation import aggregate_mean
from soscope.preprocess.image_features import (
    MIN_PATCH,
    handcrafted_features,
    standardize_columns,
)
from soscope.preprocess.layouts import (
    SubspotLayout,
    cells_in_spots,
    grid_subspots,
    visium_subspots,
)

PLATFORMS = ("visium", "grid", "cells")
LIKELIHOODS = ("nb", "poisson", "gaussian", "joint_pnb", "joint_gaussian")
JOINT_LIKELIHOODS = ("joint_pnb", "joint_gaussian")

SUBSPOT_PIXELS = 14.0  # default subspot diameter: a ~14 px image patch per subspot
VISIUM_PITCH = 100.0 / 55.0  # Visium: centre-to-centre distance per spot diameter
SUBSPOT_NEIGHBOURS = {"visium": 6, "grid": 4, "cells": 6}
# Cell-level data sit on Visium spots: the spot lattice and its neighbours are Visium's.
SPOT_LATTICE = {"visium": "visium", "grid": "grid", "cells": "visium"}


@dataclass
class SyntheticTissue:
    """A synthetic section: its graph sample (self-loops added), image and ground truth.

    `truth` (M×G) holds the drawn subspot values (also `graph.sub_truth`) and `sub_domain` (M,)
    each subspot's domain; `x` is the per-subspot mean of each spot's truth.
    """

    graph: SpotGraph
    image: np.ndarray
    truth: np.ndarray
    sub_domain: np.ndarray
    feature_names: list[str]
    spot_pos: np.ndarray
    sub_pos: np.ndarray
    array_coords: np.ndarray
    platform: str
    likelihood: str
    spot_diameter: float
    sub_diameter: float
    protein_dim: int
    seed: int

    def to_section(self) -> Section:
        """The tissue as the `Section` the DataModule and outputs work with."""
        return Section(
            graph=self.graph,
            feature_names=self.feature_names,
            truth=self.truth,
            image=self.image,
            name=f"synthetic_{self.platform}_{self.likelihood}_seed{self.seed}",
            meta={
                "platform": self.platform,
                "likelihood": self.likelihood,
                "protein_dim": self.protein_dim,
                "spot_diameter": self.spot_diameter,
                "sub_diameter": self.sub_diameter,
                "seed": self.seed,
            },
        )


@dataclass(frozen=True)
class DomainField:
    """Where each domain lies and how deep the tissue is sequenced, at any (x, y) position."""

    seeds: np.ndarray  # (S, 2) Voronoi seeds
    seed_domain: np.ndarray  # (S,) domain of each seed
    wave_vectors: np.ndarray  # (2, W) angular frequency (x; y) of each warp wave
    wave_phase: np.ndarray  # (W,)
    wave_amplitude: np.ndarray  # (W, 2) displacement each wave adds along x and y
    depth_slope: np.ndarray  # (2,) log-depth change per pixel
    centre: np.ndarray  # (2,) where the depth factor is 1

    def domain_at(self, xy: np.ndarray) -> np.ndarray:
        """Domain index of each position: the nearest seed after a smooth warp."""
        warp = np.sin(xy @ self.wave_vectors + self.wave_phase) @ self.wave_amplitude
        _, nearest = cKDTree(self.seeds).query(xy + warp, workers=-1)
        return self.seed_domain[nearest]

    def depth_at(self, xy: np.ndarray) -> np.ndarray:
        """Smooth sequencing-depth factor, a log-linear gradient across the tissue."""
        return np.exp((xy - self.centre) @ self.depth_slope)

    def stain_at(self, xy: np.ndarray) -> np.ndarray:
        """Stain intensity factor of the image: follows the depth gradient gently (±10 %)."""
        return self.depth_at(xy) ** 0.25


def make_synthetic_tissue(
    platform: str = "visium",
    n_rows: int = 20,
    n_cols: int = 20,
    factor: int | None = 2,
    likelihood: str = "nb",
    n_features: int = 9,
    protein_dim: int = 5,
    n_domains: int = 4,
    seed: int = 0,
    spot_diameter: float | None = None,
    domain_size: float = 4.0,
    dispersion: float = 8.0,
    gaussian_sd: float = 2.0,
    graph_scale: float = 2.0,
    constant_image: bool = False,
) -> SyntheticTissue:
    """Generate a seeded synthetic section on a Visium (7 subspots) or square grid (f×f) lattice.

    `factor` is f (grid only); `protein_dim` the first block's size (joint likelihoods only);
    `spot_diameter` (pixels; the square's side on a grid) defaults to 14 px subspots;
    `domain_size` is the typical domain width in spots; `dispersion` the NB total count r;
    `gaussian_sd` the noise of Gaussian blocks; `constant_image` zeroes the image features.
    """
    if min(n_rows, n_cols, n_features, n_domains) < 1:
        raise ValueError("n_rows, n_cols, n_features and n_domains must be positive")
    _check_choices(platform, likelihood, factor, n_features, protein_dim)
    layout_rng, count_rng, image_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    lattice = SPOT_LATTICE[platform]
    if spot_diameter is None:
        spot_diameter = SUBSPOT_PIXELS * (3 if lattice == "visium" else factor)
    array_coords, spot_pos, pitch = _spot_lattice(lattice, n_rows, n_cols, spot_diameter)
    if platform == "cells":
        layout = cells_in_spots(spot_pos, spot_diameter, layout_rng)
    elif platform == "visium":
        layout = visium_subspots(spot_pos, spot_diameter)
    else:
        layout = grid_subspots(spot_pos, spot_diameter, factor)
    height, width = np.ceil(spot_pos.max(axis=0)[::-1] + pitch).astype(int)
    field = _domain_field(layout_rng, n_domains, width, height, pitch * domain_size)
    sub_domain = field.domain_at(layout.sub_pos)

    means = _marker_programs(count_rng, n_domains, n_features)[sub_domain]
    means *= field.depth_at(layout.sub_pos)[:, None]
    n_gaussian, n_poisson = _block_sizes(likelihood, n_features, protein_dim)
    truth = _draw(count_rng, means, n_gaussian, n_poisson, dispersion, gaussian_sd)
    x = aggregate_mean(
        torch.from_numpy(truth), torch.from_numpy(layout.sub_to_spot), len(spot_pos)
    ).numpy()

    styles = domain_styles(n_domains, image_rng)
    image = render_he_image(height, width, field.domain_at, field.stain_at, styles, image_rng)
    patch = max(MIN_PATCH, round(layout.sub_diameter))
    sub_feat = standardize_columns(handcrafted_features(image, layout.sub_pos, patch))
    if constant_image:
        sub_feat = np.zeros_like(sub_feat)

    graph = assemble_graph(
        platform, array_coords, spot_pos, layout, x, truth, sub_feat, graph_scale
    )
    is_joint = likelihood in JOINT_LIKELIHOODS
    return SyntheticTissue(
        graph=graph,
        image=image,
        truth=truth,
        sub_domain=sub_domain,
        feature_names=_feature_names(likelihood, n_features, protein_dim),
        spot_pos=spot_pos,
        sub_pos=layout.sub_pos,
        array_coords=array_coords,
        platform=platform,
        likelihood=likelihood,
        spot_diameter=float(spot_diameter),
        sub_diameter=layout.sub_diameter,
        protein_dim=protein_dim if is_joint else 0,
        seed=seed,
    )


def synthetic_section(**kwargs) -> Section:
    """`make_synthetic_tissue(**kwargs)` as a `Section`: the Hydra `data=synthetic` target."""
    return make_synthetic_tissue(**kwargs).to_section()


def _spot_lattice(
    platform: str, n_rows: int, n_cols: int, spot_diameter: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Array coordinates (row, col), pixel centres (x, y) and centre-to-centre pitch."""
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    if platform == "visium":
        pitch = spot_diameter * VISIUM_PITCH
        cols = 2 * cols + rows % 2  # Visium style: row + col is even
        xy = np.column_stack([cols * pitch / 2, rows * pitch * np.sqrt(3) / 2])
    else:
        pitch = spot_diameter
        xy = np.column_stack([cols * pitch, rows * pitch]).astype(float)
    return np.column_stack([rows, cols]).astype(np.int64), xy + pitch, pitch


def _domain_field(
    rng: np.random.Generator, n_domains: int, width: int, height: int, domain_width: float
) -> DomainField:
    """Random warped-Voronoi domains about `domain_width` pixels across, with a depth gradient."""
    n_seeds = max(n_domains, round(width * height / domain_width**2))
    seeds = rng.uniform((0, 0), (width, height), size=(n_seeds, 2))
    seed_domain = rng.permutation(np.arange(n_seeds) % n_domains)
    n_waves = 6  # three along x, three along y
    wavelength = rng.uniform(0.15, 0.5, n_waves) * domain_width
    direction = rng.uniform(0, 2 * np.pi, n_waves)
    wave_vectors = 2 * np.pi / wavelength * np.stack([np.cos(direction), np.sin(direction)])
    wave_phase = rng.uniform(0, 2 * np.pi, n_waves)
    wave_amplitude = np.zeros((n_waves, 2))
    wave_amplitude[:3, 0], wave_amplitude[3:, 1] = rng.uniform(0.08, 0.16, (2, 3)) * domain_width
    slope_angle = rng.uniform(0, 2 * np.pi)
    depth_slope = 0.8 / max(width, height) * np.array([np.cos(slope_angle), np.sin(slope_angle)])
    centre = np.array([width / 2, height / 2])
    return DomainField(
        seeds, seed_domain, wave_vectors, wave_phase, wave_amplitude, depth_slope, centre
    )


def _marker_programs(rng: np.random.Generator, n_domains: int, n_features: int) -> np.ndarray:
    """Mean profile (n_domains, G) of each domain: a base level, high in its marker features."""
    base = 4.0 * rng.lognormal(0.0, 0.25, size=(n_domains, n_features))
    owner = rng.permutation(np.arange(n_features) % n_domains)
    second = (owner + rng.integers(1, max(2, n_domains), size=n_features)) % n_domains
    fold = np.ones((n_domains, n_features))
    fold[owner, np.arange(n_features)] = 8.0
    if n_domains > 1:
        fold[second, np.arange(n_features)] = 3.0
    return base * fold


def _draw(
    rng: np.random.Generator,
    means: np.ndarray,
    n_gaussian: int,
    n_poisson: int,
    dispersion: float,
    gaussian_sd: float,
) -> np.ndarray:
    """Subspot values: Normal for the first `n_gaussian` features, then Poisson, then NB."""
    gaussian, poisson, nb = np.split(means, [n_gaussian, n_gaussian + n_poisson], axis=1)
    blocks = [
        gaussian + gaussian_sd * rng.standard_normal(gaussian.shape),
        rng.poisson(poisson),
        rng.negative_binomial(dispersion, dispersion / (dispersion + nb)),
    ]
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _block_sizes(likelihood: str, n_features: int, protein_dim: int) -> tuple[int, int]:
    """How many leading features are Normal and how many next are Poisson; the rest are NB."""
    return {
        "nb": (0, 0),
        "poisson": (0, n_features),
        "gaussian": (n_features, 0),
        "joint_pnb": (0, protein_dim),
        "joint_gaussian": (protein_dim, 0),
    }[likelihood]


def assemble_graph(
    platform: str,
    array_coords: np.ndarray,
    spot_pos: np.ndarray,
    layout: SubspotLayout,
    x: np.ndarray,
    truth: np.ndarray,
    sub_feat: np.ndarray,
    scale: float,
) -> SpotGraph:
    """The `SpotGraph` of a tissue on `platform`'s lattice: spot graph A from the profiles `x`,
    subspot graph W from the image features, the subspot `truth` alongside (also used for the
    aggregation benchmark's pseudo-spots, `soscope.evaluate.pseudospots`)."""
    edges, weights = add_remaining_self_loops(
        *build_spot_graph(array_coords, x, SPOT_LATTICE[platform], scale),
        fill_value=1.0,
        num_nodes=len(x),
    )
    sub_edges, sub_weights = add_remaining_self_loops(
        *build_knn_graph(layout.sub_pos, sub_feat, SUBSPOT_NEIGHBOURS[platform], scale),
        fill_value=1.0,
        num_nodes=len(sub_feat),
    )
    return make_spot_graph(
        torch.from_numpy(x),
        edges,
        weights,
        torch.from_numpy(sub_feat),
        sub_edges,
        sub_weights,
        torch.from_numpy(layout.sub_to_spot),
        pos=torch.from_numpy(spot_pos).float(),
        sub_pos=torch.from_numpy(layout.sub_pos).float(),
        sub_truth=torch.from_numpy(truth),
    )


def _feature_names(likelihood: str, n_features: int, protein_dim: int) -> list[str]:
    """`gene_i` names; joint likelihoods name their first block `protein_i` or `peak_i`."""
    if likelihood not in JOINT_LIKELIHOODS:
        return [f"gene_{i}" for i in range(n_features)]
    first = "protein" if likelihood == "joint_pnb" else "peak"
    return [f"{first}_{i}" for i in range(protein_dim)] + [
        f"gene_{i}" for i in range(n_features - protein_dim)
    ]


def _check_choices(
    platform: str, likelihood: str, factor: int | None, n_features: int, protein_dim: int
) -> None:
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r}; choose from {PLATFORMS}")
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {likelihood!r}; choose from {LIKELIHOODS}")
    if platform == "grid" and not (isinstance(factor, int) and factor >= 1):
        raise ValueError(f"the grid platform needs a positive integer factor, got {factor!r}")
    if likelihood in JOINT_LIKELIHOODS and not 0 < protein_dim < n_features:
        raise ValueError(
            f"{likelihood} needs 0 < protein_dim < n_features, got {protein_dim} of {n_features}"
        )
