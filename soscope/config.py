"""The training command's Hydra config, composed from Python (notebooks, scripts, tests).

The configs ship inside the package (`soscope/conf`, read through `importlib.resources`), so
an installed soscope finds them from any folder.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

from soscope.errors import SoScopeInputError

CONF_MODULE = "soscope.conf"


def config_file(name: str, module: str = CONF_MODULE) -> str:
    """The text of one config file shipped in the package, e.g. `config_file("config.yaml")`."""
    return files(module).joinpath(name).read_text(encoding="utf-8")


def load_config(*overrides: str, output_dir: str | Path) -> DictConfig:
    """The config `python train.py <overrides>` would run, writing into `output_dir`."""
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        return compose("config", overrides=[f"paths.output_dir={output_dir}", *overrides])


def check_mandatory(cfg: DictConfig) -> None:
    """Every `???` value of `cfg` must be set on the command line."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise SoScopeInputError(
            "config", f"{', '.join(missing)} must be set, e.g. `{missing[0]}=<value>`"
        )
