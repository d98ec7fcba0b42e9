"""The package as pip installs it: a wheel built from the sources holds both commands' configs,
so `pip install .` (not editable) finds them from any folder."""

import shutil
import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_every_config_file(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(
        ROOT / "soscope", source / "soscope", ignore=shutil.ignore_patterns("__pycache__")
    )
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        str(source),
        "-w",
        str(tmp_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("soscope-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    for module in ("conf", "conf_preprocess"):
        folder = files("soscope").joinpath(module)
        configs = {
            f"soscope/{module}/{path.relative_to(Path(str(folder))).as_posix()}"
            for path in Path(str(folder)).rglob("*.yaml")
        }
        assert configs and configs <= shipped, sorted(configs - shipped)
