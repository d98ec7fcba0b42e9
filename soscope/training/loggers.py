"""What the pipeline sends to whichever experiment logger a run uses (W&B, TensorBoard, CSV)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger
from matplotlib.image import imread


def log_figure(logger: Logger | None, key: str, path: Path, step: int) -> None:
    """An image in the dashboard; CSV runs keep the PNG in the run folder instead."""
    if isinstance(logger, WandbLogger):
        logger.log_image(key=key, images=[str(path)], step=step)
    elif isinstance(logger, TensorBoardLogger):
        image = (imread(path)[..., :3] * 255).astype(np.uint8)
        logger.experiment.add_image(key, image, step, dataformats="HWC")


def log_summary(logger: Logger | None, values: dict[str, Any], step: int) -> None:
    """Flat numeric results (evaluation metrics, the objective) under their keys."""
    if logger is None:
        return
    numbers = {k: float(v) for k, v in values.items() if isinstance(v, int | float)}
    if numbers:
        logger.log_metrics(numbers, step=step)
        logger.save()


def finish(logger: Logger | None) -> None:
    """Close a stage's run so the next stage's logger opens its own (W&B keeps one per process)."""
    if isinstance(logger, WandbLogger):
        logger.experiment.finish()
    elif logger is not None:
        logger.finalize("success")


def flatten(metrics: dict[str, dict[str, float]], prefix: str) -> dict[str, float]:
    """{"soscope": {"median_pearson": …}} → {"eval/soscope/median_pearson": …}."""
    return {
        f"{prefix}/{method}/{k}": v for method, values in metrics.items() for k, v in values.items()
    }
