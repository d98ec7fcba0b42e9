"""The aggregation benchmark: soscope and the baselines against known subspot truth.

Datasets: the synthetic tissue for each likelihood in --synthetic (truth = its subspots); the
spatial-CITE-seq human-skin proteins aggregated k×k into pseudo-spots (truth = the measured
grid spots; one constant image feature, as there is no image); and, given a local clone of the
HER2-positive breast-cancer ST data (--her2st, github.com/almaan/her2st), sections whose
native spots are summed k×k into pseudo-spots and prepared with `soscope-preprocess` from the
section's own H&E image, as a user would (truth = the native spots, in raw counts).

Defaults are chosen on the tuning split and reported on the report split, which chose
nothing (`--split`): tuning = synthetic tissue draws 100–102, skin 2×2, HER2ST B4; report = a
fresh synthetic draw (200), skin 3×3, HER2ST C2.

For every dataset, seed and config variant it trains both stages, enhances, and scores with
`summarize`; the baselines are scored on the same sections, and where the image features vary,
`oracle_image_ridge`: a ridge from those features fitted on the truth of the other spots, the
most they can tell (`soscope.evaluate.ceilings`). Prints one markdown table (mean ± sd over
seeds), writes it to --out with the command line on top, and a figure of one dataset next to
it. (dataset, seed) pairs run in `--jobs` worker processes at once (default: one a CPU
core), each with its share of the cores; the table is the same as a serial run's.

Example (the node loss of the defaults against the original's MSE, synthetic NB tissue only):
    python scripts/benchmark_quality.py --synthetic nb --skin --epochs 300
        --variants default: mse:model.soscope.node_loss=mse
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import multiprocessing
import os
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig
from PIL import Image
from scipy.spatial import cKDTree

from soscope.config import CONF_MODULE
from soscope.data.dataset_h5ad import read_dataset_h5ad
from soscope.data.reference_io import read_reference_section
from soscope.data.sample import Section
from soscope.evaluate.baselines import BASELINES, run_baseline
from soscope.evaluate.ceilings import image_ceiling
from soscope.evaluate.metrics import median_spacing, spot_consistency_error, summarize
from soscope.evaluate.pseudospots import grid_blocks, make_pseudospots
from soscope.pipeline import (
    load_section,
    make_datamodule,
    predict,
    print_lightning_once,
    train_both_stages,
)
from soscope.plotting import plot_maps

ROOT = Path(__file__).resolve().parents[1]
# What each split runs unless the command line says otherwise: (synthetic tissue draws, skin
# blocks, HER2ST sections). Only B4 and C2 of HER2ST are used at all; the others are kept for
# independent evaluation.
SPLITS = {"tuning": ((100, 101, 102), (2,), ("B4",)), "report": ((200,), (3,), ("C2",))}
HER2ST_SECTIONS = ("B4", "C2")
HER2ST_BLOCKS = (2, 3)
HER2ST_GENES = 50
HER2ST_FEATURES = ("features=handcrafted",)  # soscope-preprocess overrides of the image features
ST_SPOT_FRACTION = 0.5  # legacy ST: 100 µm spots on a 200 µm pitch
QUICK = ["data.n_rows=6", "data.n_cols=6", "model.z_dim=16", "model.hidden=32"]
QUICK_EPOCHS = 3
QUICK_SKIN_FEATURES = 20
QUICK_SKIN_WINDOW = 12  # side of the central square of the grid kept in a quick run

Scores = dict[str, float]


@dataclass(frozen=True)
class Dataset:
    """A benchmark dataset: its config overrides and how to build its Section from the config."""

    name: str
    overrides: tuple[str, ...]
    load: Callable[[DictConfig], Section]
    note: str = ""


def quiet() -> None:
    """Only the benchmark's progress on the console: no Lightning banners or routine warnings."""
    print_lightning_once()
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in ("Checkpoint directory", "`weights_only` was not set", ".*is deprecated"):
        warnings.filterwarnings("ignore", message=message)


def compose_config(overrides: list[str]) -> DictConfig:
    """The project's Hydra config with `overrides`, quiet: no logger, no extra callbacks; the
    outputs dense, as the scores take them."""
    base = [
        "logger=none",
        "callbacks=none",
        "trainer.enable_progress_bar=false",
        "mean_unclipped_layer=true",
        "sparse_output=false",
    ]
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        return compose("config", overrides=[*base, *overrides])


def train_and_enhance(
    cfg: DictConfig, section: Section
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Train both stages on `section` (checkpoints in a throw-away folder); the enhanced
    profiles and the layers that go with them (the predictive sd, the model's own means)."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    with tempfile.TemporaryDirectory(prefix="soscope_bench_") as out_dir:
        datamodule = make_datamodule(cfg, section)
        model, _ = train_both_stages(cfg, datamodule, Path(out_dir))
        return predict(cfg, model, datamodule)


def read_skin(
    folder: Path, quick: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Human-skin protein counts (U×G), grid (row, col), (x, y) pixels and protein names, from
    the spatial-CITE-seq folder of the original soScope repository
    (Preprocess/data/SpatialCITE/humanskin/x3: reordered_filtered_protein.csv and
    position_with_center.csv).

    Rows are matched by barcode "{row}x{col}"; `row` follows imagerow, so (x, y) =
    (imagecol, imagerow), the frame of the other datasets. `quick` keeps a central square of
    the grid and a few proteins.
    """
    counts = pd.read_csv(folder / "reordered_filtered_protein.csv", index_col=0)
    where = pd.read_csv(folder / "position_with_center.csv").set_index("barcode")
    where = where.loc[counts.index]
    coords = where[["x", "y"]].to_numpy()
    if quick:
        keep = np.all(np.abs(coords - np.median(coords, axis=0)) < QUICK_SKIN_WINDOW / 2, axis=1)
        counts, where, coords = (
            counts[keep].iloc[:, :QUICK_SKIN_FEATURES],
            where[keep],
            coords[keep],
        )
    pos = where[["imagecol", "imagerow"]].to_numpy(dtype=np.float64)
    return counts.to_numpy(np.float32), coords, pos, list(counts.columns)


def synthetic_dataset(likelihood: str, tissue: int, image: bool = True) -> Dataset:
    """The synthetic tissue draw `tissue` (default size and platform) with `likelihood` counts;
    without `image` every subspot gets the same (zero) image feature."""
    picture = "H&E-like image" if image else "constant image feature"
    note = (
        f"synthetic Visium tissue ({likelihood} counts, {picture}, tissue draw {tissue}), "
        "truth = its subspots"
    )
    # One tissue for every seed, so the spread over seeds is the training's alone.
    overrides = (f"likelihood={likelihood}", f"data.seed={tissue}")
    name = f"synthetic_{likelihood}_t{tissue}"
    if not image:
        overrides, name = (*overrides, "+data.constant_image=true"), f"{name}_no_image"
    return Dataset(name, overrides, load_section, note)


def skin_dataset(folder: Path, k: int, likelihood: str, quick: bool) -> Dataset:
    """The skin proteins aggregated k×k into pseudo-spots; the Section is built once."""
    cache: list[Section] = []

    def load(cfg: DictConfig) -> Section:
        if not cache:
            values, coords, pos, names = read_skin(folder, quick)
            section = make_pseudospots(values, coords, pos, "grid", k=k, feature_names=names)
            section.meta["likelihood"] = likelihood
            cache.append(section)
        return cache[0]

    note = (
        f"spatial-CITE-seq skin proteins ({likelihood} likelihood), {k}×{k} pseudo-spots, "
        "constant image feature (no image)"
    )
    overrides = (f"likelihood={likelihood}", "platform=grid", f"platform.factor={k}")
    return Dataset(f"skin_{k}x{k}", overrides, load, note)


def reference_dataset(path: Path, likelihood: str, report: bool = True) -> Dataset | None:
    """A dataset in the original's format, or None (with a message if `report`) when it has no
    truth."""
    section = read_reference_section(path, likelihood)
    if section.truth is None:
        if report:
            print(f"skipping --reference-dir {path}: no subspot ground truth to score against")
        return None
    return Dataset(f"reference_{path.name}", (f"likelihood={likelihood}",), lambda cfg: section)


def read_her2st(root: Path, section: str) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """One HER2ST section: native spot counts (spots × genes), its spots' array (x, y) and
    pixel (pixel_x, pixel_y) coordinates in the same order, and the path of its H&E image."""
    counts = pd.read_csv(root / "data" / "ST-cnts" / f"{section}.tsv.gz", sep="\t", index_col=0)
    spots = pd.read_csv(root / "data" / "ST-spotfiles" / f"{section}_selection.tsv", sep="\t")
    spots.index = spots["x"].astype(str) + "x" + spots["y"].astype(str)
    counts = counts.loc[counts.index.isin(spots.index)]
    images = sorted((root / "data" / "ST-imgs" / section[0] / section).glob("*.jpg"))
    if not images:
        raise SystemExit(f"--her2st {root}: no H&E image of section {section}")
    return counts, spots.loc[counts.index], images[0]


def her2st_inputs(
    counts: pd.DataFrame, spots: pd.DataFrame, k: int, folder: Path
) -> tuple[np.ndarray, float]:
    """Write the k×k pseudo-spots of a section as a user's CSV inputs into `folder`:
    counts.csv (pseudo-spot sums), positions.csv (block row/col, centre pixels) and cells.csv
    (the native spots of complete blocks, as the subspots to lay out). Returns the native
    spot index of each cells.csv row and the native spot pitch in pixels."""
    coords = spots[["y", "x"]].to_numpy()  # array (row, col)
    pixels = spots[["pixel_x", "pixel_y"]].to_numpy(dtype=np.float64)
    groups, block = grid_blocks(coords, k)
    names = [f"block{r}x{c}" for r, c in block]
    summed = counts.to_numpy()[groups].sum(axis=1)
    pd.DataFrame(summed, index=names, columns=counts.columns).to_csv(folder / "counts.csv")
    centre = pixels[groups].mean(axis=1)
    positions = {"barcode": names, "row": block[:, 0], "col": block[:, 1]}
    positions |= {"imagecol": centre[:, 0], "imagerow": centre[:, 1]}
    pd.DataFrame(positions).to_csv(folder / "positions.csv", index=False)
    units = groups.ravel()
    pd.DataFrame({"x": pixels[units, 0], "y": pixels[units, 1]}).to_csv(
        folder / "cells.csv", index=False
    )
    pitch = float(np.median(cKDTree(pixels).query(pixels, k=2)[0][:, 1]))
    return units, pitch


def her2st_dataset(
    root: Path,
    section: str,
    k: int,
    likelihood: str,
    quick: bool,
    image: bool = True,
    features: tuple[str, ...] = HER2ST_FEATURES,
) -> Dataset:
    """HER2ST `section` as k×k pseudo-spots through `soscope-preprocess` (counts CSV, positions
    CSV, the native spots as subspots, the section's H&E, the `HER2ST_GENES` most variable
    genes, image features as the command's `features` overrides say); truth = the native
    spots' raw counts. Built once. Without `image` every subspot gets the same image feature
    (and the subspot graph equal weights): what the model makes of the spots alone."""
    cache: list[Section] = []

    def load(cfg: DictConfig) -> Section:
        if not cache:
            built = build_her2st(root, section, k, likelihood, quick, features)
            cache.append(built if image else without_image(built))
        return cache[0]

    picture = (
        f"image features of each native spot from the H&E image "
        f"({' '.join(without_weights_path(features))})"
        if image
        else ("constant image feature")
    )
    note = (
        f"HER2ST section {section}, {k}×{k} pseudo-spots of native ST spots, "
        f"{HER2ST_GENES if not quick else QUICK_SKIN_FEATURES} most variable genes, "
        f"{likelihood} likelihood, {picture}"
    )
    overrides = (f"likelihood={likelihood}", "platform=grid", f"platform.factor={k}")
    name = f"her2st_{section}_{k}x{k}" + ("" if image else "_no_image")
    return Dataset(name, overrides, load, note)


def without_image(section: Section) -> Section:
    """`section` with one constant image feature per subspot and a uniform subspot graph."""
    graph = section.graph.clone()
    graph.sub_feat = torch.ones(graph.num_subspots, 1)
    graph.sub_edge_weight = torch.ones_like(graph.sub_edge_weight)
    meta = {key: value for key, value in section.meta.items() if key != "image"}
    return dataclasses.replace(section, graph=graph, meta=meta, image=None)


def build_her2st(
    root: Path,
    section: str,
    k: int,
    likelihood: str,
    quick: bool,
    features: tuple[str, ...] = HER2ST_FEATURES,
) -> Section:
    """See `her2st_dataset`: write the inputs, run the preprocessing command, read it back."""
    counts, spots, image = read_her2st(root, section)
    genes = QUICK_SKIN_FEATURES if quick else HER2ST_GENES
    with tempfile.TemporaryDirectory(prefix="soscope_her2st_") as tmp:
        folder = Path(tmp)
        units, pitch = her2st_inputs(counts, spots, k, folder)
        command = [
            sys.executable,
            str(ROOT / "scripts" / "preprocess.py"),
            "input=csv",
            f"input.counts={folder / 'counts.csv'}",
            f"input.positions={folder / 'positions.csv'}",
            f"input.image={image}",
            "layout=cells",
            "layout.lattice=grid",
            f"layout.cells={folder / 'cells.csv'}",
            f"layout.cell_diameter={ST_SPOT_FRACTION * pitch}",
            f"layout.spot_diameter={2 * k * pitch}",  # a disc around each block holds it all
            *features,
            f"genes.n_top={genes}",
            "cache_dir=null",
            f"out={folder / 'dataset'}",
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"soscope-preprocess failed on HER2ST {section}:\n{done.stderr}")
        result = read_dataset_h5ad(folder / "dataset" / "dataset.h5ad", likelihood)
    sub_pos = result.graph.sub_pos.numpy()
    pixels = spots[["pixel_x", "pixel_y"]].to_numpy(dtype=np.float64)[units]
    distance, match = cKDTree(pixels).query(sub_pos)
    if distance.max() > 1e-3 * pitch:
        raise SystemExit(f"HER2ST {section}: subspots do not sit on the native spots")
    native = counts[result.feature_names].to_numpy(dtype=np.float32)
    result.truth = native[units[match]]
    result.meta["likelihood"] = likelihood
    result.name = f"her2st_{section}_{k}x{k}"
    return result


def datasets(args: argparse.Namespace, report: bool = True) -> list[Dataset]:
    """The datasets the arguments ask for; the real data only where it is present (`report`:
    say what is skipped)."""
    chosen = [synthetic_dataset(name, t) for name in args.synthetic for t in args.tissues]
    chosen += [
        synthetic_dataset(name, t, image=False)
        for name in args.synthetic_no_image
        for t in args.tissues
    ]
    skin = args.skin_dir
    if args.skin and skin and (skin / "reordered_filtered_protein.csv").is_file():
        chosen += [skin_dataset(skin, k, args.real_likelihood, args.quick) for k in args.skin]
    elif args.skin and report:
        print(f"skipping the skin datasets: no spatial-CITE-seq skin folder at --skin-dir {skin}")
    if args.reference_dir:
        reference = reference_dataset(args.reference_dir, args.real_likelihood, report)
        chosen += [reference] if reference else []
    if args.her2st and (args.her2st / "data" / "ST-cnts").is_dir():
        chosen += [
            her2st_dataset(
                args.her2st, section, k, "nb", args.quick, image, tuple(args.her2st_features)
            )
            for section in args.her2st_sections
            for k in args.her2st_blocks
            for image in (True, False)[: 1 + args.her2st_no_image]
        ]
    elif args.her2st and report:
        print(f"skipping HER2ST: {args.her2st} is not a clone of github.com/almaan/her2st")
    return chosen


def parse_variant(text: str) -> tuple[str, list[str]]:
    """`name:override,override` → (name, overrides); `default:` means the current defaults."""
    name, _, overrides = text.partition(":")
    return name, [o for o in overrides.split(",") if o]


def method_name(variant: str) -> str:
    """The table's name for a variant's soscope: plain `soscope` for the defaults."""
    return "soscope" if variant == "default" else f"soscope:{variant}"


def score(
    section: Section, pred: np.ndarray, layers: dict[str, np.ndarray] | None = None
) -> Scores:
    """`summarize` of one prediction against the section's truth, SSIM included; for a model's
    prediction (with its `layers`) also its calibration and how far its own means, before the
    spot-consistency rescale, re-aggregate from the spots."""
    graph = section.graph
    x, sub_to_spot, sub_pos = graph.x.numpy(), graph.sub_to_spot.numpy(), graph.sub_pos.numpy()
    layers = layers or {}
    scores = summarize(pred, section.truth, x, sub_to_spot, pos=sub_pos, sd=layers.get("sd"))
    if "mean_unclipped" in layers:
        own = layers["mean_unclipped"]
        scores["own_means_consistency_error"] = spot_consistency_error(own, x, sub_to_spot)
    return scores


PEERS = ("tesla",)
TESLA_INSTALL = (
    "pip install --no-deps teslaforst && pip install opencv-python-headless numba "
    "(its package metadata asks for the retired `sklearn` name, so a plain install fails)"
)


def section_image(section: Section) -> np.ndarray | None:
    """The section's H&E image in the frame of its positions (RGB): the file its preprocessing
    read, or its own image when that is at full resolution."""
    source = section.meta.get("image")
    if source is not None and Path(source).is_file():
        return np.asarray(Image.open(source).convert("RGB"))
    if section.image is not None and section.image_scale == 1.0:
        return np.asarray(section.image)
    return None


def tesla(section: Section) -> np.ndarray | None:
    """TESLA (Hu et al., Cell Systems 2023; the `teslaforst` package) at each subspot: the
    inverse-square-distance average of the 10 nearest spots in (x, y, scaled image colour),
    its `imputation` rule with its own colour extraction, a window of a quarter subspot spacing.

    Its `imputation` function itself cannot run with today's anndata (it looks up a frame with
    a RangeIndex by the string names anndata now gives its pseudo-spots), and it reads values
    off its own grid; so the rule is applied here at the subspot positions directly. None
    when TESLA is not installed or the section has no image.
    """
    try:
        from TESLA import extract_color
    except ImportError:
        return None
    image = section_image(section)
    if image is None:
        return None
    graph = section.graph
    x, pos, sub_pos = graph.x.numpy(), graph.pos.numpy(), graph.sub_pos.numpy()
    window = max(1, round(median_spacing(sub_pos) / 4))
    rows = {"sub": np.rint(sub_pos[:, ::-1]).astype(int), "spot": np.rint(pos[:, ::-1]).astype(int)}
    colour = {
        name: np.asarray(
            extract_color(list(r[:, 0]), list(r[:, 1]), image, beta=window, RGB=name == "sub")
        )
        for name, r in rows.items()
    }
    z_scale = sub_pos.std(axis=0).max()
    z = {name: (c - c.mean()) / c.std() * z_scale for name, c in colour.items()}
    known = np.column_stack([pos, z["spot"]])
    wanted = np.column_stack([sub_pos, z["sub"]])
    distance, nearest = cKDTree(known).query(wanted, k=min(10, len(known)))
    relative = (distance + 0.1) / (distance.min(axis=1, keepdims=True) + 0.1)
    weight = 1 / relative**2
    weight /= weight.sum(axis=1, keepdims=True)
    return np.einsum("mk,mkg->mg", weight, x[nearest])


def peer_predictions(section: Section, peers: list[str]) -> dict[str, np.ndarray]:
    """The peers' enhancements of `section` that can run here (see `PEERS`)."""
    out = {}
    if "tesla" in peers:
        pred = tesla(section)
        if pred is not None:
            out["tesla"] = pred
    return out


# The row of `image_ceiling`, which reads the truth: what the image features can tell at most.
ORACLE = "oracle_image_ridge"


def oracle_image_ridge(section: Section) -> np.ndarray | None:
    """`image_ceiling` of `section` (None without image features)."""
    graph = section.graph
    return image_ceiling(
        section.truth,
        graph.sub_feat.numpy(),
        graph.x.numpy(),
        graph.sub_to_spot.numpy(),
        section.meta.get("likelihood", "nb"),
        section.meta.get("protein_dim", 0),
    )


def run_one(
    dataset: Dataset, seed: int, args: argparse.Namespace
) -> tuple[Section, dict[str, np.ndarray], dict[str, Scores]]:
    """One dataset and seed: the baselines and every variant's enhancement and scores, printed
    as they go."""
    common = [*dataset.overrides, f"seed={seed}", *(QUICK if args.quick else [])]
    epochs = QUICK_EPOCHS if args.quick else args.epochs
    common += [f"epochs.vgae={epochs}", f"epochs.soscope={epochs}"]
    section = dataset.load(compose_config(common))
    predictions = {name: run_baseline(name, section) for name in BASELINES}
    predictions |= peer_predictions(section, args.peers)
    results = {name: score(section, pred) for name, pred in predictions.items()}
    ceiling = oracle_image_ridge(section)
    if ceiling is not None:
        results[ORACLE] = score(section, ceiling)
    for variant, overrides in map(parse_variant, args.variants):
        start = time.perf_counter()
        cfg = compose_config([*common, *overrides])
        pred, layers = train_and_enhance(cfg, section)
        predictions[method_name(variant)] = pred
        scores = results[method_name(variant)] = score(section, pred, layers)
        print(
            f"[{dataset.name} seed={seed} {variant}] {time.perf_counter() - start:.0f}s  "
            f"r={scores['median_pearson']:.3f}  "
            f"within-spot r={scores['median_within_spot_pearson']:.3f}",
            flush=True,
        )
    return section, predictions, results


def run_unit(
    dataset: Dataset, seed: int, args: argparse.Namespace, figure: Path | None
) -> dict[str, Scores]:
    """`run_one`'s scores per method; the figure of this dataset and seed too when `figure`."""
    section, predictions, scores = run_one(dataset, seed, args)
    if figure is not None:
        plot_dataset(section, predictions, figure)
    return scores


# A worker process's datasets and arguments, rebuilt from the command line by `start_worker`.
WORKER: dict = {}


def start_worker(argv: list[str], threads: int) -> None:
    """Set up a worker process: its torch threads, quiet logs, the datasets of `argv`."""
    torch.set_num_threads(threads)
    quiet()
    WORKER["args"] = parse_args(argv)
    WORKER["datasets"] = datasets(WORKER["args"], report=False)


def worker_unit(index: int, seed: int, figure: Path | None) -> dict[str, Scores]:
    """`run_unit` for dataset `index` in a worker process."""
    return run_unit(WORKER["datasets"][index], seed, WORKER["args"], figure)


Unit = tuple[int, int]  # (dataset index, seed)


def run_units(
    units: list[Unit],
    chosen: list[Dataset],
    args: argparse.Namespace,
    argv: list[str],
    figure: dict[Unit, Path],
) -> Iterator[tuple[Unit, dict[str, Scores]]]:
    """Each unit's scores as it finishes: in this process for one job, else in `args.jobs`
    spawned workers that share the CPU cores."""
    if args.jobs == 1:
        for unit in units:
            yield unit, run_unit(chosen[unit[0]], unit[1], args, figure.get(unit))
        return
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with ProcessPoolExecutor(
        args.jobs, multiprocessing.get_context("spawn"), start_worker, (argv, threads)
    ) as pool:
        futures = {pool.submit(worker_unit, *unit, figure.get(unit)): unit for unit in units}
        for future in as_completed(futures):
            yield futures[future], future.result()


def mean_sd(values: list[float]) -> str:
    """`mean ± sd` over seeds (sample sd; 0 for one seed)."""
    runs = np.asarray(values, dtype=np.float64)
    sd = float(np.nanstd(runs, ddof=1)) if len(runs) > 1 else 0.0
    return f"{np.nanmean(runs):.3f} ± {sd:.3f}"


def results_table(results: dict[tuple[str, str], list[Scores]]) -> str:
    """Markdown: one row per (dataset, method), one column per metric, mean ± sd over seeds;
    "—" where a method has no such metric (calibration for the baselines)."""
    metrics = list(dict.fromkeys(m for runs in results.values() for m in runs[0]))
    lines = [
        "| dataset | method | " + " | ".join(metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for (dataset, method), runs in results.items():
        cells = [mean_sd([run[m] for run in runs]) if m in runs[0] else "—" for m in metrics]
        lines.append(f"| {dataset} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_dataset(section: Section, predictions: dict[str, np.ndarray], path: Path) -> None:
    """Truth | pseudo-spots | each method, for the two most variable features."""
    panels = [
        ("ground truth", "subspot", section.truth),
        ("pseudo-spots", "spot", section.graph.x.numpy()),
        *((method, "subspot", pred) for method, pred in predictions.items()),
    ]
    plot_maps(section, panels, path, n_features=2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--synthetic",
        nargs="*",
        default=["nb", "poisson", "gaussian", "joint_pnb"],
        help="likelihoods of the synthetic tissues (none: no synthetic dataset)",
    )
    parser.add_argument(
        "--synthetic-no-image",
        nargs="*",
        default=["nb"],
        help="likelihoods of synthetic tissues run with a constant image feature",
    )
    parser.add_argument(
        "--split",
        choices=sorted(SPLITS),
        default="report",
        help="which data to run unless --tissues, --skin or --her2st-sections say otherwise: "
        "tuning (synthetic draws 100-102, skin 2x2, HER2ST B4), on which defaults are chosen, "
        "or report (synthetic draw 200, skin 3x3, HER2ST C2), which chose nothing",
    )
    parser.add_argument(
        "--tissues", type=int, nargs="+", help="synthetic tissue draws (seeds of the tissue)"
    )
    parser.add_argument(
        "--skin",
        type=int,
        nargs="*",
        help="block sides k of the k×k skin pseudo-spots (none: skip)",
    )
    parser.add_argument(
        "--skin-dir",
        type=Path,
        help="the spatial-CITE-seq human-skin proteins: Preprocess/data/SpatialCITE/humanskin/x3 "
        "of a clone of github.com/deng-ai-lab/soScope",
    )
    parser.add_argument(
        "--her2st",
        type=Path,
        help="a local clone of github.com/almaan/her2st (data/ST-cnts, ST-spotfiles, ST-imgs)",
    )
    parser.add_argument(
        "--her2st-sections", nargs="+", choices=HER2ST_SECTIONS, help="HER2ST sections"
    )
    parser.add_argument(
        "--her2st-no-image",
        action="store_true",
        help="also run each HER2ST dataset with a constant image feature",
    )
    parser.add_argument(
        "--her2st-features",
        nargs="+",
        default=list(HER2ST_FEATURES),
        help="soscope-preprocess overrides that choose the HER2ST image features (default "
        "features=handcrafted; e.g. features=timm features.model=<name> features.weights=<file>)",
    )
    parser.add_argument(
        "--her2st-blocks",
        type=int,
        nargs="+",
        default=list(HER2ST_BLOCKS),
        help="block sides k of the HER2ST k×k pseudo-spots",
    )
    parser.add_argument(
        "--real-likelihood",
        default="poisson",
        help="likelihood for the skin proteins and --reference-dir (default poisson, as the "
        "original's spatial-CITE-seq proteins)",
    )
    parser.add_argument(
        "--reference-dir",
        type=Path,
        help="a dataset in the original soScope format; skipped unless it carries a truth",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["default:"],
        help="config variants 'name:override,override' (e.g. mse:model.soscope.node_loss=mse); "
        "'default:' is the current defaults",
    )
    parser.add_argument("--epochs", type=int, default=500, help="epochs of each stage")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: 6×6-spot tissues, small model, {QUICK_EPOCHS} epochs, the "
        f"central {QUICK_SKIN_WINDOW}×{QUICK_SKIN_WINDOW} of the skin and {QUICK_SKIN_FEATURES} "
        "proteins",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="(dataset, seed) pairs run at once in worker processes, the CPU cores shared "
        "between them (default: the number of cores; 1: all in this process)",
    )
    parser.add_argument(
        "--peers",
        nargs="*",
        choices=PEERS,
        default=[],
        help=f"other methods to score on datasets with an image (tesla: {TESLA_INSTALL})",
    )
    parser.add_argument("--figure-dataset", help="dataset of the figure (default: the first)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "quality.md")
    args = parser.parse_args(argv)
    tissues, skin, sections = SPLITS[args.split]
    args.tissues = tissues if args.tissues is None else args.tissues
    args.skin = list(skin) if args.skin is None else args.skin
    args.her2st_sections = sections if args.her2st_sections is None else args.her2st_sections
    return args


# Data folders of this machine, written as what they are a copy of.
DATA_ARGUMENTS = {
    "--her2st": "<clone of github.com/almaan/her2st>",
    "--skin-dir": "<soScope clone>/Preprocess/data/SpatialCITE/humanskin/x3",
    "--reference-dir": "<dataset folder>",
}


def portable(argv: list[str]) -> list[str]:
    """`argv` with the data folders replaced by what they hold, so the recorded command is
    one anyone can run on a clone."""
    out = list(argv)
    for i, arg in enumerate(argv[:-1]):
        if arg in DATA_ARGUMENTS:
            out[i + 1] = DATA_ARGUMENTS[arg]
    return without_weights_path(out)


def without_weights_path(args: list[str] | tuple[str, ...]) -> list[str]:
    """`args` with a `features.weights=<path>` override's path replaced by what it is."""
    key = "features.weights="
    return [key + "<weights file>" if arg.startswith(key) else arg for arg in args]


def report_header(
    command: str, args: argparse.Namespace, chosen: list[Dataset], figure_dataset: str
) -> list[str]:
    """The markdown's lines above the table: title, exact command, split, seeds, figure, dataset
    notes."""
    split = {
        "tuning": "tuning split: data on which the defaults are chosen",
        "report": "report split: data that chose nothing",
    }[args.split]
    return [
        "# Aggregation benchmark",
        "",
        f"`{command}`",
        "",
        f"Datasets of the {split} (where the command names its own, those). "
        f"Mean ± sd over seeds {args.seeds}; figure: {args.out.with_suffix('.png').name} "
        f"({figure_dataset}, seed {args.seeds[0]}).",
        *(f"- {d.name}: {d.note}" for d in chosen if d.note),
        "",
        f"{ORACLE} is no method: a ridge from the image features fitted on the true subspot "
        "profiles of the other spots (5 folds of spots), held to the spots — the most those "
        "features can tell a linear map.",
        "",
    ]


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark; returns the markdown table (also printed and written to --out)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    quiet()
    chosen = datasets(args)
    if not chosen:
        raise SystemExit("no dataset to benchmark")
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, not {args.jobs}")
    figure_dataset = args.figure_dataset or chosen[0].name
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "scripts/benchmark_quality.py", *portable(argv)])
    header = report_header(command, args, chosen, figure_dataset)
    units = [(index, seed) for index in range(len(chosen)) for seed in args.seeds]
    args.jobs = min(args.jobs, len(units))  # no idle workers
    names = [dataset.name for dataset in chosen]
    figure = {
        (index, args.seeds[0]): args.out.with_suffix(".png")
        for index, name in enumerate(names)
        if name == figure_dataset
    }
    done: dict[Unit, dict[str, Scores]] = {}
    start = time.perf_counter()
    for unit, scores in run_units(units, chosen, args, argv, figure):
        done[unit] = scores
        # Rewritten after every unit: a run cut off midway keeps what it finished.
        table = results_table(collect(done, units, names))
        took = (
            f"Wall time: {(time.perf_counter() - start) / 60:.1f} min on {os.cpu_count()} CPU "
            f"cores, {args.jobs} job{'s' if args.jobs > 1 else ''} at once."
        )
        args.out.write_text("\n".join([*header, table, "", took, ""]))
    print(table)
    return table


def collect(
    done: dict[Unit, dict[str, Scores]], units: list[Unit], names: list[str]
) -> dict[tuple[str, str], list[Scores]]:
    """The finished units' scores by (dataset, method), in the order of `units` whatever order
    they finished in."""
    results: dict[tuple[str, str], list[Scores]] = defaultdict(list)
    for unit in (unit for unit in units if unit in done):
        for method, scores in done[unit].items():
            results[(names[unit[0]], method)].append(scores)
    return results


if __name__ == "__main__":
    main()
