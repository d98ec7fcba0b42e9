"""The LightningDataModule both stages train on."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from soscope.data.features import project_features
from soscope.data.heldout import hold_out_spots
from soscope.data.sample import Section, SpotGraph
from soscope.data.tiles import BATCHING_MODES, TiledSection, resolve_batching

FEATURE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
LOADER_KEYS = ("batching", "tile_size", "feature_dtype", "feature_components")

log = logging.getLogger(__name__)


class _WholeSection(Dataset):
    """One item per epoch: the whole section, the original's one full-graph step."""

    def __init__(self, graph: SpotGraph) -> None:
        self.graph = graph

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> SpotGraph:
        return self.graph


def _first(items: list[SpotGraph]) -> SpotGraph:
    return items[0]


class SpotDataModule(L.LightningDataModule):
    """Serves a section to both stages; `batching` selects how it is cut into steps.

    `full` (the original's schedule) serves the whole section as one batch per epoch; `tiles`
    serves spatial tiles of about `tile_size` spots each, with the halo the training module
    asks for (`soscope.data.tiles`), one step per tile, shuffled, each DDP rank its share;
    `auto` (the default) is `full` for sections up to `AUTO_FULL_ENTRIES` subspot × feature
    values and tiles whose own spots hold at most that many beyond (`resolve_batching`),
    decided at `setup`. `section` is a `Section` or a zero-argument callable that loads one;
    its image features are projected once onto their top `feature_components` principal
    directions (None: all columns; see `soscope.data.features`) and kept in `feature_dtype`
    (float16 halves their memory; the decoder casts them where it runs). With `val_fraction`
    > 0 a seeded fraction of spots is hidden from training and scored in validation on the
    whole section (see `soscope.data.heldout`).
    """

    def __init__(
        self,
        section: Section | Callable[[], Section],
        batching: str = "auto",
        val_fraction: float = 0.0,
        seed: int = 0,
        tile_size: int = 2000,
        feature_dtype: str = "float32",
        feature_components: int | None = None,
    ) -> None:
        super().__init__()
        if batching not in BATCHING_MODES:
            raise ValueError(f"unknown batching {batching!r}; choose from {BATCHING_MODES}")
        if feature_dtype not in FEATURE_DTYPES:
            raise ValueError(
                f"unknown feature_dtype {feature_dtype!r}; choose from {tuple(FEATURE_DTYPES)}"
            )
        if feature_components is not None and feature_components < 1:
            raise ValueError(
                f"feature_components must be positive or null, not {feature_components}"
            )
        self._source = section
        self.batching = batching
        self.tile_size = tile_size
        self.feature_dtype = FEATURE_DTYPES[feature_dtype]
        self.feature_components = feature_components
        self._tiled: dict[tuple[int, int], TiledSection] = {}
        self.val_fraction = val_fraction
        self.seed = seed
        self._section: Section | None = section if isinstance(section, Section) else None
        self._train_graph: SpotGraph | None = None

    def setup(self, stage: str | None = None) -> None:
        if self._section is None:
            self._section = self._source()
        graph = self._section.graph
        if self.batching == "auto":
            self._resolve_batching(graph)
        features = project_features(graph.sub_feat, self.feature_components)
        features = features.to(self.feature_dtype)
        if features is not graph.sub_feat:  # a shallow copy: the caller's stays
            graph = copy.copy(graph)
            graph.sub_feat = features
            self._section = dataclasses.replace(self._section, graph=graph)
        if self._train_graph is None:
            graph = self._section.graph
            if self.val_fraction > 0:
                graph = hold_out_spots(graph, self.val_fraction, self.seed)
            self._train_graph = graph

    def _resolve_batching(self, graph: SpotGraph) -> None:
        """Full-graph steps or tiles for `auto`, from the section's size (said in the log)."""
        sizes = (graph.num_nodes, graph.num_subspots, graph.x.size(1))
        self.batching, self.tile_size = resolve_batching("auto", self.tile_size, *sizes)
        if self.batching == "tiles":
            log.info(
                "%d spots, %d subspots × %d features: training in tiles of about %d spots "
                "(data.batching=auto; data.batching=full for full-graph steps)",
                *sizes,
                self.tile_size,
            )

    @property
    def section(self) -> Section:
        """The section, loaded on first use."""
        self.setup()
        return self._section

    @property
    def train_graph(self) -> SpotGraph:
        """What training sees: the section's graph, with held-out spots hidden if asked."""
        self.setup()
        return self._train_graph

    def tiles(self, halo: tuple[int, int], graph: SpotGraph | None = None) -> TiledSection | None:
        """The tiles of `graph` (the training graph) for a module's `halo()`; None when the
        batching is `full`. Built once per halo."""
        train = self.train_graph  # sets up, so `auto` is decided
        graph = train if graph is None else graph
        if self.batching == "full":
            return None
        key = (id(graph), *halo)
        if key not in self._tiled:
            self._tiled[key] = TiledSection(graph, self.tile_size, *halo)
        return self._tiled[key]

    def train_dataloader(self) -> DataLoader:
        graph = self.train_graph
        if self.batching == "full":
            return DataLoader(_WholeSection(graph), batch_size=1, collate_fn=_first)
        tiles = self.tiles(self.trainer.lightning_module.halo(), graph)
        return DataLoader(tiles, batch_size=1, shuffle=True, collate_fn=_first)

    def val_dataloader(self) -> DataLoader:
        """The same graph, scored on its held-out spots; empty when none are held out."""
        items = [self.train_graph] if self.val_fraction > 0 else []
        return DataLoader(items, batch_size=1, collate_fn=_first)
