"""A stage's progress over all its steps: how many are done, their rate and the time left.

Lightning's bar counts the batches of one epoch, and a whole-section stage has one batch an
epoch, so it showed `Epoch 9/99 0/1 … -:--:-- 0.00it/s`: no time estimate for the stage.
`StageProgressBar` counts the stage's optimiser steps (epochs × batches) instead, so tqdm
shows the rate and the time left after the first few; `ProgressLog` writes the same estimate
to the log every tenth of the stage, for runs whose console nobody watches (and runs without
a bar).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar

log = logging.getLogger(__name__)
LOG_PARTS = 10  # log lines per stage


class StageProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, counting a stage's steps instead of one epoch's batches."""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        bar = self.train_progress_bar = self.init_train_tqdm()
        bar.reset(total=stage_steps(trainer))
        bar.n = bar.initial = trainer.global_step  # a resumed stage starts part-way
        bar.set_description(getattr(module, "stage_name", "train"))

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        """The bar spans the stage: nothing to reset at an epoch."""

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, index: int
    ) -> None:
        bar = self.train_progress_bar
        bar.n = trainer.global_step
        bar.set_postfix(self.get_metrics(trainer, module), refresh=False)
        bar.refresh()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """The postfix is set at every step."""


class ProgressLog(Callback):
    """Logs `soscope: step 50/500 (10%), 1.20 s a step, about 9 min left` every tenth of a
    stage."""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.total, self.first = stage_steps(trainer), trainer.global_step
        self.started = time.perf_counter()
        self.logged = self.first * LOG_PARTS // self.total

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *_: Any) -> None:
        step = trainer.global_step
        part = step * LOG_PARTS // self.total
        if part > self.logged and trainer.is_global_zero:  # one line a run, not one a rank
            self.logged = part
            seconds = (time.perf_counter() - self.started) / max(step - self.first, 1)
            name = getattr(module, "stage_name", "train")
            log.info("%s", progress_line(name, step, self.total, seconds))


def stage_steps(trainer: L.Trainer) -> int:
    """The optimiser steps of the whole stage (at least 1)."""
    return max(1, int(trainer.estimated_stepping_batches))


def progress_line(
    name: str, step: int, total: int, seconds_a_step: float, unit: str = "step"
) -> str:
    """`soscope: step 50/500 (10%), 1.20 s a step, about 9 min left`."""
    left = (total - step) * seconds_a_step
    return (
        f"{name}: {unit} {step}/{total} ({100 * step // total}%), {seconds_a_step:.2f} s a "
        f"{unit}, about {format_duration(left)} left"
    )


def format_duration(seconds: float) -> str:
    """Seconds as `45 s`, `12 min` or `3.2 h`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
