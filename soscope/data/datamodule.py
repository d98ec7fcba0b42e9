"""The LightningDataModule both stages train on."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
from torch.utils.data import DataLoader, Dataset

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
    per epoch. `section` is a `Section` or a zero-argument callable that loads one.
    """

    def __init__(self, section: Section | Callable[[], Section], batching: str = "full") -> None:
        super().__init__()
        if batching not in BATCHING_MODES:
            raise ValueError(f"unknown batching {batching!r}; choose from {BATCHING_MODES}")
        self._source = section
        self.batching = batching
        self._section: Section | None = section if isinstance(section, Section) else None

    def setup(self, stage: str | None = None) -> None:
        if self._section is None:
            self._section = self._source()

    @property
    def section(self) -> Section:
        """The section, loaded on first use."""
        self.setup()
        return self._section

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_WholeSection(self.section.graph), batch_size=1, collate_fn=_first)
