"""The graph sample of one tissue section as a PyTorch Geometric `Data`."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data


class SpotGraph(Data):
    """One tissue section: spots with their profiles and graph, subspots with image features and graph.

    Fields (N spots, M subspots, G features, D image-feature width):
    `x` (N×G, per-subspot mean of each spot), `edge_index`/`edge_weight` (spot graph A),
    `sub_feat` (M×D), `sub_edge_index`/`sub_edge_weight` (subspot graph W),
    `sub_to_spot` (M, parent spot of each subspot), optional `pos` (N×2) and `sub_pos` (M×2)
    in full-resolution pixels, optional `sub_truth` (M×G ground truth, synthetic data only).
    Subspot-level index fields are offset by the subspot count when sections are batched.
    """

    def __inc__(self, key: str, value, *args, **kwargs):
        if key == "sub_edge_index":
            return self.sub_feat.size(0)
        if key == "sub_to_spot":
            return self.num_nodes
        return super().__inc__(key, value, *args, **kwargs)

    def __cat_dim__(self, key: str, value, *args, **kwargs):
        if key == "sub_edge_index":
            return 1
        return super().__cat_dim__(key, value, *args, **kwargs)

    @property
    def num_spots(self) -> int:
        return int(self.x.size(0))

    @property
    def num_subspots(self) -> int:
        return int(self.sub_feat.size(0))


def graph_on(graph: SpotGraph, device: torch.device | str) -> SpotGraph:
    """`graph` on `device`, as a shallow copy: the caller's graph stays where it is (PyG's
    `Data.to` moves a graph in place)."""
    return copy.copy(graph).to(device)


def subspot_counts(graph: SpotGraph) -> Tensor:
    """K_i of each spot as an N×1 float column: a tile's `spot_k` (the counts in the whole
    section, since a tile leaves out its halo spots' subspots), else counted from `sub_to_spot`."""
    k = getattr(graph, "spot_k", None)
    if k is not None:
        return k
    return torch.bincount(graph.sub_to_spot, minlength=graph.num_nodes).unsqueeze(-1).float()


def spot_spacing(pos: Tensor, edge_index: Tensor) -> Tensor:
    """Median length of the spot graph's edges (self-loops aside): the spot spacing in pixels."""
    src, dst = edge_index
    keep = src != dst
    if not bool(keep.any()):
        return torch.ones((), dtype=pos.dtype, device=pos.device)
    return (pos[src[keep]] - pos[dst[keep]]).norm(dim=-1).median().clamp(min=1e-6)


def section_spacing(graph: SpotGraph) -> Tensor | None:
    """The spot spacing of `graph`'s section, for the neighbourhood kernels: a tile carries its
    section's (`soscope.data.tiles`), a whole section measures its own; None without positions."""
    spacing = getattr(graph, "spacing", None)
    if spacing is not None or getattr(graph, "pos", None) is None:
        return spacing
    return spot_spacing(graph.pos.float(), graph.edge_index)


def fixed_layout(num_spots: int, k: int) -> Tensor:
    """`sub_to_spot` of the original layout: subspots of spot i are rows i·K … i·K+K−1."""
    return torch.arange(num_spots).repeat_interleave(k)


def make_spot_graph(
    x: Tensor,
    edge_index: Tensor,
    edge_weight: Tensor,
    sub_feat: Tensor,
    sub_edge_index: Tensor,
    sub_edge_weight: Tensor,
    sub_to_spot: Tensor,
    **extra: Tensor,
) -> SpotGraph:
    """Assemble a `SpotGraph` with the dtypes the model expects."""
    return SpotGraph(
        x=x.float(),
        edge_index=edge_index.long(),
        edge_weight=edge_weight.float(),
        sub_feat=sub_feat.float(),
        sub_edge_index=sub_edge_index.long(),
        sub_edge_weight=sub_edge_weight.float(),
        sub_to_spot=sub_to_spot.long(),
        num_nodes=int(x.size(0)),
        **extra,
    )


@dataclass
class Section:
    """A loaded tissue section: its graph sample plus what outputs and figures need.

    `truth` (M×G) is the subspot-resolution ground truth when known (synthetic or aggregated
    data); `image` the H&E image (H×W×3) and `image_scale` its pixels per pixel of the frame of
    `graph.pos`/`graph.sub_pos` (full resolution: 1; Space Ranger's hires image: its
    `tissue_hires_scalef`).
    """

    graph: SpotGraph
    feature_names: list[str]
    spot_names: list[str] | None = None
    truth: np.ndarray | None = None
    image: np.ndarray | None = None
    image_scale: float = 1.0
    name: str = "section"
    meta: dict = field(default_factory=dict)
