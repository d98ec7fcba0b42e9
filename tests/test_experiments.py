"""The experiment framework: config groups, sweeps, searches, loggers, DDP, resume and seeds."""

import math
import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from soscope.config import CONF_MODULE
from soscope.data.tiles import tile_cells
from soscope.job import run
from soscope.pipeline import load_section
from soscope.training.soscope import SoScopeModule

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "data.n_rows=5",
    "data.n_cols=5",
    "model.z_dim=16",
    "model.hidden=32",
    "trainer.enable_progress_bar=false",
]
GROUPS = {
    "likelihood": ["nb", "poisson", "gaussian", "joint_pnb", "joint_gaussian"],
    "platform": ["visium", "grid", "cells"],
    "schedule": ["original", "warmup"],
    "trainer": ["cpu", "ddp_cpu", "gpu", "ddp"],
    "logger": ["csv", "tensorboard", "wandb", "none"],
    "callbacks": ["default", "none"],
    "experiment": ["nb", "poisson", "gaussian", "multiomics"],
}


def enhanced_x(run_dir: Path) -> np.ndarray:
    """The enhanced profiles a run wrote."""
    return ad.read_h5ad(run_dir / "enhanced.h5ad").X


def config(tmp_path, *overrides):
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        return compose("config", overrides=[f"paths.output_dir={tmp_path}", *overrides])


def train_py(tmp_path, *args, env=None, timeout=300):
    flags = [a for a in args if a.startswith("-")]
    overrides = [a for a in args if not a.startswith("-")]
    command = [sys.executable, "train.py", *flags, *TINY, *overrides]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize("group,option", [(g, o) for g, options in GROUPS.items() for o in options])
def test_every_group_option_composes_and_instantiates(tmp_path, group, option):
    cfg = config(tmp_path, f"{group}={option}", "data.n_rows=3", "data.n_cols=3")
    section = load_section(cfg)
    dims = {"n_features": section.graph.x.size(1), "feat_dim": section.graph.sub_feat.size(1)}
    assert isinstance(instantiate(cfg.model.soscope, **dims), SoScopeModule)
    instantiate(cfg.model.vgae, **dims)
    for callback in (cfg.callbacks or {}).values():
        instantiate(callback)
    if cfg.logger:
        assert callable(instantiate(cfg.logger))
    if cfg.trainer.accelerator == "cpu":
        instantiate(cfg.trainer, logger=False)


def test_reference_dir_data_and_optuna_search_compose(tmp_path):
    cfg = config(tmp_path, "data=reference_dir", "data.path=/somewhere")
    assert cfg.data.likelihood == "nb"
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        cfg = compose("config", overrides=["hparams_search=optuna"], return_hydra_config=True)
    assert cfg.validation.fraction > 0
    assert "model.soscope.lr" in cfg.hydra.sweeper.params


@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_slurm", "submitit_local"])
def test_hydra_launchers_compose(launcher):
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.startswith("hydra")


def test_a_two_by_two_multirun_writes_four_run_folders(tmp_path):
    train_py(
        tmp_path,
        "-m",
        "likelihood=nb,poisson",
        "model.soscope.lr=1e-3,5e-4",
        "epochs.vgae=2",
        "epochs.soscope=2",
        f"hydra.sweep.dir={tmp_path}",
    )
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in runs] == ["0", "1", "2", "3"]
    for folder in runs:
        assert (folder / "metrics.json").is_file() and (folder / "enhanced.h5ad").is_file()


def test_an_optuna_search_of_two_trials_returns_the_held_out_objective(tmp_path):
    done = train_py(
        tmp_path,
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "epochs.vgae=2",
        "epochs.soscope=2",
        f"hydra.sweep.dir={tmp_path}",
    )
    results = (tmp_path / "optimization_results.yaml").read_text()
    assert "best_params" in results and "best_value" in results
    assert done.stdout.count("objective (held-out spot Pearson r)") == 2


def test_wandb_offline_keeps_metrics_and_images_in_the_run_folder(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    train_py(
        tmp_path,
        "logger=wandb",
        "epochs.vgae=2",
        "epochs.soscope=2",
        f"hydra.run.dir={tmp_path}",
        env=env,
    )
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 3  # stage 1, stage 2, evaluation
    logged = b"".join(path.read_bytes() for r in runs for path in r.glob("run-*.wandb"))
    for key in (
        b"vgae/node_loss",
        b"soscope/node_loss",
        b"soscope/gamma",
        b"eval/soscope/median_pearson",
    ):
        assert key in logged
    images = {p.parent.name for p in (tmp_path / "wandb").rglob("media/images/*/maps_*.png")}
    assert images == {"vgae", "soscope"}


def test_ddp_cpu_trains_on_tiles_in_two_processes(tmp_path):
    """Each of the two ranks takes its share of the tiles: ⌈tiles / 2⌉ steps an epoch."""
    tiling = ["data.batching=tiles", "data.tile_size=8"]
    train_py(
        tmp_path,
        "trainer=ddp_cpu",
        "epochs.vgae=2",
        "epochs.soscope=2",
        f"hydra.run.dir={tmp_path}",
        *tiling,
    )
    assert (tmp_path / "train_ddp_process_1.log").is_file()
    assert (tmp_path / "enhanced.h5ad").is_file()
    section = load_section(config(tmp_path, *TINY, *tiling))
    n_tiles = len(tile_cells(section.graph.pos.numpy(), section.graph.num_nodes, 8))
    assert n_tiles > 2
    checkpoint = torch.load(tmp_path / "checkpoints" / "soscope.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 2 * math.ceil(n_tiles / 2)


def final_weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoints" / "soscope.ckpt", weights_only=False)["state_dict"]


@pytest.mark.parametrize(
    "data, threads",
    [
        (["data.n_rows=20", "data.n_cols=20", "model.z_dim=128", "model.hidden=128"], 2),
        (["data.batching=tiles", "data.tile_size=8"], 1),
    ],
    ids=["the default tissue and model, two threads", "tiles"],
)
def test_resume_after_an_interrupted_stage_two_gives_the_same_weights(
    tmp_path, monkeypatch, data, threads
):
    # Two threads split the subspot gathers' backward sums: deterministic kernels must keep
    # their order (the autouse fixture restores one thread afterwards).
    torch.set_num_threads(threads)
    common = [*TINY, *data, "epochs.vgae=3", "epochs.soscope=6", "checkpoint_every=1"]
    common += ["logger=none", "predictive_sd_samples=0"]
    run(config(tmp_path / "whole", *common))

    original_step = SoScopeModule.training_step

    def interrupted(self, batch, batch_idx):
        if self.global_step == 3:
            raise KeyboardInterrupt
        return original_step(self, batch, batch_idx)

    monkeypatch.setattr(SoScopeModule, "training_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(config(tmp_path / "cut", *common))
    assert not (tmp_path / "cut" / "checkpoints" / "soscope.ckpt").exists()
    monkeypatch.setattr(SoScopeModule, "training_step", original_step)
    run(config(tmp_path / "cut", *common, "resume=true"))

    whole, resumed = final_weights(tmp_path / "whole"), final_weights(tmp_path / "cut")
    for name, value in whole.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0)
    np.testing.assert_array_equal(enhanced_x(tmp_path / "cut"), enhanced_x(tmp_path / "whole"))


def test_the_same_seed_repeats_exactly(tmp_path):
    common = [*TINY, "epochs.vgae=3", "epochs.soscope=3", "logger=none", "seed=7"]
    run(config(tmp_path / "a", *common))
    run(config(tmp_path / "b", *common))
    np.testing.assert_array_equal(enhanced_x(tmp_path / "a"), enhanced_x(tmp_path / "b"))
