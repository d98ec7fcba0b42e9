"""Resuming a run from its folder: the saved config, the checkpoints, one log per attempt.

`python train.py hydra.run.dir=<run folder> resume=true` reads the run's own config back from
`<run folder>/.hydra/config.yaml` (and leaves that record as it was), continues each stage from
its last checkpoint, and logs the new attempt beside the earlier ones. A Ctrl-C prints that
command (`resume_command`).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from soscope.errors import SoScopeInputError

SAVED_CONFIG = Path(".hydra") / "config.yaml"
RUN_DIR_KEY, RESUME_KEY = "hydra.run.dir", "resume"


def resume_requested(overrides: list[str]) -> bool:
    """Whether the command line says `resume=true`."""
    return any(arg.lower() in (f"{RESUME_KEY}=true", f"+{RESUME_KEY}=true") for arg in overrides)


def resume_arguments(argv: list[str]) -> list[str]:
    """The command line that resumes the run `argv` names: its saved config as the primary
    config (group choices and all), Hydra's record of the run left untouched."""
    run_dirs = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"{RUN_DIR_KEY}=")]
    if not run_dirs:
        raise SoScopeInputError(
            "config", f"resume=true needs the run folder: add {RUN_DIR_KEY}=<run folder>"
        )
    run_dir = Path(run_dirs[-1]).expanduser().resolve()
    if not (run_dir / SAVED_CONFIG).is_file():
        raise SoScopeInputError(
            run_dir,
            f"has no {SAVED_CONFIG} to resume from: give {RUN_DIR_KEY} the folder of a "
            "soscope run (it holds .hydra/, train.log and checkpoints/)",
        )
    return [
        f"--config-path={run_dir / SAVED_CONFIG.parent}",
        "--config-name=config",
        *argv,
        "hydra.output_subdir=null",  # keep the run's config.yaml and overrides.yaml as written
        "hydra.job.name=train",  # and append to its train.log
    ]


def resume_command(out_dir: str | Path) -> str:
    """The command that resumes the run in `out_dir`, as the user started it."""
    program = sys.argv[0] if sys.argv else ""
    start = f"python {program}" if program.endswith(".py") else "soscope-train"
    return f"{start} {RUN_DIR_KEY}={shlex.quote(str(out_dir))} {RESUME_KEY}=true"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Lightning checkpoint written by a soscope run (any other file is a clear error)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # pickle, zip and EOF errors all mean "not a checkpoint"
        raise SoScopeInputError(
            path, f"not a readable checkpoint ({err.__class__.__name__})"
        ) from err
    if not isinstance(checkpoint, dict) or "soscope_stage" not in checkpoint:
        raise SoScopeInputError(path, "not a checkpoint written by a soscope run")
    return checkpoint


def checkpoint_stage(path: str | Path) -> str:
    """Which stage ("vgae" or "soscope") a checkpoint of this package belongs to."""
    return read_checkpoint(path)["soscope_stage"]


def check_checkpoint_fits(module: torch.nn.Module, path: str | Path) -> dict[str, Any]:
    """The checkpoint at `path`, refused unless its weights have `module`'s names and shapes
    (a checkpoint of another dataset or model size)."""
    checkpoint = read_checkpoint(path)
    saved, own = checkpoint.get("state_dict", {}), module.state_dict()
    for name, value in own.items():
        found = saved.get(name)
        if found is None or tuple(found.shape) != tuple(value.shape):
            shape = "missing" if found is None else f"of shape {tuple(found.shape)}"
            raise SoScopeInputError(
                path,
                f"does not fit this run's data and model: {name} is {shape} there, "
                f"{tuple(value.shape)} here; resume a run with its own config "
                f"({RUN_DIR_KEY}=<its run folder> {RESUME_KEY}=true)",
            )
    return checkpoint


def resume_point(cfg: DictConfig, out_dir: Path, stage: str) -> Path | None:
    """The checkpoint `stage` continues from: `ckpt_path` if it is that stage's, or, with
    `resume=true`, the run folder's last checkpoint of that stage."""
    if cfg.get("ckpt_path"):
        path = Path(cfg.ckpt_path)
        return path if checkpoint_stage(path) == stage else None
    last = out_dir / "checkpoints" / stage / "last.ckpt"
    return last if cfg.get("resume") and last.is_file() else None


def attempt_version(log_dir: Path) -> str:
    """The logger version of a new attempt at a stage: "" (the stage's folder itself) the first
    time, then `attempt_2`, `attempt_3`, … so no attempt's logs replace another's."""
    if not log_dir.is_dir() or not any(log_dir.iterdir()):
        return ""
    number = 2
    while (log_dir / f"attempt_{number}").exists():
        number += 1
    return f"attempt_{number}"
