"""scripts/benchmark_graph.py still runs and prints its table (small sizes here; 10⁶ by hand)."""

import runpy
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_graph.py"


def test_the_graph_benchmark_prints_one_row_per_builder(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--sizes", "2000", "--features", "4"])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["nodes", "builder", "edges", "seconds"]
    rows = {" ".join(line.split()[1:-2]): line.split() for line in lines[1:]}
    assert set(rows) == {"grid lattice", "visium lattice", "kNN (k=6)"}
    # 2,000 positions fill 44 rows of 45 and 20 more: 44·44 + 19 pairs along rows, 43·45 + 20
    # across them, each edge both ways
    assert int(rows["grid lattice"][-2]) == 2 * (44 * 44 + 19 + 43 * 45 + 20)
    assert all(float(row[-1]) < 5 for row in rows.values())
