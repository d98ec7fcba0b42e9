"""scripts/benchmark_scaling.py runs both modes and prints its table (tiny sizes here)."""

import argparse
import runpy
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_scaling.py"


@pytest.fixture(scope="module")
def bench():
    return runpy.run_path(str(SCRIPT))


def test_both_modes_measure_a_tiny_section(bench):
    args = argparse.Namespace(genes=3, features=16, device="cpu", steps=1, tile_size=20, config=[])
    full = bench["measure_soscope"](60, "full", args)
    tiles = bench["measure_soscope"](60, "tiles", args)
    assert full["subspots"] == tiles["subspots"] == 420
    assert full["tiles"] == 1 and tiles["tiles"] > 2
    for result in (full, tiles):
        assert result["step"] > 0 and result["epoch"] >= result["step"] and result["rss"] > 0
    line = bench["row"](tiles, {"step": 2 * tiles["step"], "rss": 1.0})
    assert line.startswith(f"| tiles ({tiles['tiles']}) | 60 | 420 | off (16) |") and line.endswith(
        "| 2.0× |"
    )
    assert "| did not finish |" in bench["row"](full, {"failure": "did not finish"})


def test_the_script_prints_one_row_per_size(monkeypatch, capsys):
    argv = [str(SCRIPT), "--sizes", "30", "60", "--tiles-from", "60", "--tile-size", "20"]
    argv += ["--features", "8", "--genes", "2", "--steps", "1", "--threads", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(SCRIPT), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| mode (tiles) | spots |") and len(lines) == 4
    assert lines[2].startswith("| full | 30 |") and lines[3].startswith("| tiles (")


def test_the_demo_schedule_runs_both_stages_and_the_predictions(bench):
    args = argparse.Namespace(genes=9, features=16, device="cpu", demo_epochs=[2, 2])
    seconds = bench["measure_demo"](args)
    assert seconds["epochs"] == {"vgae": 2, "soscope": 2}
    assert all(seconds[part] > 0 for part in ("vgae", "soscope", "predict", "rss"))


def test_rows_say_which_graph_loss_a_step_computed(bench):
    args = argparse.Namespace(genes=3, features=16, device="cpu", steps=1, tile_size=20)
    exact = bench["measure_soscope"](
        30, "full", argparse.Namespace(**vars(args), config=["model=original"])
    )
    assert exact["loss"] == "exact (16)"
    sampled = ["model=original", "model.graph_loss=sampled", "data.feature_components=4"]
    assert (
        bench["measure_soscope"](30, "full", argparse.Namespace(**vars(args), config=sampled))[
            "loss"
        ]
        == "sampled (4)"
    )


def test_the_profile_splits_a_step_into_its_parts(bench):
    args = argparse.Namespace(genes=3, features=16, config=[])
    text = bench["profile_step"](40, args)
    assert text.startswith("Profile of one stage-2 step, 40 spots × 3 genes")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if "|" in line}
    for part in ("forward", "encoder", "spot-level losses", "… image path: spot loss", "backward"):
        assert part in rows
    assert "| op (most self time) |" in text and "| op (most memory allocated) |" in text
    shares = [float(rows[part].split(" | ")[2].rstrip("% |")) for part in ("forward", "backward")]
    assert 50 <= sum(shares) <= 100  # forward and backward make most of the step
