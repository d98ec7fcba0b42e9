"""The LightningDataModule both stages train on."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
from torch.utils.data import DataLoader, Dataset

from soscope.data.heldout import hold_out_spots
from soscope.data.sample import Section, SpotGraph

BATCHING_MODES = ("full",)


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

    `full` (the default and the original's schedule) serves the whole section as one batch
    per epoch. `section` is a `Section` or a zero-argument callable that loads one. With
    `val_fraction` > 0 a seeded fraction of spots is hidden from training and scored in
    validation (see `soscope.data.heldout`).
    """

    def __init__(
        self,
        section: Section | Callable[[], Section],
        batching: str = "full",
        val_fraction: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batching not in BATCHING_MODES:
            raise ValueError(f"unknown batching {batching!r}; choose from {BATCHING_MODES}")
        self._source = section
        self.batching = batching
        self.val_fraction = val_fraction
        self.seed = seed
        self._section: Section | None = section if isinstance(section, Section) else None
        self._train_graph: SpotGraph | None = None

    def setup(self, stage: str | None = None) -> None:
        if self._section is None:
            self._section = self._source()
        if self._train_graph is None:
            graph = self._section.graph
            if self.val_fraction > 0:
                graph = hold_out_spots(graph, self.val_fraction, self.seed)
            self._train_graph = graph

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

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_WholeSection(self.train_graph), batch_size=1, collate_fn=_first)

    def val_dataloader(self) -> DataLoader:
        """The same graph, scored on its held-out spots; empty when none are held out."""
        items = [self.train_graph] if self.val_fraction > 0 else []
        return DataLoader(items, batch_size=1, collate_fn=_first)
