"""`nfbench tune`: choose a model default on a validation split, never on test data.

The split (nfbench.benchmarks.running.validation) holds out part of each class's normal training
images and paints synthetic defects on copies of them. Every value of one config field is then
trained on the remaining training images and evaluated on that split by the bench's own
machinery (`run_grid`: same schedule, strategies, cells and resume), with the field overridden.
The table gives validation image/pixel AUROC ACC per value, mean and 95% interval over seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nfbench.benchmarks.commands.flags import overrides_from_args
from nfbench.benchmarks.measuring.metrics import metric_table
from nfbench.benchmarks.measuring.statistics import seed_interval, welch
from nfbench.benchmarks.running.runner import RunRequest, run_grid
from nfbench.benchmarks.running.strategies import (
    ONE_PHASE_STRATEGY,
    StrategyError,
    available_strategies,
    get_strategy_class,
)
from nfbench.benchmarks.running.validation import SplitSpec, build_validation_split
from nfbench.datasets.files import atomic_write
from nfbench.models.registry import get_model_class

DEFAULT_RESULTS = Path("results/tune")
DEFAULT_CACHE_DIR = Path(".cache/nfbench")  # the same default as `nfbench run`


def tuned_metrics() -> list[tuple[str, str]]:
    """(key, label) of the metrics a tune run reports and judges: the summarised rows."""
    return [(m.key, m.label) for m in metric_table() if m.summarised]


class TuneError(ValueError):
    """A bad model field, value or flag: one line on stderr, exit 2."""


def add_tune_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `nfbench tune` (the model flags are added by the CLI, as for `run`)."""
    parser.add_argument("--model", required=True, help="one model name")
    parser.add_argument("--param", required=True, help="config field to tune, e.g. lr")
    parser.add_argument("--values", nargs="+", required=True, help="values to compare")
    parser.add_argument("--scenario", default="synthetic", help="e.g. synthetic, folder:2x1")
    parser.add_argument("--tasks", help='custom task split, e.g. "bottle,cable;capsule"')
    parser.add_argument("--data-root", type=Path, help="dataset root (not for synthetic)")
    parser.add_argument("--strategy", default=ONE_PHASE_STRATEGY,
                        help=f"a strategy ({', '.join(available_strategies())})")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--task-aware", action="store_true")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--backbone-layers", nargs="+")
    parser.add_argument("--backbone-weights", default="default")
    parser.add_argument("--input-size", type=int, default=128)
    parser.add_argument("--results", dest="results_dir", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="share of each class's training images held out (at least 2)")
    parser.add_argument("--val-seed", type=int, default=0, help="seed of the hold-out draw")
    parser.add_argument("--retry-failed", action="store_true", help="re-run failed cells")
    parser.add_argument("--no-cost", action="store_true",
                        help="accepted for symmetry with run: tune never measures cost")


def parse_value(field: dataclasses.Field, text: str) -> Any:
    """A value as the field's type (float, int, bool or str), or a one-line TuneError."""
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    try:
        if kind == "float":
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return value
        if kind == "int":
            return int(text)
        if kind == "bool":
            lowered = text.lower()
            if lowered not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(text)
            return lowered in ("1", "true", "yes", "on")
    except ValueError as err:
        raise TuneError(f"--values: '{text}' is not a valid {kind} for {field.name}") from err
    return text


def resolve_values(model: str, param: str, texts: list[str], base: dict) -> list[tuple[str, Any]]:
    """(label, value) per requested value; unknown field, bad or repeated value: TuneError."""
    config_class = get_model_class(model).config_class  # UnknownModelError for a bad name
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    if param not in fields:
        raise TuneError(f"model '{model}' has no option '{param}' (known: {', '.join(fields)})")
    if param in base:
        raise TuneError(f"--{model}.{param.replace('_', '-')} conflicts with --param {param}")
    out: list[tuple[str, Any]] = []
    for text in texts:
        value = parse_value(fields[param], text)
        if any(value == v for _, v in out):
            raise TuneError(f"--values: {text} is given twice")
        try:
            config_class(**{**base, param: value})  # the config's own checks
        except (TypeError, ValueError) as err:
            raise TuneError(f"--values: {param}={text} rejected by {model}: {err}") from err
        out.append((text, value))
    return out


def model_overrides(args: argparse.Namespace, model: str) -> dict:
    """The `--<model>.<field>` flags given; a flag for another model is a TuneError."""
    given, _ = overrides_from_args(args)
    stray = sorted(set(given) - {model})
    if stray:
        raise TuneError(f"flags given for model(s) not tuned: {', '.join(stray)}")
    return given.get(model, {})


def summarize_values(param: str, rows: list[dict]) -> pd.DataFrame:
    """One row per value: seeds, failures, and per metric the mean, 95% interval and per-seed
    figures, in points x100."""
    table = []
    for row in rows:
        ok = [r for r in row["records"] if r.ok]
        entry: dict[str, Any] = {param: row["label"], "seeds": len(ok),
                                 "failed": len(row["records"]) - len(ok)}
        for metric, title in tuned_metrics():
            per_seed = np.array([r.summary_value(metric, "acc") for r in ok]) * 100
            finite = per_seed[np.isfinite(per_seed)]
            lo, hi = seed_interval(finite)
            entry[f"{title} ACC"] = float(finite.mean()) if finite.size else float("nan")
            entry[f"{title} 95% CI"] = (f"[{lo:.1f}, {hi:.1f}]" if np.isfinite(lo)
                                        else "n/a (1 seed)" if finite.size == 1 else "n/a")
            entry[f"{title} per seed"] = " ".join(f"{v:.1f}" for v in per_seed)
            entry[f"_{metric}_seeds"] = finite.tolist()
        table.append(entry)
    return pd.DataFrame(table)


def verdict(param: str, table: pd.DataFrame, metric: str = "image_auroc") -> str:
    """Which value is best on a validation metric's ACC, and which values it does not beat
    significantly (Welch's t-test across seeds, as the report compares rows with seeds)."""
    title = dict(tuned_metrics())[metric]
    col, seeds = f"{title} ACC", f"_{metric}_seeds"
    scored = table[np.isfinite(table[col])]
    if scored.empty:
        return f"no value produced a validation {title} (every cell failed)"
    best = scored.loc[scored[col].idxmax()]
    text = f"best on validation {title} ACC: {param}={best[param]} ({best[col]:.1f})"
    if len(best[seeds]) < 2:
        return text + "; one seed, so no test: run more seeds before choosing"
    ties = [str(r[param]) for _, r in scored.iterrows()
            if r[param] != best[param] and not welch(best[seeds], r[seeds]).significant]
    if ties:
        return (text + f"; not significantly better than {param}=" + ", ".join(ties)
                + " (Welch p >= 0.05 across seeds)")
    return text + "; significantly better than every other value (Welch p < 0.05)"


def run_tune(args: argparse.Namespace, show_progress: bool = True) -> tuple[pd.DataFrame, str]:
    """Build the split, run every (value, seed) cell, and return the table and the verdict."""
    model, param = args.model, args.param
    base = model_overrides(args, model)
    values = resolve_values(model, param, args.values, base)
    strategy_class = get_strategy_class(args.strategy, get_model_class(model))
    reason = strategy_class.applies_to(get_model_class(model))  # fails before any data
    if reason:
        raise StrategyError(reason)
    _, strategy_flags = overrides_from_args(args)
    dataset = args.scenario.split(":", 1)[0].strip().lower()
    split = build_validation_split(dataset, args.data_root, args.cache_dir, args.scenario,
                                   args.tasks, SplitSpec(args.val_fraction, 2, args.val_seed))
    rows = []
    for label, value in values:
        request = RunRequest(
            models=[model], strategies=[args.strategy], seeds=list(args.seeds),
            scenario="folder", tasks=split.tasks_text, data_root=split.root, device=args.device,
            task_aware=args.task_aware,
            strategy_overrides={k: v for k, v in strategy_flags.items()
                                if k == strategy_class.name},
            backbone=args.backbone, backbone_layers=args.backbone_layers,
            backbone_weights=args.backbone_weights, input_size=args.input_size,
            results_dir=args.results_dir, cache_dir=args.cache_dir,
            model_overrides={model: {**base, param: value}}, measure_cost=False,
            retry_failed=args.retry_failed,
        )
        rows.append({"label": label, "records": run_grid(request, show_progress)})
    table = summarize_values(param, rows)
    return table, "\n".join(verdict(param, table, metric) for metric, _ in tuned_metrics())


def main_tune(args: argparse.Namespace) -> int:
    """Print the validation table and the verdict; write them as CSV and markdown."""
    table, text = run_tune(args)
    shown = table[[c for c in table.columns if not c.startswith("_")]].round(2)
    text_cells = shown.astype(str).replace("nan", "n/a")
    for col in (f"{title} ACC" for _, title in tuned_metrics()):  # one decimal; labels as typed
        text_cells[col] = [f"{v:.1f}" if np.isfinite(v) else "n/a" for v in shown[col]]
    markdown = text_cells.to_markdown(index=False, disable_numparse=True)
    print(markdown)
    print(text)
    out = Path(args.results_dir)
    scenario = args.scenario.replace(":", "_").replace("/", "_")
    stem = f"tune-{args.model}-{args.param}-{scenario}-{args.strategy}"
    note = (f"Validation split (training normals + synthetic defects), scenario "
            f"{args.scenario}, strategy {args.strategy}, seeds {' '.join(map(str, args.seeds))};"
            f" ACC in points x100.\n\n{markdown}\n\n{text}\n")
    atomic_write(out / f"{stem}.csv", lambda tmp: shown.to_csv(tmp, index=False))
    atomic_write(out / f"{stem}.md", lambda tmp: Path(tmp).write_text(note))
    print(f"wrote {out / f'{stem}.csv'}")
    return 0
