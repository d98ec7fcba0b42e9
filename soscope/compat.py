"""`two_step_train` and `infer` with the original soScope's arguments, files and YAML configs.

Users of the original can switch by changing one import: the same dataset directory, the same
`trainer:`/`params:` config files, the same `model.pt`/`checkpoint_{n}.pt` files and the same
`{result_dir}/infer_subspot.npy`. The model handed to stage 2 and to inference is the one after
the last epoch (the original keeps only the last `backup_every` backup).
"""

from __future__ import annotations

import logging as _logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml

from soscope.data.datamodule import SpotDataModule
from soscope.data.reference_io import read_reference_section
from soscope.data.sample import Section, SpotGraph
from soscope.errors import SoScopeInputError
from soscope.extras import LOGGERS, require
from soscope.io_utils import atomic_path, atomic_save_npy
from soscope.models.aggregation import spot_counts
from soscope.predictor import Predictor
from soscope.training.callbacks import OriginalCheckpoints
from soscope.training.progress import ProgressLog, StageProgressBar
from soscope.training.soscope import SoScopeModule
from soscope.training.vgae import VGAEModule

log = _logging.getLogger(__name__)

VGAE_TRAINERS = {
    "VGAETrainer": "gaussian",
    "VGAETrainer_NB": "nb",
    "VGAETrainer_Poisson": "poisson",
    "VGAETrainer_Joint_PNB": "joint_pnb",
    "VGAETrainer_Joint_GNB": "joint_gaussian",
}
SOSCOPE_TRAINERS = {
    "soScope_NB": "nb",
    "soScope_Poisson": "poisson",
    "soScope_Gaussian": "gaussian",
    "soScope_Joint": "joint_pnb",
    "soScope_JointGaussian": "joint_gaussian",
}
# The original's defaults for parameters a config file leaves out.
ORIGINAL_DEFAULTS = {
    "lr": 1e-4,
    "optimizer_name": "Adam",
    "weight_decay": 0.0,
    "scale": 11.16418,
    "head_num": 1,
    "beta_start_value": 1e-3,
    "beta_end_value": 1.0,
    "beta_n_iterations": 100000,
    "beta_start_iteration": 50000,
    "gamma_start_value": 1.0,
    "gamma_end_value": 1e-3,
    "graph_loss_weight": 1.0,
}
KNOWN_PARAMS = set(ORIGINAL_DEFAULTS) | {
    "gene_dim",
    "protein_dim",
    "sub_dim",
    "sub_node",
    "z_dim",
    "scale_p",
    "scale_g",
    "log_loss_every",
}


def read_config(path: str | Path, trainers: dict[str, str]) -> dict[str, Any]:
    """Load an original YAML config (`trainer:` and `params:`) and check its trainer and keys."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise SoScopeInputError(path, "config file not found") from None
    except yaml.YAMLError as err:
        raise SoScopeInputError(path, f"not valid YAML ({err})") from None
    if not isinstance(config, dict) or "trainer" not in config or "params" not in config:
        raise SoScopeInputError(path, "expected the keys 'trainer:' and 'params:'")
    if config["trainer"] not in trainers:
        raise SoScopeInputError(
            path, f"unknown trainer {config['trainer']!r}; expected one of {', '.join(trainers)}"
        )
    unknown = set(config["params"]) - KNOWN_PARAMS
    if unknown:
        raise SoScopeInputError(path, f"unknown parameters: {', '.join(sorted(unknown))}")
    return config


def module_arguments(config: dict[str, Any], trainers: dict[str, str]) -> dict[str, Any]:
    """Translate an original config into the keyword arguments of our LightningModules."""
    p = {**ORIGINAL_DEFAULTS, **config["params"]}
    protein_dim = int(p.get("protein_dim", 0))
    args = {
        "likelihood": trainers[config["trainer"]],
        "n_features": protein_dim + int(p["gene_dim"]),
        "feat_dim": int(p["sub_dim"]),
        "scale": float(p["scale"]),
        "protein_dim": protein_dim,
        "scale_p": p.get("scale_p"),
        "scale_g": p.get("scale_g"),
        "z_dim": int(p["z_dim"]),
        "heads": int(p["head_num"]),
        "lr": float(p["lr"]),
        "optimizer": p["optimizer_name"],
        "weight_decay": float(p["weight_decay"]),
        "beta": {
            "start_value": float(p["beta_start_value"]),
            "end_value": float(p["beta_end_value"]),
            "n_iterations": int(p["beta_n_iterations"]),
            "start_iteration": int(p["beta_start_iteration"]),
        },
    }
    if trainers is SOSCOPE_TRAINERS:
        args["graph_loss_weight"] = float(p["graph_loss_weight"])
        args["gamma"] = {
            "start_value": float(p["gamma_start_value"]),
            "end_value": float(p["gamma_end_value"]),
        }
    return args


def check_config_fits_data(config: dict, path: str | Path, graph: SpotGraph) -> None:
    """The config's feature, image-feature and subspot counts must match the dataset."""
    p = config["params"]
    expected = {
        "gene_dim (+ protein_dim) = features in label.npy": (
            int(p.get("protein_dim", 0)) + int(p["gene_dim"]),
            graph.x.size(1),
        ),
        "sub_dim = columns of support_feature.npy": (int(p["sub_dim"]), graph.sub_feat.size(1)),
    }
    if "sub_node" in p:
        k = int(spot_counts(graph.sub_to_spot, graph.num_nodes)[0])
        expected["sub_node = subspots per spot"] = (int(p["sub_node"]), k)
    for what, (config_value, data_value) in expected.items():
        if config_value != data_value:
            raise SoScopeInputError(
                path, f"{what}: the config says {config_value}, the data has {data_value}"
            )


def _accelerator(device: str) -> str:
    if str(device).startswith("cuda"):
        if torch.cuda.is_available():
            return "gpu"
        log.warning("device=%r but no CUDA device is available: running on the CPU", device)
    return "cpu"


def _copy_config(config: dict, directory: Path) -> None:
    with atomic_path(directory / "config.yml") as tmp:
        Path(tmp).write_text(yaml.safe_dump(config))


def _fit(
    module: L.LightningModule,
    section: Section,
    directory: Path,
    trainer_name: str,
    epochs: int,
    device: str,
    use_logger: bool,
    checkpoint_every: int,
    backup_every: int,
) -> None:
    logger: Any = False
    if use_logger:
        require("two_step_train(logging=...)", *LOGGERS["TensorBoardLogger"][1:])
        logger = L.pytorch.loggers.TensorBoardLogger(save_dir=str(directory), name="", version="")
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=_accelerator(device),
        devices=1,
        logger=logger,
        enable_checkpointing=False,
        enable_model_summary=False,
        log_every_n_steps=min(50, max(epochs, 1)),
        callbacks=[
            OriginalCheckpoints(directory, trainer_name, checkpoint_every, backup_every),
            ProgressLog(),
            StageProgressBar(),
        ],
        default_root_dir=str(directory),
    )
    trainer.fit(module, datamodule=SpotDataModule(section))


def two_step_train(
    logging: Any,
    vgae_experiment_dir: str,
    soScope_experiment_dir: str,
    data_dir: str,
    vgae_config_file: str,
    soScope_config_file: str,
    device: str = "cuda",
    checkpoint_every: int = 1000,
    backup_every: int = 200,
    epochs: Sequence[int] = (2500, 2500),
    num_neighbors: int = 6,
) -> SoScopeModule:
    """Train stage 1 (VGAE) then stage 2 (soScope) on an original-format dataset directory.

    Arguments and files as in the original: `logging` not None writes TensorBoard logs into the
    experiment directories; each directory gets `config.yml`, `model.pt` (after the last
    epoch, and every `backup_every` epochs) and `checkpoint_{n}.pt` (every `checkpoint_every`
    epochs); `epochs` is [stage 1, stage 2]; `num_neighbors` (6 for Visium, 4 for square grids)
    names the platform the graph in `adj.npy` was built for. Returns the trained stage-2 module.
    """
    if num_neighbors not in (4, 6):
        raise ValueError(
            f"num_neighbors must be 6 (Visium) or 4 (square grids), got {num_neighbors}"
        )
    if len(epochs) != 2:
        raise ValueError(f"epochs must be [stage 1, stage 2], got {epochs}")
    vgae_config = read_config(vgae_config_file, VGAE_TRAINERS)
    soscope_config = read_config(soScope_config_file, SOSCOPE_TRAINERS)
    likelihood = SOSCOPE_TRAINERS[soscope_config["trainer"]]
    protein_dim = int(soscope_config["params"].get("protein_dim", 0))
    section = read_reference_section(data_dir, likelihood, protein_dim)
    graph = section.graph
    check_config_fits_data(vgae_config, vgae_config_file, graph)
    check_config_fits_data(soscope_config, soScope_config_file, graph)

    stages = [
        (VGAEModule, vgae_config, VGAE_TRAINERS, Path(vgae_experiment_dir), epochs[0]),
        (SoScopeModule, soscope_config, SOSCOPE_TRAINERS, Path(soScope_experiment_dir), epochs[1]),
    ]
    previous = None
    for module_cls, config, trainers, directory, stage_epochs in stages:
        directory.mkdir(parents=True, exist_ok=True)
        _copy_config(config, directory)
        module = module_cls(**module_arguments(config, trainers))
        if previous is not None:
            module.load_encoder(previous.encoder)
        _fit(
            module,
            section,
            directory,
            config["trainer"],
            int(stage_epochs),
            device,
            logging is not None and logging is not False,
            checkpoint_every,
            backup_every,
        )
        previous = module
    return previous


def load_model_file(path: str | Path) -> SoScopeModule:
    """Rebuild a stage-2 module from a `model.pt` written by `two_step_train`."""
    path = Path(path)
    if not path.is_file():
        raise SoScopeInputError(path, "model file not found; train with two_step_train first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        hparams, weights = state["hparams"], state["state_dict"]
    except Exception as err:
        raise SoScopeInputError(path, f"not a soscope model file ({err})") from None
    if state.get("trainer") not in SOSCOPE_TRAINERS:
        raise SoScopeInputError(path, f"holds a {state.get('trainer')} model, not a soScope one")
    module = SoScopeModule(**hparams)
    module.load_state_dict(weights)
    return module


def model_to_infer(experiment_dir: str | Path, saved_model: Any) -> tuple[SoScopeModule, str]:
    """The model `infer` uses and how to name it: `saved_model` itself when it is a trained
    module (what `two_step_train` returns), else the file it names (a path, or a file name
    inside `experiment_dir`, e.g. `checkpoint_3.pt`), else `experiment_dir/model.pt`."""
    if isinstance(saved_model, SoScopeModule):
        return saved_model, "the saved_model given"
    if saved_model is not None and not isinstance(saved_model, str | Path):
        raise SoScopeInputError(
            "saved_model",
            f"expected what two_step_train returns, a model file or None, got "
            f"{type(saved_model).__name__}",
        )
    path = Path(experiment_dir) / "model.pt"
    if saved_model is not None:
        candidate = Path(saved_model)
        path = candidate if candidate.is_file() else Path(experiment_dir) / saved_model
    return load_model_file(path), str(path)


def infer(
    experiment_dir: str,
    non_negative: bool = True,
    num_neighbors: int = 6,
    data_dir: str | None = None,
    result_dir: str | None = None,
    device: str = "cuda",
    saved_model: SoScopeModule | str | Path | None = None,
) -> np.ndarray:
    """Enhance the dataset in `data_dir` with the model in `experiment_dir`.

    Writes `{result_dir}/infer_subspot.npy` (N·K × G, rows in the dataset's subspot order) and
    returns it. `saved_model` is, as in the original, the model `two_step_train` returned, or
    picks another file than `experiment_dir/model.pt` (a path, or a file name inside
    `experiment_dir`, e.g. `checkpoint_3.pt`).
    """
    if data_dir is None or result_dir is None:
        raise ValueError("infer needs data_dir and result_dir")
    if num_neighbors not in (4, 6):
        raise ValueError(
            f"num_neighbors must be 6 (Visium) or 4 (square grids), got {num_neighbors}"
        )
    module, model_name = model_to_infer(experiment_dir, saved_model)
    hp = module.hparams
    graph = read_reference_section(data_dir, hp.likelihood, hp.protein_dim).graph
    for what, trained, found in [
        ("features", hp.n_features, graph.x.size(1)),
        ("image-feature columns", hp.feat_dim, graph.sub_feat.size(1)),
    ]:
        if trained != found:
            raise SoScopeInputError(
                data_dir, f"has {found} {what}, but {model_name} was trained on {trained}"
            )
    device_name = "cuda" if _accelerator(device) == "gpu" else "cpu"
    predictor = Predictor(module.to(device_name), graph.to(device_name))
    enhanced = predictor.enhance(non_negative=non_negative).cpu().numpy()
    result = Path(result_dir)
    result.mkdir(parents=True, exist_ok=True)
    atomic_save_npy(result / "infer_subspot.npy", enhanced)
    return enhanced
