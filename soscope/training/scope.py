"""What one training batch's loss covers: a whole section, or one spatial tile's share of it.

A tile (`soscope.data.tiles`) scores its own spots, own subspots and the edges that start at
them, each normalised by the section's totals, so the mean over an epoch's tiles is the
full-graph loss; a whole section is one tile that owns everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from soscope.data.sample import SpotGraph
from soscope.data.tiles import section_totals


@dataclass(frozen=True)
class LossScope:
    """What one batch's loss covers, and the section totals that make it a share of the
    full-graph loss: the mean of the shares over the `tiles` of an epoch is the whole."""

    own: Tensor | None  # spots scored (None: all)
    exact: Tensor | None  # spots whose latent is exact (None: all)
    sub_own: Tensor | None  # subspots scored (None: all)
    spots: int
    train_spots: int
    subspots: int
    sub_weight: Tensor
    tiles: int

    def spot_mean(self, values: Tensor, train: Tensor | None = None) -> Tensor:
        """This batch's share of the section mean of `values` (over training spots if given)."""
        keep = train if self.own is None else (self.own if train is None else self.own & train)
        total = self.spots if train is None else self.train_spots
        chosen = values if keep is None else values[keep]
        return chosen.sum() * self.tiles / total

    def own_edges(self, edge_index: Tensor, edge_weight: Tensor) -> tuple[Tensor, Tensor]:
        """The edges whose first endpoint is an own spot."""
        if self.own is None:
            return edge_index, edge_weight
        keep = self.own[edge_index[0]]
        return edge_index[:, keep], edge_weight[keep]


def _ids(mask: Tensor | None) -> Tensor | None:
    """The row ids a mask selects (None: all rows)."""
    return None if mask is None else mask.nonzero().squeeze(-1)


def rows_and_pool(scope: LossScope, level: str) -> tuple[Tensor | None, Tensor | None]:
    """Row ids scored and the exact pool of negatives at `level` ("spot" or "subspot")."""
    if level == "spot":
        return _ids(scope.own), _ids(scope.exact)
    return _ids(scope.sub_own), None


def loss_scope(batch: SpotGraph) -> LossScope:
    """The scope of a tile batch (its masks and the section totals it carries), or of a whole
    section (everything own, one tile)."""
    if getattr(batch, "own", None) is not None:
        masks, totals = (batch.own, batch.exact, batch.sub_own), batch
    else:
        masks, totals = (None, None, None), section_totals(batch, 1)
    return LossScope(
        *masks,
        int(totals["section_spots"]),
        int(totals["section_train_spots"]),
        int(totals["section_subspots"]),
        torch.as_tensor(totals["section_sub_weight"], dtype=torch.float32),
        int(totals["n_tiles"]),
    )
