"""The training command's Hydra config, composed from Python (notebooks, scripts, tests).

The configs ship inside the package (`soscope/conf`, read through `importlib.resources`), so
an installed soscope finds them from any folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

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


# A value Hydra's override grammar reads as it is written; anything else is quoted.
PLAIN_VALUE = re.compile(r"[\w./:~+@-]+")


def override_value(value: Any) -> str:
    """`value` written in Hydra's override grammar: null, true/false, numbers, lists, strings
    (quoted where they hold spaces or other characters the grammar reads)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(item) for item in value) + "]"
    text = str(value)
    if PLAIN_VALUE.fullmatch(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def keyword_overrides(options: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Keyword arguments as command-line overrides: `trainer="gpu"` → `trainer=gpu`, and a
    mapping sets keys inside a group, `epochs={"vgae": 50}` → `epochs.vgae=50`."""
    overrides = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            overrides += keyword_overrides(value, f"{prefix}{key}.")
        else:
            overrides.append(f"{prefix}{key}={override_value(value)}")
    return overrides


def check_mandatory(cfg: DictConfig) -> None:
    """Every `???` value of `cfg` must be set on the command line."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise SoScopeInputError(
            "config", f"{', '.join(missing)} must be set, e.g. `{missing[0]}=<value>`"
        )
