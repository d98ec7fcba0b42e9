"""Fixtures of the preprocessing tests: a small synthetic Visium tissue and the command's config."""

import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from soscope.datasets import make_synthetic_tissue
from soscope.preprocess import cli
from soscope.preprocess.cli import CONF_MODULE


@pytest.fixture(scope="session")
def visium_tissue():
    """6 × 6 Visium spots, 252 subspots, 12 NB genes, an H&E-like image."""
    return make_synthetic_tissue(n_rows=6, n_cols=6, n_features=12, seed=1)


@pytest.fixture
def preprocess_config(tmp_path: Path):
    """Compose `conf_preprocess` with overrides; the feature cache lives in `tmp_path`."""

    def compose_config(*overrides: str):
        with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
            return compose("preprocess", overrides=[f"cache_dir={tmp_path / 'cache'}", *overrides])

    return compose_config


@pytest.fixture
def run_command(monkeypatch):
    """Run the command's own entry point in this process with overrides; returns its exit
    status. Hydra's logging set-up is left out so the test session's logging stays as it is."""

    def run(overrides: list[str]) -> int:
        quiet = ["hydra/job_logging=none", "hydra/hydra_logging=none"]
        monkeypatch.setattr(sys, "argv", ["soscope-preprocess", *overrides, *quiet])
        try:
            cli.main()
        except SystemExit as done:
            return done.code
        finally:
            GlobalHydra.instance().clear()
        return 0

    return run
