"""Bad input to the training command, both dataset readers and the original's API.

Every case gives one `SoScopeInputError` naming the file and the problem; the command prints
it as one line on stderr and exits with status 2 (no traceback), and no output is written.
"""

import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from soscope import infer, two_step_train
from soscope.cli import INPUT_ERROR_STATUS, input_error, train_main
from soscope.config import load_config
from soscope.data.dataset_h5ad import SUBSPOTS, write_dataset_h5ad
from soscope.data.reference_io import write_reference_dir
from soscope.datasets import make_synthetic_tissue
from soscope.errors import SoScopeInputError

ROOT = Path(__file__).resolve().parents[1]
N_SPOTS, K, N_FEATURES = 9, 7, 9  # the 3×3 Visium tissue below
HYDRA_FILES = {".hydra", "train.log"}  # what Hydra writes before the job starts


@pytest.fixture(scope="module")
def tissue():
    return make_synthetic_tissue(n_rows=3, n_cols=3, seed=0)


def edit_npy(root: Path, name: str, change) -> None:
    np.save(root / name, change(np.load(root / name)))


def set_cell(value, row=0, col=0, relative=False):
    """A change that sets (or, `relative`, adds to) one cell of an array."""

    def change(array):
        array = array.astype(np.float64)
        array[row, col] = array[row, col] + value if relative else value
        return array

    return change


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# name: (corrupt the dataset directory, the file named, the problem named)
REFERENCE_CASES = {
    "wrong shape": (lambda r: edit_npy(r, "label.npy", np.ravel), "label.npy", "2-D"),
    "mismatched spots": (
        lambda r: pd.DataFrame({"x": [0.0], "y": [0.0]}).to_csv(r / "positions.csv", index=False),
        "positions.csv",
        f"1 rows, expected {N_SPOTS}",
    ),
    "non-numeric cells": (
        lambda r: np.save(r / "label.npy", np.full((N_SPOTS, N_FEATURES), "3")),
        "label.npy",
        "not real numbers",
    ),
    "NaN": (
        lambda r: edit_npy(r, "support_feature.npy", set_cell(np.nan, 5, 1)),
        "support_feature.npy",
        "1 NaN",
    ),
    "inf": (lambda r: edit_npy(r, "label.npy", set_cell(np.inf)), "label.npy", "1 infinite"),
    "negative counts": (
        lambda r: edit_npy(r, "label.npy", set_cell(-1.0, col=2)),
        "label.npy",
        "negative counts in 1 features: gene_2",
    ),
    "fractional counts": (
        lambda r: edit_npy(r, "label.npy", set_cell(0.5 / K, col=4, relative=True)),
        "label.npy",
        "non-integer counts in 1 features: gene_4",
    ),
    "empty tissue": (
        lambda r: np.save(r / "label.npy", np.zeros((0, N_FEATURES))),
        "label.npy",
        "is empty",
    ),
    "duplicate feature names": (
        lambda r: (r / "feature_names.txt").write_text("\n".join(["g"] * N_FEATURES)),
        "feature_names.txt",
        "duplicate feature names: g",
    ),
    "subspot rows not divisible by K": (
        lambda r: edit_npy(r, "support_feature.npy", lambda a: a[:-1]),
        "support_feature.npy",
        f"{N_SPOTS * K - 1} rows, not a positive multiple of the {N_SPOTS} spots",
    ),
    "out-of-range edges": (
        lambda r: edit_npy(r, "adj.npy", lambda a: np.vstack([a, [0, N_SPOTS, 1.0]])),
        "adj.npy",
        f"outside the {N_SPOTS} nodes",
    ),
    "truncated npy": (lambda r: truncate(r / "sub_adj.npy"), "sub_adj.npy", "truncated"),
}


def subspot_field(key: str, change):
    """A change of the dataset .h5ad: `change` applied to uns['soscope_subspots'][key]."""

    def corrupt(adata):
        adata.uns[SUBSPOTS][key] = change(np.asarray(adata.uns[SUBSPOTS][key]))
        return adata

    return corrupt


def set_x(value, col=0, relative=False):
    def corrupt(adata):
        adata.X = set_cell(value, col=col, relative=relative)(np.asarray(adata.X))
        return adata

    return corrupt


def rename(axis: str, names):
    def corrupt(adata):
        setattr(adata, axis, names)
        return adata

    return corrupt


def move_spot_zero(index):
    return np.where(index == 0, 1, index)


# name: (return the AnnData changed, or damage the file; the field named; the problem)
H5AD_CASES = {
    "wrong shape": (subspot_field("features", np.ravel), "['features']", "2-D"),
    "mismatched spots": (
        subspot_field("sub_to_spot", lambda a: a + 1),
        "['sub_to_spot']",
        f"a spot in 0…{N_SPOTS - 1}",
    ),
    "non-numeric cells": (
        subspot_field("features", lambda a: a.astype(str)),
        "['features']",
        "not real numbers",
    ),
    "NaN": (set_x(np.nan), " X", "1 NaN"),
    "inf": (subspot_field("positions", set_cell(-np.inf, 3, 1)), "['positions']", "1 infinite"),
    "negative counts": (set_x(-1.0, col=3), "spot totals", "negative counts in 1 features: gene_3"),
    "fractional counts": (
        set_x(0.5 / K, col=1, relative=True),
        "spot totals",
        "non-integer counts in 1 features: gene_1",
    ),
    "empty tissue": (lambda adata: adata[:0].copy(), " X", "is empty"),
    "duplicate barcodes": (
        rename("obs_names", ["AAAC-1"] * N_SPOTS),
        "obs_names",
        "duplicate spot names: AAAC-1",
    ),
    "duplicate feature names": (
        rename("var_names", ["CD3E", "CD3E", *map(str, range(N_FEATURES - 2))]),
        "var_names",
        "duplicate feature names: CD3E",
    ),
    "spot without subspots": (
        subspot_field("sub_to_spot", move_spot_zero),
        "['sub_to_spot']",
        "1 spots have no subspot (the first: spot 0)",
    ),
    "out-of-range edges": (
        subspot_field("edges", lambda a: np.vstack([a, [0, N_SPOTS * K, 1.0]])),
        "['edges']",
        f"outside the {N_SPOTS * K} nodes",
    ),
    "truth rows": (subspot_field("truth", lambda a: a[:-1]), "['truth']", "rows, expected 63"),
    "truncated h5ad": (truncate, "dataset.h5ad", "cannot be read as an .h5ad file"),
}


def bad_reference_dir(tmp_path: Path, tissue, case: str) -> Path:
    root = tmp_path / "dataset"
    write_reference_dir(tissue.graph, root, feature_names=tissue.feature_names)
    REFERENCE_CASES[case][0](root)
    return root


def bad_dataset_h5ad(tmp_path: Path, tissue, case: str) -> Path:
    path = tmp_path / "dataset.h5ad"
    write_dataset_h5ad(tissue.to_section(), path)
    corrupt = H5AD_CASES[case][0]
    if corrupt is truncate:
        truncate(path)
    else:
        corrupt(ad.read_h5ad(path)).write_h5ad(path)
    return path


def command_config(out_dir: Path, *overrides: str):
    return load_config("logger=none", *overrides, output_dir=out_dir)


def assert_command_refuses(cfg, capsys, *named: str) -> None:
    """train_main exits 2 with one stderr line naming each of `named`; nothing is written."""
    with pytest.raises(SystemExit) as stopped:
        train_main(cfg)
    assert stopped.value.code == INPUT_ERROR_STATUS
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("soscope: error: "), lines
    for text in named:
        assert text in lines[0], lines[0]
    out_dir = Path(cfg.paths.output_dir)
    assert not out_dir.exists() or not any(out_dir.iterdir())


@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_the_command_refuses_a_bad_reference_dir(tmp_path, tissue, capsys, case):
    root = bad_reference_dir(tmp_path, tissue, case)
    _, file_name, problem = REFERENCE_CASES[case]
    cfg = command_config(tmp_path / "run", "data=reference_dir", f"data.path={root}")
    assert_command_refuses(cfg, capsys, str(root / file_name), problem)


@pytest.mark.parametrize("case", H5AD_CASES)
def test_the_command_refuses_a_bad_dataset_h5ad(tmp_path, tissue, capsys, case):
    path = bad_dataset_h5ad(tmp_path, tissue, case)
    _, field, problem = H5AD_CASES[case]
    cfg = command_config(tmp_path / "run", "data=anndata", f"data.path={path}")
    assert_command_refuses(cfg, capsys, str(path), field, problem)


@pytest.mark.parametrize(
    "overrides, named",
    [
        (["likelihood.name=zinb"], ["config", "unknown likelihood.name 'zinb'", "nb, poisson"]),
        (["platform.name=slide-seq"], ["config", "unknown platform.name 'slide-seq'", "visium"]),
        (["data=reference_dir"], ["config", "data.path must be set"]),
        (["ckpt_path=/nowhere/last.ckpt"], ["/nowhere/last.ckpt", "checkpoint not found"]),
        (["epochs.vgae=abc"], ["config", "epochs.vgae must be an integer, got 'abc'"]),
        (["validation.fraction=some"], ["config", "validation.fraction must be a number"]),
        (["data.feature_components=all"], ["config", "data.feature_components must be an"]),
    ],
    ids=[
        "likelihood",
        "platform",
        "no data path",
        "no checkpoint",
        "epochs",
        "fraction",
        "components",
    ],
)
def test_the_command_refuses_a_bad_config(tmp_path, capsys, overrides, named):
    assert_command_refuses(command_config(tmp_path / "run", *overrides), capsys, *named)


def test_the_command_refuses_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    path = tmp_path / "notes.ckpt"
    path.write_text("not a checkpoint")
    cfg = command_config(tmp_path / "run", f"ckpt_path={path}")
    assert_command_refuses(cfg, capsys, str(path), "not a readable checkpoint")


def test_the_input_error_is_found_behind_wrappers():
    inner = SoScopeInputError("label.npy", "is empty")
    try:
        try:
            raise inner
        except SoScopeInputError as err:
            raise RuntimeError("Error in call to target") from err
    except RuntimeError as wrapped:
        assert input_error(wrapped) is inner
    assert input_error(RuntimeError("a bug")) is None


def run_command(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "train.py", "logger=none", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_on_the_command_line_bad_data_exits_2_without_a_traceback(tmp_path, tissue):
    root = bad_reference_dir(tmp_path, tissue, "truncated npy")
    run_dir = tmp_path / "run"
    done = run_command("data=reference_dir", f"data.path={root}", f"hydra.run.dir={run_dir}")
    assert done.returncode == INPUT_ERROR_STATUS
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"soscope: error: {root / 'sub_adj.npy'}: is truncated")
    assert "Traceback" not in done.stdout
    assert {p.name for p in run_dir.iterdir()} <= HYDRA_FILES


def test_on_the_command_line_an_unknown_option_is_named(tmp_path):
    done = run_command("likelihood=zinb", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "Could not find 'likelihood/zinb'" in done.stderr
    assert "Available options in 'likelihood'" in done.stderr
    assert not (tmp_path / "run").exists()


def original_configs(tmp_path: Path, tissue, trainers=("VGAETrainer_NB", "soScope_NB")):
    """The original's two YAML files for the tissue (small latent), paths in stage order."""
    params = f"{{gene_dim: {N_FEATURES}, sub_dim: {tissue.graph.sub_feat.size(1)}, z_dim: 8}}"
    paths = []
    for name, trainer in zip(("VGAE.yml", "soScope.yml"), trainers, strict=True):
        (tmp_path / name).write_text(f"trainer: {trainer}\nparams: {params}\n")
        paths.append(tmp_path / name)
    return paths


@pytest.mark.parametrize("case", ["negative counts", "subspot rows not divisible by K"])
def test_two_step_train_refuses_bad_data_before_training(tmp_path, tissue, case):
    root = bad_reference_dir(tmp_path, tissue, case)
    _, file_name, problem = REFERENCE_CASES[case]
    configs = original_configs(tmp_path, tissue)
    with pytest.raises(SoScopeInputError, match=problem) as caught:
        two_step_train(None, tmp_path / "v", tmp_path / "s", root, *configs, device="cpu")
    assert str(root / file_name) in str(caught.value)
    assert not (tmp_path / "v").exists() and not (tmp_path / "s").exists()


def test_two_step_train_names_an_unknown_trainer(tmp_path, tissue):
    configs = original_configs(tmp_path, tissue, ("VGAETrainer_NB", "soScope_ZINB"))
    with pytest.raises(SoScopeInputError, match="soScope.yml: unknown trainer 'soScope_ZINB'"):
        two_step_train(None, tmp_path / "v", tmp_path / "s", tmp_path, *configs)


def test_infer_refuses_bad_data_and_writes_no_result(tmp_path, tissue):
    good = tmp_path / "good"
    write_reference_dir(tissue.graph, good, feature_names=tissue.feature_names)
    configs = original_configs(tmp_path, tissue)
    two_step_train(None, tmp_path / "v", tmp_path / "s", good, *configs, "cpu", epochs=[1, 1])
    root = bad_reference_dir(tmp_path, tissue, "out-of-range edges")
    with pytest.raises(SoScopeInputError, match="adj.npy: 1 edges point outside"):
        infer(tmp_path / "s", data_dir=root, result_dir=tmp_path / "result", device="cpu")
    assert not (tmp_path / "result" / "infer_subspot.npy").exists()


def test_a_scanpy_h5ad_given_to_training_points_to_preprocessing(tmp_path, tissue, capsys):
    path = tmp_path / "scanpy.h5ad"
    adata = ad.AnnData(np.ones((N_SPOTS, N_FEATURES), np.float32))
    adata.obsm["spatial"] = tissue.spot_pos
    adata.write_h5ad(path)
    cfg = command_config(tmp_path / "run", "data=anndata", f"data.path={path}")
    assert_command_refuses(
        cfg, capsys, str(path), "is not a soscope dataset", "soscope-preprocess input=anndata"
    )


def test_a_checkpoint_of_other_sizes_is_refused(tmp_path, tissue, capsys):
    import torch

    from soscope.training.vgae import VGAEModule

    dims = {"n_features": N_FEATURES, "feat_dim": tissue.graph.sub_feat.size(1)}
    other = VGAEModule(likelihood="nb", z_dim=4, hidden=8, **dims)
    path = tmp_path / "other.ckpt"
    torch.save({"soscope_stage": "vgae", "state_dict": other.state_dict()}, path)
    cfg = command_config(
        tmp_path / "run", "data.n_rows=3", "data.n_cols=3", "model.z_dim=8", f"ckpt_path={path}"
    )
    with pytest.raises(SystemExit):
        train_main(cfg)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"soscope: error: {path}: does not fit this run's data and model")
    assert "resume=true" in line


def run_main(monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    """`soscope-train <argv>` in this process: (exit status, the one stderr line)."""
    quiet = ["hydra/job_logging=none", "hydra/hydra_logging=none"]
    monkeypatch.setattr(sys, "argv", ["soscope-train", *argv, *quiet])
    with pytest.raises(SystemExit) as stopped:
        train_main()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return stopped.value.code, lines[0]


def test_an_added_key_nothing_reads_is_refused(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    status, line = run_main(monkeypatch, capsys, "+epoch.vgae=5", f"hydra.run.dir={run_dir}")
    assert status == INPUT_ERROR_STATUS
    assert line == (
        "soscope: error: config: +epoch.vgae=5 adds the key 'epoch.vgae', which soscope does "
        "not read; did you mean epochs.vgae?"
    )
    assert {p.name for p in run_dir.iterdir()} <= HYDRA_FILES


@pytest.mark.parametrize(
    "choice, extra",
    [("hparams_search=optuna", "sweep"), ("hydra/launcher=submitit_slurm", "slurm")],
)
def test_a_missing_extra_is_named(monkeypatch, capsys, choice, extra):
    monkeypatch.setattr("soscope.extras.installed", lambda modules: False)
    status, line = run_main(monkeypatch, capsys, "-m", choice)
    assert status == INPUT_ERROR_STATUS
    assert line.startswith(f"soscope: error: config: {choice} needs the optional package")
    assert line.endswith(f"pip install 'soscope[{extra}]'")


def test_a_missing_logger_package_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("soscope.extras.installed", lambda modules: False)
    cfg = load_config("logger=wandb", output_dir=tmp_path / "run")
    assert_command_refuses(cfg, capsys, "logger=wandb needs", "pip install 'soscope[wandb]'")


@pytest.mark.parametrize("with_folder", [False, True], ids=["no run folder", "not a run folder"])
def test_resume_needs_a_run_folder(tmp_path, monkeypatch, capsys, with_folder):
    folder = [f"hydra.run.dir={tmp_path}"] if with_folder else []
    status, line = run_main(monkeypatch, capsys, "resume=true", *folder)
    assert status == INPUT_ERROR_STATUS
    expected = "has no .hydra/config.yaml to resume from" if with_folder else "needs the run folder"
    assert expected in line
