"""The training command: `python train.py …` and `soscope-train …` run this one Hydra main.

Bad input (a `SoScopeInputError`, also when Hydra's `instantiate` wraps one) ends the command
with one line on stderr, `soscope: error: <file>: <problem>`, and exit status 2, no traceback.
Data are read before anything is trained or written, so the run folder then holds only what
Hydra writes before the job starts (`.hydra/` and the log), never a partial output.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from soscope.config import CONF_DIR
from soscope.errors import SoScopeInputError

INPUT_ERROR_STATUS = 2


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


def check_config(cfg: DictConfig) -> None:
    """What the config groups cannot catch: unset mandatory values, mistyped numbers, a
    likelihood or platform name the code does not know, a `ckpt_path` that is not a file."""
    from soscope.datasets.synthetic import PLATFORMS
    from soscope.models.likelihoods import LIKELIHOODS

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise SoScopeInputError(
            "config", f"{', '.join(missing)} must be set, e.g. `{missing[0]}=<value>`"
        )
    check_numbers(cfg)
    for key, known in (("likelihood.name", LIKELIHOODS), ("platform.name", PLATFORMS)):
        value = OmegaConf.select(cfg, key)
        if value not in known:
            raise SoScopeInputError(
                "config", f"unknown {key} {value!r}; choose from {', '.join(known)}"
            )
    if cfg.get("ckpt_path") and not Path(cfg.ckpt_path).is_file():
        raise SoScopeInputError(cfg.ckpt_path, "checkpoint not found (ckpt_path)")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def train_main(cfg: DictConfig) -> float | None:
    """Train both stages and write the outputs; returns the held-out objective for sweepers."""
    # PyG's import-time notice about torch.jit says nothing to a user of this command.
    warnings.filterwarnings("ignore", "`torch.jit.script` is deprecated", FutureWarning)
    from soscope.pipeline import run

    try:
        check_config(cfg)
        return run(cfg)["objective"]
    except Exception as err:
        found = input_error(err)
        if found is None:
            raise
        print(f"soscope: error: {found}", file=sys.stderr)
        sys.exit(INPUT_ERROR_STATUS)
