"""Callbacks that write the original implementation's checkpoint files."""

from __future__ import annotations

import zlib
from pathlib import Path

import lightning as L
import torch

from soscope.io_utils import atomic_path


def save_model_file(module: L.LightningModule, path: str | Path, trainer_name: str) -> None:
    """Save a module as the original's `model.pt`-style file: weights plus what rebuilds it."""
    state = {
        "trainer": trainer_name,
        "hparams": dict(module.hparams),
        "state_dict": module.state_dict(),
        "iterations": int(module.global_step),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


class OriginalCheckpoints(L.Callback):
    """`checkpoint_{n}.pt` every `checkpoint_every` epochs and `model.pt` every `backup_every`.

    Unlike the original, `model.pt` is also written after the last epoch, so the model handed
    to stage 2 and to inference is the trained one, not the last backup.
    """

    def __init__(
        self, directory: str | Path, trainer_name: str, checkpoint_every: int, backup_every: int
    ) -> None:
        if checkpoint_every <= 0 or backup_every <= 0:
            raise ValueError("checkpoint_every and backup_every must be positive")
        self.directory = Path(directory)
        self.trainer_name = trainer_name
        self.checkpoint_every = checkpoint_every
        self.backup_every = backup_every

    def _next_checkpoint(self) -> Path:
        count = 1
        while (self.directory / f"checkpoint_{count}.pt").exists():
            count += 1
        return self.directory / f"checkpoint_{count}.pt"

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if epoch % self.checkpoint_every == 0:
            save_model_file(module, self._next_checkpoint(), self.trainer_name)
        if epoch % self.backup_every == 0:
            save_model_file(module, self.directory / "model.pt", self.trainer_name)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        save_model_file(module, self.directory / "model.pt", self.trainer_name)


EPOCH, STEP = 0, 1


class StepSeed(L.Callback):
    """Reseed torch before every step from (seed, stage, step, rank), and before every epoch
    from (seed, stage, epoch, rank).

    The random draws of a step (Z samples, sampled graph pairs) and an epoch's order of tiles
    then depend only on where the run is, so a run resumed from a checkpoint continues exactly
    as an uninterrupted one.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def _reseed(self, trainer: L.Trainer, module: L.LightningModule, *where: int) -> None:
        # Only ints and tuples of ints: their hash, unlike a str's, is the same in every process.
        stage = zlib.crc32(type(module).__name__.encode())
        torch.manual_seed(hash((self.seed, stage, *where, trainer.global_rank)) & 0xFFFFFFFF)

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._reseed(trainer, module, EPOCH, trainer.current_epoch)

    def on_train_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        self._reseed(trainer, module, STEP, trainer.global_step)
