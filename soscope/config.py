"""The training command's Hydra config, composed from Python (notebooks, scripts, tests)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parent / "conf"


def load_config(*overrides: str, output_dir: str | Path) -> DictConfig:
    """The config `python train.py <overrides>` would run, writing into `output_dir`."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[f"paths.output_dir={output_dir}", *overrides])
