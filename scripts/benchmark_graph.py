"""Time graph construction (lattice + weights, and kNN + weights) from 10⁴ to 10⁶ nodes.

Usage: python scripts/benchmark_graph.py [--sizes 10000 100000 1000000] [--features 32]
Prints one table: nodes, edges and seconds for each builder.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from soscope.data.graph import build_knn_graph, build_spot_graph


def lattice(platform: str, n: int) -> np.ndarray:
    """A square patch of about n array coordinates of the platform's lattice, (row, col)."""
    side = int(np.ceil(np.sqrt(n)))
    rows, cols = np.divmod(np.arange(n), side)
    if platform == "visium":
        cols = 2 * cols + rows % 2
    return np.column_stack([rows, cols])


def timed(build, *args) -> tuple[int, float]:
    start = time.perf_counter()
    edge_index, _ = build(*args)
    return edge_index.shape[1], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--features", type=int, default=32)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'nodes':>10} {'builder':>14} {'edges':>10} {'seconds':>8}")
    for n in args.sizes:
        features = rng.random((n, args.features), dtype=np.float32)
        for platform in ("grid", "visium"):
            coords = lattice(platform, n)
            edges, seconds = timed(build_spot_graph, coords, features, platform)
            print(f"{n:>10} {platform + ' lattice':>14} {edges:>10} {seconds:>8.2f}")
        pos = rng.uniform(0, np.sqrt(n), size=(n, 2))
        edges, seconds = timed(build_knn_graph, pos, features, 6)
        print(f"{n:>10} {'kNN (k=6)':>14} {edges:>10} {seconds:>8.2f}")


if __name__ == "__main__":
    main()
