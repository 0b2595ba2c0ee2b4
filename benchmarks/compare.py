"""Native vs anomalib reference, side by side: accuracy and speed on the same data and backbone.

`run_compare` runs each native model and its `anomalib.<name>` entry as cells of one grid (one
process, one backbone, one feature cache), then writes reports/compare.md and
reports/plots/compare.png. A model that is not registered (or whose cell failed) keeps a row
that says so; the other side of the pair is still reported.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

COMPARED_MODELS: tuple[str, ...] = ("cflow", "fastflow", "csflow", "uflow")
# (record key, table label); the ratio column is native / reference for every metric
METRICS: tuple[tuple[str, str], ...] = (
    ("image_auroc", "image AUROC"),
    ("pixel_auroc", "pixel AUROC"),
    ("train_s_per_epoch", "train s/epoch"),
    ("latency_ms_p50", "latency p50 (ms, batch 1)"),
    ("peak_memory_mb", "peak memory (MB)"),
    ("params_trainable", "trainable params"),
)


def reference_name(model: str) -> str:
    return f"anomalib.{model}"


def record_metrics(record: dict) -> dict[str, float]:
    """The compared numbers of one finished cell (NaN where the record lacks them)."""
    summary, cost = record.get("summary") or {}, record.get("cost") or {}

    def acc(metric: str) -> float:
        value = (summary.get(metric) or {}).get("acc")
        return float("nan") if value is None else float(value)

    times = cost.get("train_time_s") or []
    epochs = (record.get("config") or {}).get("epochs") or 0
    per_epoch = sum(times) / (epochs * len(times)) if times and epochs else float("nan")
    trainable = cost.get("params_trainable") or []
    return {
        "image_auroc": acc("image_auroc"),
        "pixel_auroc": acc("pixel_auroc"),
        "train_s_per_epoch": per_epoch,
        "latency_ms_p50": float(cost.get("latency_ms_p50", float("nan"))),
        "peak_memory_mb": float(cost.get("peak_memory_mb", float("nan"))),
        "params_trainable": float(max(trainable)) if trainable else float("nan"),
    }


def _status(name: str, registered: set[str], by_model: dict[str, dict]) -> str:
    if name not in registered:
        return "not registered"
    record = by_model.get(name)
    if record is None:
        return "not run"
    if record.get("status") != "ok":
        message = (record.get("error") or {}).get("message", "")
        return f"failed: {message.splitlines()[0][:80]}" if message else "failed"
    return "ok"


def compare_tables(
    records: Sequence[dict], models: Sequence[str], registered: set[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(status per model, long metric table: model, metric, native, reference, ratio)."""
    by_model = {r["model"]: r for r in records}
    status_rows, metric_rows = [], []
    for model in models:
        sides = {"native": model, "reference": reference_name(model)}
        status = {side: _status(name, registered, by_model) for side, name in sides.items()}
        status_rows.append({"model": model, **status})
        values = {
            side: record_metrics(by_model[name]) if status[side] == "ok" else {}
            for side, name in sides.items()
        }
        for key, label in METRICS:
            native = values["native"].get(key, float("nan"))
            reference = values["reference"].get(key, float("nan"))
            ratio = native / reference if reference != 0 else float("nan")
            metric_rows.append({"model": model, "metric": label, "key": key, "native": native,
                                "reference": reference, "native/reference": ratio})
    return pd.DataFrame(status_rows), pd.DataFrame(metric_rows)


def _fmt(value: float, key: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if key == "params_trainable":
        return f"{value / 1e6:.2f}M"
    if key in ("image_auroc", "pixel_auroc"):
        return f"{value:.3f}"
    return f"{value:.3g}"


def markdown(status: pd.DataFrame, metrics: pd.DataFrame, context: dict | None = None) -> str:
    """The compare.md text: context, status per model, then the metric table."""
    shown = metrics.copy()
    for col in ("native", "reference"):
        shown[col] = [_fmt(v, k) for v, k in zip(shown[col], shown["key"], strict=True)]
    shown["native/reference"] = [_fmt(v, "ratio") for v in shown["native/reference"]]
    shown = shown.drop(columns="key")
    lines = ["# Native vs anomalib reference", ""]
    if context:
        lines += [", ".join(f"{k}: {v}" for k, v in context.items()), ""]
    lines += [
        "Reference entries are `anomalib.<model>`: anomalib's flow, loss and anomaly map on the "
        "same frozen nfbench features (see models/reference/README.md). Training time per epoch "
        "is total training time / (epochs x training phases). Latency and memory cover backbone "
        "+ scoring; on CPU memory is the process's peak RSS (it includes imported libraries and "
        "cached features, so it is comparable only within one run).",
        "",
        "## Status",
        "",
        status.to_markdown(index=False),
        "",
        "## Metrics",
        "",
        shown.to_markdown(index=False, disable_numparse=True),
        "",
    ]
    return "\n".join(lines)


def plot(metrics: pd.DataFrame, path: Path) -> Path:
    """One panel per metric: native vs reference bars per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = [k for k, _ in METRICS]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.2))
    for ax, (key, label) in zip(np.atleast_1d(axes), METRICS, strict=True):
        part = metrics[metrics["key"] == key]
        x = np.arange(len(part))
        ax.bar(x - 0.2, part["native"].fillna(0), 0.4, label="native")
        ax.bar(x + 0.2, part["reference"].fillna(0), 0.4, label="anomalib")
        ax.set_xticks(x, part["model"], rotation=30)
        ax.set_title(label, fontsize=9)
    np.atleast_1d(axes)[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_compare(
    status: pd.DataFrame, metrics: pd.DataFrame, out_dir: Path, context: dict | None = None
) -> Path:
    """Write out_dir/compare.md and out_dir/plots/compare.png; returns the markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "compare.md"
    path.write_text(markdown(status, metrics, context))
    plot(metrics, out_dir / "plots" / "compare.png")
    return path


def run_compare(
    scenario: str = "synthetic",
    strategy: str = "joint",
    out_dir: Path = Path("reports"),
    results_dir: Path = Path("results/compare"),
    models: Sequence[str] = COMPARED_MODELS,
    seed: int = 0,
    input_size: int = 128,
    device: str = "cpu",
    tasks: str | None = None,
    data_root: Path | None = None,
    cache_dir: Path = Path(".cache/nfbench"),
    overrides: dict | None = None,
    show_progress: bool = True,
) -> Path:
    """Run native and reference cells for each model in one grid and write the comparison.

    `overrides` (e.g. {"epochs": 2}) apply to both sides of every pair, for quick runs.
    """
    from nfbench.benchmarks.runner import RunRequest, run_grid
    from nfbench.models.registry import available_models

    registered = set(available_models())
    names = [n for m in models for n in (m, reference_name(m)) if n in registered]
    records: list[dict] = []
    if names:
        request = RunRequest(
            models=names, strategies=[strategy], seeds=[seed], scenario=scenario, tasks=tasks,
            data_root=data_root, device=device, input_size=input_size, results_dir=results_dir,
            cache_dir=cache_dir, model_overrides=shared_schedule(models, registered, overrides),
        )
        records = run_grid(request, show_progress=show_progress)
    status, metrics = compare_tables(records, models, registered)
    context = {"scenario": scenario, "strategy": strategy, "seed": seed,
               "input size": input_size, "device": device}
    if overrides:
        context["overrides"] = overrides
    return write_compare(status, metrics, out_dir, context)


def shared_schedule(
    models: Sequence[str], registered: set[str], overrides: dict | None
) -> dict[str, dict]:
    """Both sides of a pair train on the same schedule: the native config's epochs and batch
    size (or the overrides), so accuracy differences are not a matter of more steps."""
    from nfbench.models.registry import build_config

    schedule: dict[str, dict] = {}
    for model in models:
        if model not in registered:
            continue
        native = build_config(model)
        shared = {"epochs": native.epochs, "batch_size": native.batch_size, **(overrides or {})}
        for name in (model, reference_name(model)):
            if name in registered:
                schedule[name] = dict(shared)
    return schedule


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `nfbench compare`."""
    parser.add_argument("--scenario", default="synthetic")
    parser.add_argument("--strategy", default="joint")
    parser.add_argument("--models", nargs="+", default=list(COMPARED_MODELS),
                        help="native names; each runs beside anomalib.<name>")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tasks")
    parser.add_argument("--data-root", type=Path)
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/nfbench"))
    parser.add_argument("--results", dest="results_dir", type=Path,
                        default=Path("results/compare"))
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--epochs", type=int, help="epochs for both sides (default: each config's)")


def main_compare(args: argparse.Namespace) -> int:
    """`nfbench compare`: run the pairs and write reports/compare.md."""
    overrides = {"epochs": args.epochs} if args.epochs else None
    path = run_compare(
        scenario=args.scenario, strategy=args.strategy, out_dir=args.out,
        results_dir=args.results_dir, models=args.models, seed=args.seed,
        input_size=args.input_size, device=args.device, tasks=args.tasks,
        data_root=args.data_root, cache_dir=args.cache_dir, overrides=overrides,
    )
    print(f"wrote {path}")
    return 0
