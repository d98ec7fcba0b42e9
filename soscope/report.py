"""A run's report: its figures from the logs and the evaluation, and a short `summary.md`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from soscope.data.sample import Section
from soscope.io_utils import atomic_path
from soscope.plotting import plot_loss_curves, plot_method_scores

STAGES = ("vgae", "soscope")
HIGHLIGHTS = (
    "likelihood.name",
    "platform.name",
    "epochs.vgae",
    "epochs.soscope",
    "model.z_dim",
    "model.vgae.lr",
    "model.soscope.lr",
    "model.soscope.node_loss",
    "schedule.gamma_mode",
    "consistency",
    "non_negative",
    "validation.fraction",
    "trainer.accelerator",
    "seed",
)
FILE_NOTES = {
    "infer_subspot.npy": "enhanced profiles, one row per subspot (the original's output)",
    "enhanced.h5ad": "the same as AnnData for scanpy/squidpy (see the docs, *Outputs*)",
    "enhanced.zarr": "the same as SpatialData: subspots as circles over the H&E image",
    "metrics.json": "soscope and the baselines against the ground truth; the objective",
    "enhanced.png": "spot input | ground truth | enhanced maps over the H&E image",
    "vgae.png": "stage 1: spot input | reconstruction",
    "loss_curves.png": "loss terms of both stages against the step",
    "evaluation.png": "soscope and the baselines, bar chart of the main scores",
    "summary.md": "this file",
    "checkpoints": "Lightning checkpoints of both stages (resume with resume=true)",
    "csv": "the CSV logger's metrics.csv per stage (a resumed stage adds attempt_<n>/)",
    "tensorboard": "TensorBoard event files per stage",
    "wandb": "W&B run files (wandb sync to upload offline runs)",
    ".hydra": "the composed config, Hydra's settings and the command-line overrides",
    "train.log": "the log of the run",
}


def loss_histories(cfg: DictConfig) -> dict[str, pd.DataFrame]:
    """Each stage's logged metrics, when the run logged with the CSV logger (all attempts of a
    resumed stage stitched, see `stitch_attempts`)."""
    logger = cfg.get("logger")
    if not logger or not str(logger.get("_target_", "")).endswith("CSVLogger"):
        return {}
    histories = {}
    for stage in STAGES:
        folder = Path(logger.save_dir) / stage
        resumed = sorted(folder.glob("attempt_*/metrics.csv"), key=lambda p: int(p.parent.name[8:]))
        files = [path for path in [folder / "metrics.csv", *resumed] if path.is_file()]
        if files:
            histories[stage] = stitch_attempts([pd.read_csv(path) for path in files])
    return histories


def stitch_attempts(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """One history from a stage's attempts, oldest first: each resumed attempt replaces the
    rows of the earlier ones from the step it resumed at (those steps were trained again)."""
    history = tables[0]
    for table in tables[1:]:
        if len(table):
            history = history[history["step"] < table["step"].min()]
        history = pd.concat([history, table], ignore_index=True)
    return history


def write_run_figures(cfg: DictConfig, metrics: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """loss_curves.png (CSV logger) and evaluation.png (ground truth); returns {name: path}."""
    figures: dict[str, Path] = {}
    histories = loss_histories(cfg)
    if histories:
        with atomic_path(out_dir / "loss_curves.png") as tmp:
            plot_loss_curves(histories, tmp)
        figures["loss_curves"] = out_dir / "loss_curves.png"
    scores = method_scores(metrics)
    if scores:
        with atomic_path(out_dir / "evaluation.png") as tmp:
            plot_method_scores(scores, tmp)
        figures["evaluation"] = out_dir / "evaluation.png"
    return figures


def method_scores(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The per-method entries of metrics.json (the objective left out)."""
    return {name: values for name, values in metrics.items() if isinstance(values, dict)}


def data_lines(cfg: DictConfig, section: Section) -> list[str]:
    """What the run read: the source, and the sizes of spots, subspots and features."""
    graph = section.graph
    counts = graph.sub_to_spot.bincount(minlength=graph.num_spots)
    per_spot = str(int(counts[0])) if bool((counts == counts[0]).all()) else "variable"
    source = cfg.data.get("path") or cfg.data.get("_target_", "?")
    return [
        f"- section `{section.name}` from `{source}`",
        f"- {graph.num_spots} spots, {graph.num_subspots} subspots ({per_spot} per spot), "
        f"{graph.x.size(1)} features, {graph.sub_feat.size(1)} image-feature columns",
        f"- H&E image: {image_line(section)}; "
        f"ground truth: {'yes' if section.truth is not None else 'no'}",
    ]


def image_line(section: Section) -> str:
    """Whether the section has an image, and which: its size and scale factor."""
    if section.image is None:
        return "no"
    height, width = section.image.shape[:2]
    return f"yes, {width}×{height} px at scale {section.image_scale:g}"


def config_lines(cfg: DictConfig) -> list[str]:
    """The settings that most change a result, as `key=value` overrides would name them."""
    values = [(key, OmegaConf.select(cfg, key, default=None)) for key in HIGHLIGHTS]
    shown = ", ".join(f"`{key}={value}`" for key, value in values if value is not None)
    return [shown, "", "The full resolved config: `.hydra/config.yaml`."]


def metrics_lines(metrics: dict[str, Any]) -> list[str]:
    """A markdown table, one row per method (soscope first), then the objective; "—" where a
    method has no such score (the baselines have no predictive sd to calibrate)."""
    scores = method_scores(metrics)
    objective = metrics.get("objective")
    tail = [] if objective is None else ["", f"Objective (held-out spot r): {objective:.4f}"]
    if not scores:
        return ["No ground truth: nothing to score against.", *tail]
    columns = list(next(iter(scores.values())))
    lines = [
        "| method | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for method, values in scores.items():
        cells = (f"{values[c]:.4f}" if c in values else "—" for c in columns)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return [*lines, *tail]


def files_lines(out_dir: Path) -> list[str]:
    """Every entry of the run folder (summary.md and Hydra's `.hydra/` included), with notes."""
    names = {p.name for p in out_dir.iterdir() if not p.name.startswith(".") or p.name == ".hydra"}
    lines = []
    for name in sorted(names | {"summary.md"}):
        slash = "/" if (out_dir / name).is_dir() else ""
        note = FILE_NOTES.get(name)
        lines.append(f"- `{name}{slash}`" + (f": {note}" if note else ""))
    return lines


def write_summary(
    cfg: DictConfig, section: Section, metrics: dict[str, Any], out_dir: Path
) -> None:
    """summary.md in the run folder: data, config highlights, scores, files."""
    sections = [
        ["# soscope run", "", f"Folder: `{out_dir}`"],
        ["## Data", "", *data_lines(cfg, section)],
        ["## Configuration", "", *config_lines(cfg)],
        ["## Scores against the ground truth", "", *metrics_lines(metrics)],
        ["## Files", "", *files_lines(out_dir)],
    ]
    text = "\n\n".join("\n".join(lines) for lines in sections) + "\n"
    with atomic_path(out_dir / "summary.md") as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
