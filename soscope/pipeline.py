"""The one orchestrator: load a section, train both stages, enhance, evaluate, write outputs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from soscope.data.anndata_io import enhanced_anndata, write_h5ad_atomic
from soscope.data.datamodule import SpotDataModule
from soscope.data.sample import Section
from soscope.evaluate.baselines import replicate
from soscope.evaluate.metrics import summarize
from soscope.io_utils import atomic_path, atomic_save_npy
from soscope.plotting import plot_enhanced
from soscope.training.base import LatentGraphModule
from soscope.training.soscope import SoScopeModule
from soscope.training.vgae import VGAEModule

log = logging.getLogger(__name__)


def data_dims(section: Section) -> dict[str, int]:
    """The sizes the modules take from the data rather than from the config."""
    graph = section.graph
    return {"n_features": int(graph.x.size(1)), "feat_dim": int(graph.sub_feat.size(1))}


def fit_stage(
    module: LatentGraphModule,
    datamodule: SpotDataModule,
    cfg: DictConfig,
    epochs: int,
    out_dir: Path,
) -> L.Trainer:
    """Train one stage for `epochs` full passes and save its final checkpoint."""
    stage = module.stage_name
    ckpt_dir = out_dir / "checkpoints"
    callbacks = [
        L.pytorch.callbacks.ModelCheckpoint(
            dirpath=ckpt_dir / stage, every_n_epochs=cfg.checkpoint_every, save_last=True
        )
    ]
    logger = instantiate(cfg.logger)(name=stage) if cfg.get("logger") else False
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        max_epochs=epochs,
        default_root_dir=str(out_dir),
        callbacks=callbacks,
        logger=logger,
    )
    trainer.fit(module, datamodule=datamodule)
    with atomic_path(ckpt_dir / f"{stage}.ckpt") as tmp:
        trainer.save_checkpoint(tmp)
    return trainer


def train_both_stages(
    cfg: DictConfig, section: Section, out_dir: Path
) -> tuple[VGAEModule, SoScopeModule]:
    """Stage 1 (VGAE) then stage 2 (soScope) starting from the stage-1 encoder."""
    datamodule = SpotDataModule(section)
    dims = data_dims(section)
    vgae: VGAEModule = instantiate(cfg.model.vgae, **dims)
    fit_stage(vgae, datamodule, cfg, cfg.epochs.vgae, out_dir)
    model: SoScopeModule = instantiate(cfg.model.soscope, **dims)
    model.load_encoder(vgae.encoder)
    fit_stage(model, datamodule, cfg, cfg.epochs.soscope, out_dir)
    return vgae, model


def evaluate_against_truth(section: Section, enhanced: np.ndarray) -> dict[str, dict[str, float]]:
    """soscope and the `replicate` baseline against the ground truth, when there is one."""
    if section.truth is None:
        return {}
    graph = section.graph
    x = graph.x.numpy()
    sub_to_spot = graph.sub_to_spot.numpy()
    return {
        "soscope": summarize(enhanced, section.truth, x, sub_to_spot),
        "replicate": summarize(replicate(x, sub_to_spot), section.truth, x, sub_to_spot),
    }


def write_outputs(
    cfg: DictConfig,
    section: Section,
    enhanced: np.ndarray,
    metrics: dict[str, Any],
    out_dir: Path,
) -> None:
    """infer_subspot.npy, enhanced.h5ad, metrics.json and the figure, each written atomically."""
    atomic_save_npy(out_dir / "infer_subspot.npy", enhanced)
    adata = enhanced_anndata(
        enhanced,
        section.graph,
        feature_names=section.feature_names,
        spot_names=section.spot_names,
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    write_h5ad_atomic(adata, out_dir / "enhanced.h5ad")
    with atomic_path(out_dir / "metrics.json") as tmp:
        Path(tmp).write_text(json.dumps(metrics, indent=2))
    with atomic_path(out_dir / "enhanced.png") as tmp:
        plot_enhanced(section, enhanced, tmp, n_features=cfg.plot_features)


def format_metrics(metrics: dict[str, dict[str, float]]) -> str:
    """A small table: one row per method, one column per metric."""
    if not metrics:
        return "no ground truth: nothing to evaluate"
    columns = list(next(iter(metrics.values())))
    lines = ["method     " + "  ".join(f"{c:>28}" for c in columns)]
    for method, values in metrics.items():
        lines.append(f"{method:<10} " + "  ".join(f"{values[c]:>28.4f}" for c in columns))
    return "\n".join(lines)


def print_lightning_once() -> None:
    """Under Hydra, Lightning's messages reach the console through Hydra's handlers: drop its own."""
    if logging.getLogger().handlers:
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).handlers.clear()


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run the whole job described by `cfg`; returns the evaluation metrics."""
    print_lightning_once()
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    section: Section = instantiate(cfg.data)
    _, model = train_both_stages(cfg, section, out_dir)
    enhanced = model.enhance(
        section.graph, non_negative=cfg.non_negative, consistency=cfg.consistency
    ).numpy()
    metrics = evaluate_against_truth(section, enhanced)
    write_outputs(cfg, section, enhanced, metrics, out_dir)
    print(format_metrics(metrics))
    log.info("outputs written to %s", out_dir)
    return metrics
