"""The demo notebooks: stored without outputs, and each runs top to bottom on tiny settings."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SKIN_DIR = ROOT.parent / "shared" / "data" / "spatialcite_humanskin"
# What each notebook leaves in its run folder under outputs/notebooks/: the Python API's a
# saved model, the training command's runs their summary.
LEFT_BEHIND = {"00_getting_started": "model/model.pt"}


def test_there_are_six_notebooks():
    assert [p.stem for p in NOTEBOOKS] == [
        "00_getting_started",
        "01_negative_binomial",
        "02_poisson",
        "03_gaussian",
        "04_multiomics",
        "05_human_skin",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_are_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    if "skin" in path.stem and not SKIN_DIR.is_dir():
        pytest.skip(f"{SKIN_DIR} not found")
    monkeypatch.setenv("SOSCOPE_TINY", "1")
    monkeypatch.setenv("SOSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SOSCOPE_SKIN_DIR", str(SKIN_DIR / "x3"))
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    run_dir = tmp_path / "outputs" / "notebooks"
    assert len(list(run_dir.glob("*/enhanced.h5ad"))) == 1
    assert len(list(run_dir.glob(f"*/{LEFT_BEHIND.get(path.stem, 'summary.md')}"))) == 1
