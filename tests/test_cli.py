"""The command-line entry points: one Hydra main behind train.py and soscope-train, and --help."""

import subprocess
import sys
from pathlib import Path

import pytest

from soscope.cli import train_main

ROOT = Path(__file__).resolve().parents[1]
INSTALLED = Path(sys.executable).parent / "soscope-train"


def help_text(*command: str) -> str:
    done = subprocess.run(
        [*command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_train_py_help_explains_the_command_and_lists_the_groups():
    text = help_text(sys.executable, "train.py")
    assert text.startswith("soscope: enhance spot-based spatial omics")
    assert "python train.py data=reference_dir data.path=DIR" in text
    assert "exit status 2" in text and "progress bar" in text
    for line in ("likelihood: gaussian, joint_gaussian, joint_pnb, nb, poisson", "platform: "):
        assert line in text
    assert "epochs:\n  vgae: 500" in text  # the config a run would use


@pytest.mark.skipif(not INSTALLED.is_file(), reason="soscope-train is not installed here")
def test_the_installed_command_is_the_same_main():
    assert help_text(str(INSTALLED)) == help_text(sys.executable, "train.py")


def test_train_py_holds_no_logic_of_its_own():
    namespace: dict = {}
    exec((ROOT / "train.py").read_text(), namespace)
    assert namespace["train_main"] is train_main
