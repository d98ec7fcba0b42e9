"""`train.py`'s job end to end on tiny synthetic sections, through Hydra's compose API."""

import json
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from soscope import pipeline
from soscope.config import CONF_MODULE, load_config
from soscope.data.datamodule import SpotDataModule
from soscope.evaluate.baselines import BASELINES
from soscope.job import run
from soscope.pipeline import inference_device, inference_tiles, neighbourhood_mode
from soscope.predictor import Predictor
from soscope.training.soscope import SoScopeModule
from tests.training.test_modules import module_args

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.n_rows=6", "data.n_cols=6", "model.z_dim=16", "model.hidden=32"]


def config(tmp_path, *overrides):
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        return compose(
            "config",
            overrides=[
                *TINY,
                f"paths.output_dir={tmp_path}",
                "trainer.enable_progress_bar=false",
                *overrides,
            ],
        )


def test_the_job_writes_every_output(tmp_path):
    metrics = run(config(tmp_path, "epochs.vgae=3", "epochs.soscope=3"))
    assert set(metrics) == {"soscope", *BASELINES, "objective"}
    assert metrics["objective"] is None
    for name in ("enhanced.h5ad", "enhanced.png", "vgae.png", "metrics.json"):
        assert (tmp_path / name).is_file()
    assert not (tmp_path / "infer_subspot.npy").exists()  # only on request
    assert (tmp_path / "checkpoints" / "vgae.ckpt").is_file()
    assert (tmp_path / "checkpoints" / "soscope.ckpt").is_file()
    assert list((tmp_path / "csv").rglob("metrics.csv"))
    adata = ad.read_h5ad(tmp_path / "enhanced.h5ad")
    assert adata.shape == (36 * 7, 9) and set(adata.layers) == {"sd", "truth"}
    assert adata.obsm["spatial"].shape == (36 * 7, 2)
    assert adata.uns["soscope"]["config"]["likelihood"]["name"] == "nb"
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    "overrides",
    [
        ["likelihood=poisson", "platform=grid"],
        ["likelihood=gaussian"],
        ["platform=cells"],
        ["likelihood=joint_pnb", "platform=grid", "platform.factor=3"],
        [
            "likelihood=joint_gaussian",
            "model.soscope.node_loss=likelihood",
            "model.graph_loss=sampled",
        ],
        ["model.soscope.gamma_mode=lr", "consistency=none", "logger=tensorboard"],
    ],
)
def test_every_likelihood_and_platform_runs(tmp_path, overrides):
    metrics = run(config(tmp_path, "epochs.vgae=2", "epochs.soscope=2", *overrides))
    assert np.isfinite(metrics["soscope"]["median_pearson"])


def test_training_beats_replicate_on_a_small_tissue(tmp_path):
    # 144 spots; over seeds 0-2 this setting leads replicate by 0.018-0.048 (deterministic per seed).
    overrides = ["data.n_rows=12", "data.n_cols=12", "model.z_dim=128", "model.hidden=128"]
    epochs = ["epochs.vgae=200", "epochs.soscope=400", "logger=none", "callbacks=none"]
    metrics = run(config(tmp_path, *overrides, *epochs))
    ours, baseline = metrics["soscope"], metrics["replicate"]
    assert ours["median_pearson"] > baseline["median_pearson"] + 0.01
    assert ours["median_within_spot_pearson"] > 0.2


def test_train_py_runs_from_the_command_line(tmp_path):
    command = [
        sys.executable,
        "train.py",
        *TINY,
        "epochs.vgae=1",
        "epochs.soscope=1",
        f"hydra.run.dir={tmp_path}",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "median_pearson" in done.stdout
    assert (tmp_path / "enhanced.h5ad").is_file()


def test_a_dataset_h5ad_trains_through_data_anndata(tmp_path):
    from soscope.data.dataset_h5ad import write_dataset_h5ad
    from soscope.datasets import make_synthetic_tissue

    write_dataset_h5ad(make_synthetic_tissue(n_rows=5, n_cols=5).to_section(), tmp_path / "d.h5ad")
    overrides = [
        "data=anndata",
        f"data.path={tmp_path / 'd.h5ad'}",
        "epochs.vgae=2",
        "epochs.soscope=2",
    ]
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, f"paths.output_dir={tmp_path / 'run'}"])
    metrics = run(cfg)
    assert np.isfinite(metrics["soscope"]["median_pearson"])  # the truth travels in the file


@pytest.mark.parametrize("key", ["subspot_context", "share_prior"])
def test_neighbourhood_options_fall_back_to_none_without_positions(tiny_tissue, caplog, key):
    section = tiny_tissue.to_section()
    assert neighbourhood_mode(key, "interp", section) == "interp"
    section.graph = section.graph.clone()  # not the session's shared tissue
    del section.graph.sub_pos
    with caplog.at_level("WARNING"):
        assert neighbourhood_mode(key, "interp", section) == "none"
    assert f"model.{key}=interp needs spot and subspot positions" in caplog.text
    assert neighbourhood_mode(key, "none", section) == "none"


def test_inference_runs_on_the_device_the_model_trained_on(tmp_path, monkeypatch):
    assert inference_device(load_config("trainer=cpu", output_dir=tmp_path)).type == "cpu"
    gpu = load_config("trainer=gpu", output_dir=tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert inference_device(gpu).type == "cpu"  # no GPU here: the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert inference_device(gpu).type == "cuda"


def test_inference_views_are_finer_tiles_where_a_view_would_be_large(tiny_tissue, monkeypatch):
    section = tiny_tissue.to_section()
    model = SoScopeModule(**module_args(section, share_prior="interp"))
    full, tiled = SpotDataModule(section), SpotDataModule(section, "tiles", tile_size=12)
    graph, halo = section.graph, model.halo()
    assert inference_tiles(full, halo, graph) is None  # small: the whole section is one view
    assert inference_tiles(tiled, halo, graph) is tiled.tiles(halo, graph)
    monkeypatch.setattr(pipeline, "VIEW_ENTRIES", 4 * 7 * graph.x.size(1))  # about 4 spots
    fine = inference_tiles(full, halo, graph)
    assert len(fine) > len(tiled.tiles(halo, graph))
    whole, by_view = Predictor(model, graph), Predictor(model, graph, fine)
    torch.testing.assert_close(by_view.enhance(), whole.enhance())
    torch.testing.assert_close(by_view.predictive_sd(n_samples=2), whole.predictive_sd(n_samples=2))


def test_the_metrics_table_keeps_its_columns_under_long_method_names():
    metrics = {
        "soscope": {"median_pearson": 0.8, "rmse": 7.5},
        "interpolate_rescaled": {"median_pearson": 0.78, "rmse": 8.1},
        "objective": 0.5,
    }
    header, *rows, objective = pipeline.format_metrics(metrics).splitlines()
    assert len({len(line) for line in [header, *rows]}) == 1  # numbers right-aligned in columns
    assert header.index("rmse") + len("rmse") == rows[0].index("7.5000") + len("7.5000")
    assert rows[1].split() == ["interpolate_rescaled", "0.7800", "8.1000"]
    assert objective.startswith("objective")
