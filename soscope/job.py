"""What `soscope-train` runs: the configured section through `SoScope` — both stages, then the
enhanced subspots — evaluated against the ground truth where there is one, written into the
run folder (`enhanced.h5ad`, `enhanced.zarr`, `metrics.json`; `infer_subspot.npy` on request) and
reported (figures, `summary.md`, the experiment logger).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from soscope.api import SoScope
from soscope.data.sample import Section
from soscope.data.spatialdata_io import enhanced_spatialdata, write_spatialdata
from soscope.pipeline import (
    evaluate_against_truth,
    format_metrics,
    print_lightning_once,
    stage_logger,
    write_outputs,
)
from soscope.report import write_run_figures, write_summary
from soscope.training.loggers import finish, flatten, log_figure, log_summary

log = logging.getLogger(__name__)
SPATIALDATA = "enhanced.zarr"


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run the whole job described by `cfg`; returns the evaluation metrics and the objective.

    The objective (for sweeps) is stage 2's held-out spot score when `validation.fraction` > 0,
    else None.
    """
    print_lightning_once()
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = SoScope.from_config(cfg).fit(output_dir=out_dir)
    if not model.trainer.is_global_zero:  # outputs and evaluation are rank 0's
        return {"objective": None}
    section = model.section
    adata = model.enhance()
    metrics: dict[str, Any] = evaluate_against_truth(section, adata.X, adata.layers.get("sd"))
    score = model.trainer.callback_metrics.get("soscope/val_heldout_pearson")
    metrics["objective"] = float(score) if score is not None else None
    write_outputs(adata, metrics, out_dir, cfg.infer_subspot_npy)
    if cfg.spatialdata and "spatial" in adata.obsm:
        write_spatialdata(enhanced_spatialdata(adata), out_dir / SPATIALDATA)
    report(cfg, section, metrics, out_dir)
    print(format_metrics(metrics))
    log.info("outputs written to %s", out_dir)
    return metrics


def report(cfg: DictConfig, section: Section, metrics: dict[str, Any], out_dir: Path) -> None:
    """The run's figures and summary.md into the run folder; the evaluation numbers, the
    objective and the figures into the experiment logger, in their own run."""
    figures = write_run_figures(cfg, metrics, out_dir)
    if cfg.get("logger"):
        logger = stage_logger(cfg, "evaluation")
        values = flatten({k: v for k, v in metrics.items() if isinstance(v, dict)}, "eval")
        values["objective"] = metrics["objective"]
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        log_summary(logger, values, step=0)
        for name, path in figures.items():
            log_figure(logger, f"evaluation/{name}", path, step=0)
        finish(logger)
    write_summary(cfg, section, metrics, out_dir)
