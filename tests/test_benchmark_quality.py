"""The aggregation benchmark script end to end, in its --quick smoke mode."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from soscope.evaluate.baselines import BASELINES

ROOT = Path(__file__).resolve().parents[1]
SKIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "spatialcite_humanskin"


def load_script():
    """scripts/ is not a package: import the script from its file (registered, for dataclasses)."""
    path = ROOT / "scripts" / "benchmark_quality.py"
    spec = importlib.util.spec_from_file_location("benchmark_quality", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_quick(tmp_path: Path, *datasets: str) -> tuple[str, Path]:
    out = tmp_path / "quality.md"
    argv = ["--quick", "--seeds", "0", "--jobs", "1", *datasets, "--out", str(out)]
    return load_script().main(argv), out


def assert_complete(table: str, out: Path, dataset: str) -> None:
    """Every method has a row for `dataset`, and the markdown and the figure were written."""
    for method in (*BASELINES, "soscope"):
        assert f"| {dataset} | {method} |" in table
    assert out.read_text().startswith("# Aggregation benchmark")
    assert "--quick" in out.read_text()
    assert out.with_suffix(".png").is_file()


def test_quick_synthetic(tmp_path):
    table, out = run_quick(
        tmp_path, "--synthetic", "poisson", "--synthetic-no-image", "nb", "--skin"
    )
    assert_complete(table, out, "synthetic_poisson")
    assert_complete(table, out, "synthetic_nb_no_image")
    assert "coverage_1sd" in table


@pytest.mark.skipif(not SKIN.is_dir(), reason="the human-skin data is not on this machine")
def test_quick_skin(tmp_path):
    table, out = run_quick(tmp_path, "--synthetic", "--synthetic-no-image", "--skin", "2")
    assert_complete(table, out, "skin_2x2")
    assert "constant image feature" in out.read_text()


def test_jobs_run_in_workers_and_keep_the_order(tmp_path):
    """Two worker processes, one dataset each, give every (dataset, method) row in the serial
    order, and the figure; run as users run it, from the command line."""
    out = tmp_path / "quality.md"
    argv = ["--quick", "--seeds", "0", "--synthetic", "poisson", "nb", "--skin"]
    argv += ["--synthetic-no-image", "--jobs", "2", "--out", str(out)]
    script = ROOT / "scripts" / "benchmark_quality.py"
    done = subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| synthetic")]
    methods = (*BASELINES, "soscope")
    expected = [
        f"| synthetic_{name} | {method} |" for name in ("poisson", "nb") for method in methods
    ]
    assert [" | ".join(row.split(" | ")[:2]) + " |" for row in rows] == expected
    for name in ("poisson", "nb"):  # each trained once
        assert done.stdout.count(f"[synthetic_{name} seed=0 ") == 1
    assert "2 jobs at once" in out.read_text()
    assert out.with_suffix(".png").is_file()
