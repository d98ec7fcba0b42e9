"""Optional dependencies: the installation extra each config option needs, named when missing.

Experiment tracking, sweeps and cluster launchers are not part of the base install
(`pip install soscope`); a command that asks for one without it stops with one line naming the
extra to install, e.g. `pip install 'soscope[sweep]'`.
"""

from __future__ import annotations

from importlib.util import find_spec

from soscope.errors import SoScopeInputError

# command-line choice → (modules, any one of which provides it; the extra that installs it)
COMMAND_LINE = {
    "hparams_search=optuna": (("hydra_plugins.hydra_optuna_sweeper",), "sweep"),
    "hydra/sweeper=optuna": (("hydra_plugins.hydra_optuna_sweeper",), "sweep"),
    "hydra/launcher=joblib": (("hydra_plugins.hydra_joblib_launcher",), "sweep"),
    "hydra/launcher=submitit_slurm": (("hydra_plugins.hydra_submitit_launcher",), "slurm"),
    "hydra/launcher=submitit_local": (("hydra_plugins.hydra_submitit_launcher",), "slurm"),
}
# logger class → (the choice that names it, modules, extra)
LOGGERS = {
    "WandbLogger": ("logger=wandb", ("wandb",), "wandb"),
    "TensorBoardLogger": ("logger=tensorboard", ("tensorboard", "tensorboardX"), "tensorboard"),
}


def installed(modules: tuple[str, ...]) -> bool:
    """Whether any of `modules` can be imported (without importing it)."""
    for module in modules:
        try:
            if find_spec(module) is not None:
                return True
        except ModuleNotFoundError:  # a missing parent package
            continue
    return False


def require(what: str, modules: tuple[str, ...], extra: str) -> None:
    """Refuse `what` unless one of `modules` is installed, naming the extra that installs it."""
    if not installed(modules):
        raise SoScopeInputError(
            "config",
            f"{what} needs the optional package {modules[0]}: pip install 'soscope[{extra}]'",
        )


def check_command_line(overrides: list[str]) -> None:
    """The sweeper and launcher choices of a command line (checked before Hydra composes them,
    which it cannot do without the plugin)."""
    for override in overrides:
        if override.lstrip("+") in COMMAND_LINE:
            require(override, *COMMAND_LINE[override.lstrip("+")])


def check_logger(target: str | None) -> None:
    """The experiment logger a composed config names (`logger._target_`)."""
    name = (target or "").rpartition(".")[2]
    if name in LOGGERS:
        require(*LOGGERS[name])
