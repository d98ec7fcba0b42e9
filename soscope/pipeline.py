"""The one orchestrator: load a section, train both stages, enhance, evaluate, write outputs."""

from __future__ import annotations

import json
import logging
import os
import signal
import warnings
from pathlib import Path
from typing import Any

import anndata as ad
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from soscope.data.anndata_io import spatial_library, write_h5ad_atomic
from soscope.data.datamodule import LOADER_KEYS, SpotDataModule
from soscope.data.matrices import Matrix, assemble, dense
from soscope.data.sample import Section, SpotGraph, graph_on
from soscope.data.tiles import TiledSection, on_device
from soscope.evaluate.baselines import BASELINES, NEEDS_POSITIONS, run_baseline
from soscope.evaluate.metrics import median_spacing, summarize
from soscope.io_utils import atomic_path, atomic_save_npy
from soscope.plotting import plot_enhanced, plot_reconstruction
from soscope.predictor import Predictor
from soscope.resume import attempt_version, check_checkpoint_fits, resume_point
from soscope.training.base import LatentGraphModule
from soscope.training.callbacks import StepSeed
from soscope.training.loggers import finish, log_figure
from soscope.training.progress import ProgressLog, StageProgressBar
from soscope.training.soscope import SoScopeModule
from soscope.training.vgae import VGAEModule

log = logging.getLogger(__name__)
STAGE_FIGURES = {"vgae": "vgae.png", "soscope": "enhanced.png"}
VIEW_ENTRIES = 2**24  # of one inference view: 64 MiB a float32 tensor


def data_dims(section: Section) -> dict[str, int]:
    """The sizes the modules take from the data rather than from the config."""
    graph = section.graph
    return {"n_features": int(graph.x.size(1)), "feat_dim": int(graph.sub_feat.size(1))}


def neighbourhood_mode(key: str, mode: str, section: Section) -> str:
    """`mode` of option `key` (subspot_context, share_prior), or "none" (with a warning) where
    the section has no spot and subspot positions to interpolate at — the original's datasets
    often come without them."""
    graph = section.graph
    has_positions = all(getattr(graph, name, None) is not None for name in ("pos", "sub_pos"))
    if mode == "none" or has_positions:
        return mode
    log.warning(
        "model.%s=%s needs spot and subspot positions, which %s lacks "
        "(positions.csv / sub_positions.csv in a dataset directory): training without it",
        key,
        mode,
        section.name or "this dataset",
    )
    return "none"


def stage_callbacks(cfg: DictConfig, ckpt_dir: Path) -> list[L.Callback]:
    """The `callbacks` group, checkpoints in `ckpt_dir`, per-step seeding and the stage's
    progress (in the log, and as a bar unless `trainer.enable_progress_bar` is false)."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint):
            callback.dirpath = str(ckpt_dir)
    callbacks += [StepSeed(cfg.seed), ProgressLog()]
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(StageProgressBar())
    return callbacks


def stage_logger(cfg: DictConfig, name: str) -> Logger | None:
    """The run's experiment logger for `name` (a stage, or the evaluation); a logger that writes
    into a folder per name (CSV, TensorBoard) logs a repeated attempt into a subfolder of its
    own (`attempt_version`), so a resumed run keeps the earlier attempt's logs."""
    if not cfg.get("logger"):
        return None
    make = instantiate(cfg.logger)
    if "version" not in cfg.logger:
        return make(name=name)
    return make(name=name, version=attempt_version(Path(cfg.logger.save_dir) / name))


def fit_stage(
    module: LatentGraphModule,
    datamodule: SpotDataModule,
    cfg: DictConfig,
    out_dir: Path,
    ckpt_path: Path | None = None,
) -> L.Trainer:
    """Train one stage (resuming from `ckpt_path` if given), then save, score and picture it.

    A Ctrl-C while training raises `KeyboardInterrupt` here (Lightning would exit the process),
    with Ctrl-C working again afterwards."""
    stage = module.stage_name
    ckpt_dir = out_dir / "checkpoints"
    if ckpt_path is not None:
        check_checkpoint_fits(module, ckpt_path)
    logger = stage_logger(cfg, stage)
    callbacks = stage_callbacks(cfg, ckpt_dir / stage)
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        max_epochs=cfg.epochs[stage],
        default_root_dir=str(out_dir),
        callbacks=callbacks,
        logger=logger or False,
        # Without a checkpoint callback (callbacks=none), Lightning's own would save every epoch.
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
    )
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SystemExit:
        if not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores it after
        raise KeyboardInterrupt from None
    if datamodule.val_fraction > 0:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    final = ckpt_dir / f"{stage}.ckpt"
    partial = final.with_name(f".{final.name}.partial")
    trainer.save_checkpoint(partial)  # every rank takes part; rank 0 writes
    if trainer.is_global_zero:
        os.replace(partial, final)
        figure = out_dir / STAGE_FIGURES[stage]
        stage_figure(cfg, module, datamodule, figure)
        log_figure(logger, f"{stage}/maps", figure, trainer.global_step)
    finish(logger)
    return trainer


def inference_device(cfg: DictConfig) -> torch.device:
    """Where the run's model infers: the GPU when it trained on one (`trainer.accelerator`
    gpu or cuda) and one is present, else the CPU."""
    on_gpu = cfg.trainer.get("accelerator") in ("gpu", "cuda")
    return torch.device("cuda" if on_gpu and torch.cuda.is_available() else "cpu")


def predictor(cfg: DictConfig, model: SoScopeModule, datamodule: SpotDataModule) -> Predictor:
    """The section's `Predictor` on the device the model trained on, over `inference_tiles`
    (the same result in the memory of one tile)."""
    device = inference_device(cfg)
    graph, model = datamodule.section.graph, model.to(device)
    tiles = on_device(inference_tiles(datamodule, model.halo(), graph), device)
    return Predictor(model, graph_on(graph, device), tiles)


def inference_tiles(
    datamodule: SpotDataModule, halo: tuple[int, int], graph: SpotGraph
) -> TiledSection | None:
    """The views inference decodes one at a time: the run's tiles (None: the whole section),
    or `finer_tiles` where those would be large."""
    datamodule.setup()  # decides `auto` batching
    run_size = datamodule.tile_size if datamodule.batching == "tiles" else graph.num_nodes
    finer = finer_tiles(graph, halo, run_size)
    return datamodule.tiles(halo, graph) if finer is None else finer


def finer_tiles(graph: SpotGraph, halo: tuple[int, int], run_size: int) -> TiledSection | None:
    """Tiles of `graph` whose views hold at most `VIEW_ENTRIES` subspot × feature values (a
    view's outputs and the decoder's intermediates are a dozen tensors of that size), when
    views of `run_size` spots would hold more; else None."""
    values_a_spot = graph.num_subspots * graph.x.size(1) / graph.num_nodes
    spots = max(1, int(VIEW_ENTRIES / values_a_spot))
    return None if run_size <= spots else TiledSection(graph, spots, *halo)


def predict(
    cfg: DictConfig, model: SoScopeModule, datamodule: SpotDataModule, layers: bool = True
) -> tuple[Matrix, dict[str, Matrix]]:
    """The enhanced profiles with the run's output options, and (with `layers`) the .h5ad
    layers beside them: the predictive sd (when `predictive_sd_samples` > 0) and, with
    `mean_unclipped_layer`, the model's mean before clipping and spot consistency. They are
    assembled view by view, as CSR matrices where `sparse_output` says so."""
    unclipped = layers and OmegaConf.select(cfg, "mean_unclipped_layer", default=False)
    blocks = predictor(cfg, model, datamodule).outputs(
        cfg.non_negative,
        cfg.consistency,
        cfg.predictive_sd_samples if layers else 0,
        cfg.seed,
        unclipped,
    )
    sparse_output = OmegaConf.select(cfg, "sparse_output", default="auto")
    matrices = assemble(blocks, datamodule.section.graph.num_subspots, sparse_output)
    return matrices.pop("enhanced"), matrices


def stage_figure(
    cfg: DictConfig, module: LatentGraphModule, datamodule: SpotDataModule, path: Path
) -> None:
    """Stage 1: spot input | reconstruction; stage 2: spot input | truth | enhanced."""
    section = datamodule.section
    with atomic_path(path) as tmp:
        if isinstance(module, SoScopeModule):
            enhanced = predict(cfg, module, datamodule, layers=False)[0]
            plot_enhanced(section, enhanced, tmp, cfg.plot_features)
        else:
            reconstructed = module.cpu().predict_spots(section.graph).numpy()
            plot_reconstruction(section, reconstructed, tmp, cfg.plot_features)


def train_both_stages(
    cfg: DictConfig, datamodule: SpotDataModule, out_dir: Path
) -> tuple[SoScopeModule, L.Trainer]:
    """Stage 1 (VGAE), then stage 2 (soScope) from the stage-1 encoder; resumes either stage."""
    dims = data_dims(datamodule.section)
    neighbourhood = {
        key: neighbourhood_mode(key, cfg.model.soscope[key], datamodule.section)
        for key in ("subspot_context", "share_prior")
    }
    model: SoScopeModule = instantiate(cfg.model.soscope, _convert_="all", **neighbourhood, **dims)
    soscope_from = resume_point(cfg, out_dir, "soscope")
    if soscope_from is None:  # stage 2 starts fresh, so it needs a trained stage 1
        vgae_done = out_dir / "checkpoints" / "vgae.ckpt"
        vgae: VGAEModule = instantiate(cfg.model.vgae, _convert_="all", **dims)
        if cfg.get("resume") and vgae_done.is_file():
            vgae.load_state_dict(check_checkpoint_fits(vgae, vgae_done)["state_dict"])
        else:
            fit_stage(vgae, datamodule, cfg, out_dir, resume_point(cfg, out_dir, "vgae"))
        model.load_encoder(vgae.encoder)
    trainer = fit_stage(model, datamodule, cfg, out_dir, soscope_from)
    return model, trainer


def evaluate_against_truth(
    section: Section, enhanced: Matrix, sd: Matrix | None = None
) -> dict[str, dict[str, float]]:
    """soscope and the baselines against the ground truth, when there is one.

    Baselines that interpolate need spot positions and run when the section has them;
    soscope's predictive `sd`, when given, is scored for calibration.
    """
    if section.truth is None:
        return {}
    graph = section.graph
    x, sub_to_spot = graph.x.numpy(), graph.sub_to_spot.numpy()
    has_pos = (
        getattr(graph, "pos", None) is not None and getattr(graph, "sub_pos", None) is not None
    )
    pos = graph.sub_pos.numpy() if has_pos else None
    methods = {"soscope": dense(enhanced)}
    sd = None if sd is None else dense(sd)
    for name in BASELINES:
        if has_pos or name not in NEEDS_POSITIONS:
            methods[name] = run_baseline(name, section)
    return {
        name: summarize(pred, section.truth, x, sub_to_spot, pos, sd if name == "soscope" else None)
        for name, pred in methods.items()
    }


def subspot_library(section: Section) -> dict[str, dict] | None:
    """`uns['spatial']` of the enhanced subspots: the input's libraries, else one made from the
    section's image; None when the section has no subspot positions to place."""
    sub_pos = getattr(section.graph, "sub_pos", None)
    if sub_pos is None:
        return None
    diameter = section.meta.get("sub_diameter") or median_spacing(sub_pos.numpy())
    carried = section.meta.get("spatial")
    return spatial_library(diameter, carried, section.image, section.name, section.image_scale)


def write_outputs(
    adata: ad.AnnData, metrics: dict[str, Any], out_dir: Path, infer_subspot_npy: bool = False
) -> None:
    """enhanced.h5ad (the subspot AnnData `SoScope.enhance` gives), metrics.json and, if
    asked, infer_subspot.npy (its `X`, the original's output), each written atomically."""
    if infer_subspot_npy:
        atomic_save_npy(out_dir / "infer_subspot.npy", dense(adata.X))
    write_h5ad_atomic(adata, out_dir / "enhanced.h5ad")
    with atomic_path(out_dir / "metrics.json") as tmp:
        Path(tmp).write_text(json.dumps(metrics, indent=2))


def format_metrics(metrics: dict[str, Any]) -> str:
    """A small table: one row per method, one column per metric; then the objective."""
    methods = {k: v for k, v in metrics.items() if isinstance(v, dict)}
    objective = metrics.get("objective")
    tail = "" if objective is None else f"\nobjective (held-out spot Pearson r): {objective:.4f}"
    if not methods:
        return "no ground truth: nothing to evaluate" + tail
    columns = list(next(iter(methods.values())))
    width = max(len(c) for c in columns)
    name_width = max(len(name) for name in ["method", *methods])
    lines = [f"{'method':<{name_width}}  " + "  ".join(f"{c:>{width}}" for c in columns)]
    for method, values in methods.items():
        cells = (f"{values.get(c, float('nan')):>{width}.4f}" for c in columns)
        lines.append(f"{method:<{name_width}}  " + "  ".join(cells))
    return "\n".join(lines) + tail


def print_lightning_once() -> None:
    """Under Hydra, Lightning's messages reach the console through Hydra's handlers: drop its own.

    Also silences the note that the validation loader is empty (no spots are held out).
    """
    warnings.filterwarnings("ignore", message="Total length of `DataLoader` across ranks is zero")
    if logging.getLogger().handlers:
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).handlers.clear()


def split_data_config(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """`cfg.data` as (what loads the section, how it is served: `LOADER_KEYS`)."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    return data, {key: data.pop(key) for key in LOADER_KEYS if key in data}


def load_section(cfg: DictConfig) -> Section:
    """The section `cfg.data` describes."""
    return instantiate(split_data_config(cfg)[0])


def make_datamodule(cfg: DictConfig, section: Section | None = None) -> SpotDataModule:
    """The run's data: `section`, or the one `cfg.data` loads (on first use), served as its
    keys `batching`, `tile_size` and `feature_dtype` say (see `SpotDataModule`)."""
    source, loading = split_data_config(cfg)
    return SpotDataModule(
        section or (lambda: instantiate(source)),
        val_fraction=cfg.validation.fraction,
        seed=cfg.seed,
        **loading,
    )
