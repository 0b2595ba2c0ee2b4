"""Native vs anomalib reference, side by side: accuracy and speed on the same data and backbone.

`run_compare` runs each native model and its `anomalib.<name>` entry as cells of one grid (one
process, one backbone, one feature cache), then writes reports/compare.md and
reports/plots/compare.png. A model that is not registered (or whose cell failed) keeps a row
that says so; the other side of the pair is still reported.

Every value carries its 95% interval (``statistics.py``): across seeds where a side has several
(``--seeds``), else a bootstrap over test images from the stored per-sample scores. The
native-vs-reference gap in accuracy is tested like the leaderboard's rows: Welch's t-test
across seeds where both sides have several, else a paired bootstrap (both cells recomputed on
the same resampled test images); "no" means the gap is inside the noise.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from nfbench.benchmarks.records.record import CellRecord
from nfbench.benchmarks.report import compare_text, files, intervals, plots
from nfbench.benchmarks.report.compare_data import reference_name
from nfbench.benchmarks.running.strategies import ONE_PHASE_STRATEGY

__all__ = ["add_compare_arguments", "compare_records", "compared_models", "known_deviations",
           "main_compare", "reference_name", "run_compare", "shared_schedule", "write_compare"]


def compared_models(registered: set[str]) -> list[str]:
    """Every registered native model that has an `anomalib.<name>` reference entry."""
    return sorted(m for m in registered if reference_name(m) in registered)


def compare_records(records: Sequence[CellRecord], models: Sequence[str], registered: set[str],
                    results_dir: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(status per model, long metric table) of the pairs, with bootstrap intervals from the
    per-sample scores under ``results_dir`` (``report.intervals.compare_tables``)."""
    scores = files.read_cell_scores(records, Path(results_dir)) if results_dir else None
    return intervals.compare_tables(records, models, registered, scores)


def write_compare(
    status: pd.DataFrame, metrics: pd.DataFrame, out_dir: Path, context: dict | None = None,
    notes: dict[str, str] | None = None,
) -> Path:
    """Write out_dir/compare.md and out_dir/plots/compare.png; returns the markdown path."""
    files.save_figure(plots.compare_figure(metrics), Path(out_dir) / "plots" / "compare.png")
    return files.write_text(compare_text.compare_markdown(status, metrics, context, notes),
                            Path(out_dir) / "compare.md")


def known_deviations(models: Sequence[str], registered: set[str]) -> dict[str, str]:
    """{model: its reference entry's `known_deviation`} where one is declared."""
    from nfbench.models.registry import get_model_class

    return {m: note for m in models if reference_name(m) in registered
            and (note := get_model_class(reference_name(m)).known_deviation)}


def run_compare(
    scenario: str = "synthetic",
    strategy: str = ONE_PHASE_STRATEGY,
    out_dir: Path = Path("reports"),
    results_dir: Path = Path("results/compare"),
    models: Sequence[str] | None = None,
    seed: int = 0,
    input_size: int = 128,
    device: str = "cpu",
    tasks: str | None = None,
    data_root: Path | None = None,
    cache_dir: Path = Path(".cache/nfbench"),
    overrides: dict | None = None,
    show_progress: bool = True,
    seeds: Sequence[int] | None = None,
) -> Path:
    """Run native and reference cells for each model in one grid and write the comparison.

    `models` defaults to every native model with a reference entry (`compared_models`).
    `overrides` (e.g. {"epochs": 2}) apply to both sides of every pair, for quick runs.
    `seeds` (several per side) replaces `seed`: values become seed means with intervals across
    seeds, and gaps are judged by Welch's t-test instead of the paired bootstrap.
    """
    seed_list = list(seeds) if seeds else [seed]
    from nfbench.benchmarks.running.runner import RunRequest, run_grid
    from nfbench.models.registry import available_models

    registered = set(available_models())
    models = list(models) if models else compared_models(registered)
    names = [n for m in models for n in (m, reference_name(m)) if n in registered]
    records: list[CellRecord] = []
    if names:
        request = RunRequest(
            models=names, strategies=[strategy], seeds=seed_list, scenario=scenario, tasks=tasks,
            data_root=data_root, device=device, input_size=input_size, results_dir=results_dir,
            cache_dir=cache_dir, model_overrides=shared_schedule(models, registered, overrides),
        )
        records = run_grid(request, show_progress=show_progress)
    status, metrics = compare_records(records, models, registered, results_dir)
    context = {"scenario": scenario, "strategy": strategy,
               "seeds" if len(seed_list) > 1 else "seed": ", ".join(map(str, seed_list)),
               "input size": input_size, "device": device}
    if overrides:
        context["overrides"] = overrides
    return write_compare(status, metrics, out_dir, context, known_deviations(models, registered))


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
    parser.add_argument("--strategy", default=ONE_PHASE_STRATEGY)
    parser.add_argument("--models", nargs="+",
                        help="native names; each runs beside anomalib.<name> (default: every "
                             "model that has such a reference entry)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="several seeds per side (overrides --seed): intervals across seeds "
                             "and Welch's t-test on the gap")
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
        seeds=getattr(args, "seeds", None),
    )
    print(f"wrote {path}")
    return 0
