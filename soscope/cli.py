"""The training command: `python train.py …` and `soscope-train …` run this one Hydra main.

Bad input (a `SoScopeInputError`, also when Hydra's `instantiate` wraps one) ends the command
with one line on stderr, `soscope: error: <file>: <problem>`, and exit status 2, no traceback.
Data are read before anything is trained or written, so the run folder then holds only what
Hydra writes before the job starts (`.hydra/` and the log), never a partial output.
`resume=true` runs the saved config of the run folder it names (`soscope.resume`); a Ctrl-C
prints the command that resumes the run.
"""

from __future__ import annotations

import difflib
import sys
import warnings
from importlib.resources import files
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from soscope.config import CONF_MODULE, check_mandatory
from soscope.errors import INPUT_ERROR_STATUS, SoScopeInputError, exit_with
from soscope.extras import check_command_line, check_logger
from soscope.resume import resume_arguments, resume_command, resume_requested

INTERRUPTED_STATUS = 130  # the shell's status for a command ended by Ctrl-C
__all__ = ["INPUT_ERROR_STATUS", "train_main"]


def input_error(err: BaseException | None) -> SoScopeInputError | None:
    """The `SoScopeInputError` behind `err`, following the chain of causes (Hydra wraps)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, SoScopeInputError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


# Run-level numbers a typo on the command line would otherwise turn into a deep traceback.
NUMERIC_KEYS = {
    "seed": int,
    "epochs.vgae": int,
    "epochs.soscope": int,
    "predictive_sd_samples": int,
    "checkpoint_every": int,
    "model.z_dim": int,
    "model.hidden": int,
    "model.heads": int,
    "validation.fraction": float,
    "data.tile_size": int,
    "data.feature_components": int,
}


def check_numbers(cfg: DictConfig) -> None:
    """Each key of `NUMERIC_KEYS` holds a number of its kind (a float key also takes an int)."""
    for key, kind in NUMERIC_KEYS.items():
        value = OmegaConf.select(cfg, key)
        allowed = (int, float) if kind is float else (int,)
        if value is not None and (isinstance(value, bool) or not isinstance(value, allowed)):
            noun = "a number" if kind is float else "an integer"
            raise SoScopeInputError("config", f"{key} must be {noun}, got {value!r}")


def check_additions(cfg: DictConfig, overrides: list[str]) -> None:
    """Keys added with `+key=value` must be read by something: only a node built from a
    `_target_` (a module, the trainer, a logger) takes keys the config does not list; anywhere
    else an added key (`+epoch.vgae=5` for `epochs.vgae=5`) would be silently ignored."""
    for override in overrides:
        if not override.startswith("+") or override.startswith("++"):
            continue
        key = override[1:].partition("=")[0]
        if key.startswith("hydra") or is_group(key) or built_from_target(cfg, key):
            continue
        close = closest_key(cfg, key)
        hint = f"; did you mean {close}?" if close else ""
        raise SoScopeInputError(
            "config", f"{override} adds the key {key!r}, which soscope does not read{hint}"
        )


def closest_key(cfg: DictConfig, key: str) -> str | None:
    """The existing key `key` most likely misspells (one part of it changed), if any."""
    parts = key.split(".")
    for depth, part in enumerate(parts):
        node = OmegaConf.select(cfg, ".".join(parts[:depth])) if depth else cfg
        others = [k for k in node if k != part] if isinstance(node, DictConfig) else []
        close = difflib.get_close_matches(part, others, n=1)
        if close:
            return ".".join([*parts[:depth], close[0], *parts[depth + 1 :]])
    return None


def is_group(key: str) -> bool:
    """Whether `key` names a config group (`+experiment=nb` adds a group, not a key)."""
    return "." not in key and files(CONF_MODULE).joinpath(key).is_dir()


def built_from_target(cfg: DictConfig, key: str) -> bool:
    """Whether a node above `key` is instantiated from a `_target_`."""
    parts = key.split(".")
    for depth in range(len(parts) - 1, 0, -1):
        node = OmegaConf.select(cfg, ".".join(parts[:depth]))
        if isinstance(node, DictConfig) and "_target_" in node:
            return True
    return False


def check_config(cfg: DictConfig, overrides: list[str] | None = None) -> None:
    """What the config groups cannot catch: unset mandatory values, mistyped numbers, keys
    added that nothing reads, a likelihood or platform name the code does not know, a
    `sparse_output` other than auto/true/false, a logger whose optional package is missing, a
    `ckpt_path` that is not a file."""
    from soscope.data.matrices import check_sparse_output
    from soscope.datasets.synthetic import PLATFORMS
    from soscope.models.likelihoods import LIKELIHOODS

    check_mandatory(cfg)
    check_numbers(cfg)
    check_additions(cfg, overrides or [])
    check_sparse_output(cfg.get("sparse_output", "auto"))
    for key, known in (("likelihood.name", LIKELIHOODS), ("platform.name", PLATFORMS)):
        value = OmegaConf.select(cfg, key)
        if value not in known:
            raise SoScopeInputError(
                "config", f"unknown {key} {value!r}; choose from {', '.join(known)}"
            )
    if cfg.get("logger"):
        check_logger(cfg.logger.get("_target_"))
    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise SoScopeInputError(cfg.ckpt_path, "checkpoint not found (ckpt_path)")


def command_overrides() -> list[str]:
    """The overrides of the running Hydra job (none outside a command)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


@hydra.main(version_base="1.3", config_path=f"pkg://{CONF_MODULE}", config_name="config")
def train_job(cfg: DictConfig) -> float | None:
    """Train both stages and write the outputs; returns the held-out objective for sweepers."""
    # PyG's import-time notice about torch.jit says nothing to a user of this command.
    warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", FutureWarning)
    from soscope.job import run

    try:
        check_config(cfg, command_overrides())
        return run(cfg)["objective"]
    except KeyboardInterrupt:
        command = resume_command(cfg.paths.output_dir)
        print(f"\nsoscope: interrupted; resume with: {command}", file=sys.stderr)
        sys.exit(INTERRUPTED_STATUS)
    except Exception as err:
        found = input_error(err)
        if found is None:
            raise
        exit_with(found)


def train_main(cfg: DictConfig | None = None) -> float | None:
    """The command (`cfg` None: read the command line) or, given a composed `cfg`, its job.

    Before Hydra composes anything, sweepers and launchers whose optional package is missing
    are refused, and `resume=true` switches to the run folder's saved config.
    """
    if cfg is not None:
        return train_job(cfg)
    arguments = sys.argv[1:]
    try:
        check_command_line(arguments)
        if resume_requested(arguments):
            arguments = resume_arguments(arguments)
    except SoScopeInputError as err:
        exit_with(err)
    sys.argv = [sys.argv[0], *arguments]
    return train_job()
