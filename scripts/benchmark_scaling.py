"""Time soscope's stage-2 training step, epoch and inference from hundreds to 10⁵ spots.

Usage:
  python scripts/benchmark_scaling.py [--sizes 369 2000 4000 20000 100000] [--tiles-from 20000]
      [--reference /path/to/original/soScope] [--device cpu|cuda] [--demo] [--threads 2]
      [--config model.graph_loss=sampled ...]

For each size the script makes a synthetic Visium section (7 subspots per spot, 2,048-d image
features, 9 NB genes; hexagonal spot lattice, kNN subspot graph), trains soscope's default
stage-2 model on it in a fresh process (full graph below `--tiles-from` spots, tiles from there
on, with float16 image features) and prints one Markdown table: mode, spots, subspots, the
subspot-graph loss its step computes (exact, sampled or off) with the image-feature columns it
reads, seconds per training step (median after a warm-up step), seconds per epoch, the peak
resident memory of making the data and training, the inference time (enhanced means,
spot-consistent), the peak resident memory with inference and the one-off time of projecting
the image features onto their top `data.feature_components` directions, as the data module does;
`--config` changes soscope's config (Hydra overrides; `model=original` is the original's model,
exact graph loss on all image columns included). With `--reference` (a checkout of the
original soScope) it also times the original's `soScope_NB` training step (exact graph loss,
all image columns) on the same data, in
a separate process under a memory cap and a time limit per size, and adds the ratio
original / soscope, or 'did not finish' / 'out of memory'. `--demo` also times the original's
NB demo schedule (2,500 + 2,500 steps at 369 spots) end to end on `--device`; `--schedule
SPOTS ...` runs the default schedule end to end at those sizes (both stages with the config's
epochs, then the enhanced means and the predictive sd) and says what each part took and the
peak memory. `--profile SPOTS` profiles one full-graph stage-2 step at that size
(torch.profiler): CPU time by part of the step, the ops that take the most time, and those
that allocate the most memory. `--genes 2000` gives sections of a real size.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from torch_geometric.utils import add_remaining_self_loops

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from soscope.config import CONF_MODULE  # noqa: E402
from soscope.data.features import project_features  # noqa: E402
from soscope.data.graph import build_knn_graph, build_spot_graph  # noqa: E402
from soscope.data.sample import Section, SpotGraph, fixed_layout, make_spot_graph  # noqa: E402
from soscope.data.tiles import TiledSection  # noqa: E402
from soscope.models.losses import resolve_graph_mode  # noqa: E402
from soscope.pipeline import finer_tiles  # noqa: E402
from soscope.predictor import Predictor  # noqa: E402
from soscope.preprocess.layouts import visium_subspots  # noqa: E402
from soscope.training.soscope import SoScopeModule  # noqa: E402

SUBSPOTS = 7
PITCH = 100.0  # pixels between spot centres
WEIGHT_DIMS = 16  # image-feature columns the graph weights are computed from
DEMO_SPOTS = 369
GiB = 1024**3


# ---------------------------------------------------------------- synthetic data


def synthetic_arrays(n_spots: int, genes: int, features: int, seed: int = 0) -> dict:
    """A Visium-like section as numpy arrays: counts, both graphs, positions, image features."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n_spots)))
    rows, cols = np.divmod(np.arange(n_spots), side)
    cols = 2 * cols + rows % 2
    coords = np.column_stack([rows, cols])
    pos = np.column_stack([cols * PITCH / 2, rows * PITCH * np.sqrt(3) / 2])
    layout = visium_subspots(pos, spot_diameter=0.55 * PITCH)
    sub_feat = np.empty((len(layout.sub_pos), features), dtype=np.float16)
    for start in range(0, len(sub_feat), 8192):  # in chunks: no float64 copy of the whole
        block = rng.standard_normal((min(8192, len(sub_feat) - start), features))
        sub_feat[start : start + len(block)] = block.astype(np.float16)
    programs = rng.gamma(2.0, 2.0, size=(4, genes))
    domain = (pos[:, 0] // (PITCH * 8) + pos[:, 1] // (PITCH * 8)).astype(int) % 4
    totals = np.empty((n_spots, genes), dtype=np.float32)
    for start in range(0, n_spots, 4096):  # in chunks: no int64 or float64 copy of the whole
        stop = start + 4096
        totals[start:stop] = rng.poisson(programs[domain[start:stop]] * SUBSPOTS)
    edges, weights = build_spot_graph(coords, totals, "visium")
    sub_edges, sub_weights = build_knn_graph(layout.sub_pos, sub_feat[:, :WEIGHT_DIMS], 6)
    return {
        "x": (totals / SUBSPOTS).astype(np.float32),
        "edge_index": edges.numpy(),
        "edge_weight": weights.numpy(),
        "sub_feat": sub_feat,
        "sub_edge_index": sub_edges.numpy(),
        "sub_edge_weight": sub_weights.numpy(),
        "pos": pos.astype(np.float32),
        "sub_pos": layout.sub_pos.astype(np.float32),
    }


def as_graph(arrays: dict, feature_dtype: torch.dtype) -> SpotGraph:
    """The arrays as soscope's graph sample, self-loops added as the data contract says."""
    n = len(arrays["x"])
    edges, weights = add_remaining_self_loops(
        torch.from_numpy(arrays["edge_index"]), torch.from_numpy(arrays["edge_weight"]), 1.0, n
    )
    m = len(arrays["sub_feat"])
    sub_edges, sub_weights = add_remaining_self_loops(
        torch.from_numpy(arrays["sub_edge_index"]),
        torch.from_numpy(arrays["sub_edge_weight"]),
        1.0,
        m,
    )
    graph = make_spot_graph(
        torch.from_numpy(arrays["x"]),
        edges,
        weights,
        torch.empty(0, 0),
        sub_edges,
        sub_weights,
        fixed_layout(n, SUBSPOTS),
        pos=torch.from_numpy(arrays["pos"]),
        sub_pos=torch.from_numpy(arrays["sub_pos"]),
    )
    graph.sub_feat = torch.from_numpy(arrays["sub_feat"]).to(feature_dtype)
    return graph


# ---------------------------------------------------------------- soscope


def stage_two_model(graph: SpotGraph, cfg) -> SoScopeModule:
    """soscope's stage-2 module as `cfg` (the project's config) builds it."""
    dims = {"n_features": int(graph.x.size(1)), "feat_dim": int(graph.sub_feat.size(1))}
    return instantiate(cfg.model.soscope, _convert_="all", **dims)


def project_config(overrides: list[str]):
    """The project's Hydra config (quiet: no logger, no extra callbacks)."""
    base = ["logger=none", "callbacks=none", "trainer.enable_progress_bar=false"]
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        return compose("config", overrides=[*base, *overrides])


def optimiser(model: SoScopeModule) -> torch.optim.Optimizer:
    """The module's own optimiser (its γ learning-rate schedule aside)."""
    configured = model.configure_optimizers()
    return configured["optimizer"] if isinstance(configured, dict) else configured


def timed_step(model, opt, batch, device: str) -> float:
    """Seconds for one optimiser step on `batch`."""
    start = time.perf_counter()
    batch = batch.to(device)
    loss, _ = model.stage_loss(batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def prepared(
    n_spots: int, feature_dtype: torch.dtype, args: argparse.Namespace, device: str
) -> tuple[SpotGraph, SoScopeModule, torch.optim.Optimizer, float]:
    """A synthetic section of `n_spots` with its image features projected as the data module
    does, soscope's stage-2 model for it on `device` and its optimiser, and the seconds the
    projection took."""
    graph = as_graph(synthetic_arrays(n_spots, args.genes, args.features), feature_dtype)
    cfg = project_config(args.config)
    start = time.perf_counter()  # once per section, as the data module does it
    graph.sub_feat = project_features(graph.sub_feat, cfg.data.feature_components)
    projection = time.perf_counter() - start
    torch.manual_seed(0)
    model = stage_two_model(graph, cfg).to(device)
    return graph, model, optimiser(model), projection


def measure_soscope(n_spots: int, mode: str, args: argparse.Namespace) -> dict:
    """Step, epoch and inference times and peak memory of soscope in this process."""
    dtype = torch.float16 if mode == "tiles" else torch.float32
    graph, model, opt, projection = prepared(n_spots, dtype, args, args.device)
    tiles = TiledSection(graph, args.tile_size, *model.halo()) if mode == "tiles" else None
    if tiles is None:
        steps = [timed_step(model, opt, graph, args.device) for _ in range(args.steps + 1)][1:]
        epoch = statistics.median(steps)
    else:
        timed_step(model, opt, tiles[0], args.device)  # warm-up
        start = time.perf_counter()
        steps = [timed_step(model, opt, tiles[i], args.device) for i in range(len(tiles))]
        epoch = time.perf_counter() - start
    model = model.cpu()
    training_rss = peak_rss()
    start = time.perf_counter()  # over the pipeline's views (finer tiles where these are large)
    run_size = graph.num_nodes if tiles is None else args.tile_size
    views = finer_tiles(graph, model.halo(), run_size)
    Predictor(model, graph, tiles if views is None else views).enhance(consistency="rescale")
    inference = time.perf_counter() - start
    result = {
        "mode": mode,
        "spots": n_spots,
        "subspots": graph.num_subspots,
        "tiles": 1 if tiles is None else len(tiles),
        "loss": graph_loss_label(model, graph if tiles is None else tiles[0]),
        "step": statistics.median(steps),
        "epoch": epoch,
        "inference": inference,
        "projection": projection,
        "training_rss": training_rss,
        "rss": peak_rss(),
    }
    if args.device == "cuda":
        result["gpu_memory"] = torch.cuda.max_memory_allocated() / GiB
    return result


# Parts of a stage-2 step the profile reports, in the order they are listed: (label, the
# object and method that do it); the indented ones run inside the spot-level losses.
PROFILED_PARTS = (
    ("encoder", "model", "encode"),
    ("spot-level losses", "model", "spot_level_losses"),
    ("  image path: hidden units", "image_path", "hidden"),
    ("  image path: predictions", "image_path", "predict"),
    ("  share prior and image shares", "model", "subspot_prior"),
    ("  image path: spot loss", "model", "image_loss"),
    ("  decoder", "model", "raw_outputs"),
)
STEP_PARTS = ("forward", "backward", "optimiser step")


def labelled(label: str, method):
    """`method` run inside a profiler range named `label`."""

    def run(*args, **kwargs):
        with torch.profiler.record_function(label):
            return method(*args, **kwargs)

    return run


def profile_step(n_spots: int, args: argparse.Namespace) -> str:
    """Markdown tables of one profiled full-graph stage-2 step (after two warm-up steps)."""
    graph, model, opt, _ = prepared(n_spots, torch.float32, args, "cpu")
    owners = {"model": model, "image_path": model.image_path}
    for label, owner, name in PROFILED_PARTS:
        if owners[owner] is not None:
            setattr(owners[owner], name, labelled(label, getattr(owners[owner], name)))
    for _ in range(2):
        timed_step(model, opt, graph, "cpu")
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        with torch.profiler.record_function("forward"):
            loss, _ = model.stage_loss(graph)
        opt.zero_grad()
        with torch.profiler.record_function("backward"):
            loss.backward()
        with torch.profiler.record_function("optimiser step"):
            opt.step()
    events = {e.key: e for e in prof.key_averages()}
    step = sum(events[key].cpu_time_total for key in STEP_PARTS)
    lines = [
        f"Profile of one stage-2 step, {n_spots:,} spots × {args.genes:,} genes, "
        f"{torch.get_num_threads()} threads: {step / 1e6:.3f} s",
        "",
        "| part of the step | CPU s | share |",
        "|---|---|---|",
    ]
    parts = [STEP_PARTS[0], *(label for label, _, _ in PROFILED_PARTS), *STEP_PARTS[1:]]
    for key in (key for key in parts if key in events):
        seconds = events[key].cpu_time_total
        name = key if not key.startswith(" ") else "… " + key.strip()
        lines.append(f"| {name} | {seconds / 1e6:.3f} | {seconds / step:.0%} |")
    ops = [e for key, e in events.items() if key not in parts]
    lines += ["", "| op (most self time) | calls | self CPU s | share |", "|---|---|---|---|"]
    for e in sorted(ops, key=lambda e: -e.self_cpu_time_total)[:12]:
        share = e.self_cpu_time_total / step
        lines.append(f"| {e.key} | {e.count} | {e.self_cpu_time_total / 1e6:.3f} | {share:.0%} |")
    lines += [
        "",
        "| op (most memory allocated) | calls | GiB allocated in the step |",
        "|---|---|---|",
    ]
    for e in sorted(ops, key=lambda e: -e.self_cpu_memory_usage)[:8]:
        lines.append(f"| {e.key} | {e.count} | {e.self_cpu_memory_usage / GiB:.2f} |")
    return "\n".join(lines)


def graph_loss_label(model: SoScopeModule, batch: SpotGraph) -> str:
    """The subspot-graph loss a step of `model` computes on `batch` (off at weight 0), and the
    image-feature columns its decoder and image path read."""
    hp = model.hparams
    loss = "off"
    if hp.graph_loss_weight:
        loss = resolve_graph_mode(hp.graph_loss, batch.num_subspots, hp.exact_max_nodes)
    return f"{loss} ({hp.feat_dim:,})"


def peak_rss() -> float:
    """Peak resident memory of this process in GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB


def measure_schedule(n_spots: int, overrides: list[str], args: argparse.Namespace) -> dict:
    """Seconds for each stage of a whole schedule at `n_spots` spots, as the pipeline trains it
    (the config with `overrides`; checkpoints and stage figures included), then for the
    enhanced means and the predictive sd (`predict`), and the peak resident memory."""
    from soscope.pipeline import (
        data_dims,
        fit_stage,
        make_datamodule,
        predict,
        print_lightning_once,
    )

    print_lightning_once()
    trainer = "gpu" if args.device == "cuda" else "cpu"
    cfg = project_config([f"trainer={trainer}", *overrides])
    graph = as_graph(synthetic_arrays(n_spots, args.genes, args.features), torch.float32)
    datamodule = make_datamodule(cfg, Section(graph, [f"g{i}" for i in range(args.genes)]))
    dims = data_dims(datamodule.section)  # image features as projected by the data module
    seconds = {"epochs": dict(cfg.epochs)}
    with tempfile.TemporaryDirectory(prefix="soscope_schedule_") as out:
        vgae = instantiate(cfg.model.vgae, _convert_="all", **dims)
        start = time.perf_counter()
        fit_stage(vgae, datamodule, cfg, Path(out))
        seconds["vgae"] = time.perf_counter() - start
        model = instantiate(cfg.model.soscope, _convert_="all", **dims)
        model.load_encoder(vgae.encoder)
        start = time.perf_counter()
        fit_stage(model, datamodule, cfg, Path(out))
        seconds["soscope"] = time.perf_counter() - start
        start = time.perf_counter()
        predict(cfg, model, datamodule)
        seconds["predict"] = time.perf_counter() - start
    return {**seconds, "rss": peak_rss()}


def measure_demo(args: argparse.Namespace) -> dict:
    """The original's NB demo schedule (`--demo-epochs`: 2,500 + 2,500 full-graph steps) at
    369 spots (`measure_schedule`)."""
    vgae_epochs, soscope_epochs = args.demo_epochs
    epochs = [f"epochs.vgae={vgae_epochs}", f"epochs.soscope={soscope_epochs}"]
    return measure_schedule(DEMO_SPOTS, ["experiment=nb", *epochs], args)


def schedule_line(n_spots: int, args: argparse.Namespace) -> str:
    """The default schedule end to end at `n_spots` spots × `--genes` genes, measured in a fresh
    process (a clean peak RSS), as one line of text."""
    command = [sys.executable, __file__, "--worker-schedule", str(n_spots)]
    command += ["--threads", str(args.threads), "--device", args.device]
    command += ["--features", str(args.features), "--genes", str(args.genes)]
    command += ["--config", *args.config] if args.config else []
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the schedule at {n_spots} spots failed:\n{done.stderr[-3000:]}")
    s = json.loads(done.stdout.strip().splitlines()[-1])
    total = s["vgae"] + s["soscope"] + s["predict"]
    return (
        f"Default schedule ({s['epochs']['vgae']:,} + {s['epochs']['soscope']:,} epochs) at "
        f"{n_spots:,} spots × {args.genes:,} genes on {args.device}, {args.threads} threads: "
        f"stage 1 {s['vgae']:.0f} s + stage 2 {s['soscope']:.0f} s + enhanced means and "
        f"predictive sd {s['predict']:.0f} s = {total / 60:.1f} min, peak RSS {s['rss']:.2f} GiB"
    )


# ---------------------------------------------------------------- the original


def save_arrays(arrays: dict, path: Path) -> None:
    """The section for the original: float32 features, self-loops added as its reader does."""
    graph = as_graph(arrays, torch.float32)
    np.savez(
        path,
        x=graph.x.numpy(),
        edge_index=graph.edge_index.numpy(),
        edge_weight=graph.edge_weight.numpy(),
        sub_feat=graph.sub_feat.numpy(),
        sub_edge_index=graph.sub_edge_index.numpy(),
        sub_edge_weight=graph.sub_edge_weight.numpy(),
    )


def import_original(reference: Path):
    """The original's `soScope_NB` trainer, imported past its package `__init__` files (they
    import modules its repository does not contain)."""
    import importlib
    import types

    model_dir = reference / "soScope_model"
    for name, folder in (
        ("soScope_model", model_dir),
        ("soScope_model.training", model_dir / "training"),
    ):
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    module = importlib.import_module("soScope_model.training.soScope_model_for_NB")
    return module.soScope_NB


def measure_original(reference: Path, data: Path, budget: float) -> dict:
    """Seconds per training step of the original: its second step if time allows, else its first."""
    import yaml

    arrays = np.load(data)
    config = yaml.safe_load((reference / "soScope_demo/config/NB/soScope.yml").read_text())
    params = {
        **config["params"],
        "gene_dim": arrays["x"].shape[1],
        "sub_dim": arrays["sub_feat"].shape[1],
        "sub_node": SUBSPOTS,
    }
    trainer = import_original(reference)(**params)
    tensor = torch.from_numpy
    st_data = [tensor(arrays["x"]), tensor(arrays["edge_index"]), tensor(arrays["edge_weight"])]
    sub_data = [
        tensor(arrays["sub_feat"]),
        tensor(arrays["sub_edge_index"]),
        tensor(arrays["sub_edge_weight"]),
        None,
    ]
    steps: list[float] = []
    start = time.perf_counter()
    while len(steps) < 2 and (not steps or time.perf_counter() - start + steps[-1] < budget):
        step_start = time.perf_counter()
        trainer.train_step(st_data, sub_data)
        steps.append(time.perf_counter() - step_start)
    return {"step": statistics.median(steps[1:] or steps), "steps": len(steps), "rss": peak_rss()}


def run_original(reference: Path, arrays: dict, args: argparse.Namespace) -> dict:
    """The original's figures in a child process capped at `--reference-memory` GiB and
    `--reference-timeout` seconds; {'failure': ...} when it does not finish."""
    with tempfile.TemporaryDirectory(prefix="soscope_reference_") as tmp:
        data = Path(tmp) / "section.npz"
        save_arrays(arrays, data)
        limit = int(args.reference_memory * GiB)

        def cap() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        command = [
            sys.executable,
            __file__,
            "--worker-original",
            str(data),
            "--reference",
            str(reference),
            "--threads",
            str(args.threads),
            "--reference-timeout",
            str(args.reference_timeout),
        ]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=args.reference_timeout,
                preexec_fn=cap,
            )
        except subprocess.TimeoutExpired:
            return {"failure": "did not finish"}
    if done.returncode != 0:
        memory = ("MemoryError", "alloc", "not enough memory", "DefaultCPUAllocator")
        if any(word in done.stderr for word in memory) or done.returncode < 0:
            return {"failure": "out of memory"}
        return {"failure": "failed: " + done.stderr.strip().splitlines()[-1][:80]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- driver


def run_soscope(n_spots: int, mode: str, args: argparse.Namespace) -> dict:
    """soscope's figures at one size, measured in a fresh process (a clean peak RSS)."""
    command = [sys.executable, __file__, "--worker-soscope", str(n_spots), mode]
    command += ["--threads", str(args.threads), "--device", args.device]
    command += ["--steps", str(args.steps), "--tile-size", str(args.tile_size)]
    command += ["--features", str(args.features), "--genes", str(args.genes)]
    command += ["--config", *args.config] if args.config else []
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"soscope at {n_spots} spots failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def row(ours: dict, original: dict | None) -> str:
    """One Markdown table row."""
    cells = [
        ours["mode"] + ("" if ours["mode"] == "full" else f" ({ours['tiles']})"),
        f"{ours['spots']:,}",
        f"{ours['subspots']:,}",
        ours["loss"],
        f"{ours['step']:.3f}",
        f"{ours['epoch']:.2f}",
        f"{ours['training_rss']:.2f}",
        f"{ours['inference']:.2f}",
        f"{ours['rss']:.2f}",
        f"{ours['projection']:.2f}",
    ]
    if "gpu_memory" in ours:
        cells.append(f"{ours['gpu_memory']:.2f}")
    if original is not None:
        if "failure" in original:
            cells += [original["failure"], "", ""]
        else:
            ratio = original["step"] / ours["step"]
            shown = f"{ratio:.1f}×" if ratio < 10 else f"{ratio:,.0f}×"
            cells += [f"{original['step']:.2f}", f"{original['rss']:.2f}", shown]
    return "| " + " | ".join(cells) + " |"


def header(args: argparse.Namespace) -> str:
    """The table's head."""
    names = ["mode (tiles)", "spots", "subspots", "graph loss (image columns)", "s/step"]
    names += ["s/epoch", "training peak RSS GiB", "inference s", "peak RSS GiB"]
    names += ["feature projection s"]
    if args.device == "cuda":
        names.append("peak GPU GiB")
    if args.reference:
        names += ["original s/step", "original peak RSS GiB", "original / soscope"]
    return "| " + " | ".join(names) + " |\n|" + "---|" * len(names)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[369, 2000, 4000, 20000, 100000])
    parser.add_argument("--tiles-from", type=int, default=20000, help="tiles from this many spots")
    parser.add_argument("--tile-size", type=int, default=2000, help="own spots per tile")
    parser.add_argument("--steps", type=int, default=5, help="timed full-graph steps per size")
    parser.add_argument("--features", type=int, default=2048)
    parser.add_argument("--genes", type=int, default=9)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--demo", action="store_true", help="also time the NB demo schedule")
    parser.add_argument("--demo-epochs", type=int, nargs=2, default=[2500, 2500])
    parser.add_argument("--reference", type=Path, help="a checkout of the original soScope")
    parser.add_argument("--reference-max-spots", type=int, default=20000)
    parser.add_argument("--reference-timeout", type=float, default=900.0, help="seconds a size")
    parser.add_argument("--reference-memory", type=float, default=20.0, help="GiB cap")
    parser.add_argument(
        "--config",
        nargs="+",
        default=[],
        help="overrides of soscope's config, e.g. model.graph_loss=sampled (default: none)",
    )
    parser.add_argument(
        "--schedule",
        type=int,
        nargs="+",
        default=[],
        metavar="SPOTS",
        help="also run the default schedule end to end (both stages, enhanced means and sd) "
        "at these section sizes",
    )
    parser.add_argument(
        "--profile", type=int, metavar="SPOTS", help="profile one full-graph step at this size"
    )
    parser.add_argument("--worker-soscope", nargs=2, metavar=("SPOTS", "MODE"))
    parser.add_argument("--worker-schedule", type=int, metavar="SPOTS")
    parser.add_argument("--worker-original", type=Path, metavar="DATA")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.worker_soscope:
        spots, mode = args.worker_soscope
        print(json.dumps(measure_soscope(int(spots), mode, args)))
        return
    if args.worker_schedule:
        print(json.dumps(measure_schedule(args.worker_schedule, args.config, args)))
        return
    if args.profile:
        print(profile_step(args.profile, args))
        return
    if args.worker_original:
        budget = args.reference_timeout / 2
        print(json.dumps(measure_original(args.reference, args.worker_original, budget)))
        return
    print(header(args), flush=True)
    for n in args.sizes:
        mode = "tiles" if n >= args.tiles_from else "full"
        ours = run_soscope(n, mode, args)
        original = None
        if args.reference:
            original = {"failure": "not run"}
            if n <= args.reference_max_spots:
                arrays = synthetic_arrays(n, args.genes, args.features)
                original = run_original(args.reference, arrays, args)
        print(row(ours, original), flush=True)
    if args.demo:
        seconds = measure_demo(args)
        print(
            f"\nNB demo schedule ({DEMO_SPOTS} spots, {args.demo_epochs[0]:,} + "
            f"{args.demo_epochs[1]:,} steps) on {args.device}: "
            f"stage 1 {seconds['vgae']:.0f} s + stage 2 {seconds['soscope']:.0f} s"
        )
    for n in args.schedule:
        print("\n" + schedule_line(n, args), flush=True)


if __name__ == "__main__":
    main()
