"""`nfbench` command line: run, list, presets, report, paper, compare, check, diagnose, data.

Each model's and strategy's flags are generated from its config dataclass
(`--<model>.<field>`, e.g. `--replay.per-class 20`). Bad input (missing paths, unknown model,
class, strategy or flag) ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd

from nfbench.benchmarks.commands.compare import add_compare_arguments, main_compare
from nfbench.benchmarks.commands.data import add_data_arguments, main_data
from nfbench.benchmarks.commands.flags import (
    add_component_flags,
    executor_flags,
    executor_options_from_args,
    model_flags,
    overrides_from_args,
)
from nfbench.benchmarks.commands.grids import GridError, load_grid, presets
from nfbench.benchmarks.commands.paper import PaperError, add_paper_arguments, main_paper
from nfbench.benchmarks.commands.status import add_status_arguments, main_status
from nfbench.benchmarks.commands.tune import TuneError, add_tune_arguments, main_tune
from nfbench.benchmarks.running.calibration import check_fraction
from nfbench.benchmarks.running.cell import DeviceError
from nfbench.benchmarks.running.executors import ExecutorError, available_executors
from nfbench.benchmarks.running.runner import RunRequest, run_grid
from nfbench.benchmarks.running.strategies import (
    DEFAULT_STRATEGY,
    StrategyError,
    available_strategies,
    mechanism_strategy,
)
from nfbench.datasets.base import DatasetError
from nfbench.models.backbone import BackboneError, FeatureInfo
from nfbench.models.base import count_parameters
from nfbench.models.feature_cache import STORE_MODES, StoreError
from nfbench.models.registry import UnknownModelError, available_models, get_model_class

USER_ERRORS = (DatasetError, BackboneError, UnknownModelError, StrategyError, DeviceError,
               GridError, FileNotFoundError, TuneError, ExecutorError, PaperError, StoreError)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        fail(message)


def fail(message: str) -> NoReturn:
    print(f"nfbench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def calibration_fraction(text: str) -> float:
    """--calibration-split's value: a float in [0, 1)."""
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from err
    try:
        return check_fraction(value)
    except DatasetError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="a preset (`nfbench presets`) or a grid .toml file")
    parser.add_argument("--model", "--models", dest="models", nargs="+", help="model names")
    parser.add_argument("--strategy", "--strategies", dest="strategies", nargs="+",
                        help=f"{', '.join(available_strategies())} "
                             f"('{mechanism_strategy()}': each model's own mechanism)")
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument("--scenario", help="e.g. synthetic, mvtec:15x1, visa:8-4, folder:3x1")
    parser.add_argument("--tasks", help='custom task split, e.g. "bottle,cable;capsule"')
    parser.add_argument("--data-root", type=Path, help="dataset root (not for synthetic)")
    parser.add_argument("--device", help="cpu or cuda")
    parser.add_argument("--task-aware", action="store_true", default=None,
                        help="give the oracle class id at test time")
    parser.add_argument("--backbone", help="efficientnet_lite0 (default) or a timm name")
    parser.add_argument("--backbone-layers", nargs="+")
    parser.add_argument("--backbone-weights", help="'default', 'none' (random init) or FILE")
    parser.add_argument("--input-size", type=int)
    parser.add_argument("--results", dest="results_dir", type=Path)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--no-cost", dest="measure_cost", action="store_false", default=None,
                        help="skip the latency/memory measurement")
    parser.add_argument("--retry-failed", action="store_true", default=None)
    parser.add_argument("--workers", type=int, help="cells in N parallel processes (default 1)")
    parser.add_argument("--eval-batch-size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--autocast", choices=("none", "bf16"), help=argparse.SUPPRESS)
    parser.add_argument("--feature-store", choices=STORE_MODES, metavar="MODE",
                        help="where backbone features live: auto (default: disk if it fits, "
                        "else memory, else recompute), memory, disk (shared, memory-mapped), "
                        "recompute (per batch on the device)")
    parser.add_argument("--calibration-split", type=calibration_fraction, metavar="FRACTION",
                        help="fraction of each class's normal training images held out (never "
                             "trained on) to calibrate the automatic thresholds (default 0.1; "
                             "0: calibrate on the training images)")
    parser.add_argument(
        "--executor", choices=available_executors(), metavar="NAME",
        help="where cells run (default local; --workers N: N processes here); each executor's "
             "options are flags --<executor>.<field>, e.g. --slurm.partition gpu --slurm.mem 32 "
             "(`nfbench list slurm`)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when any cell failed (CI, make gpu-check)")
    parser.epilog = ("model and strategy flags (--<model>.<field>, --<strategy>.<field>): "
                     "see `nfbench list MODEL`")
    add_component_flags(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nfbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    add_run_arguments(sub.add_parser("run", help="run a grid of cells"))
    listing = sub.add_parser("list", help="models; with a name, that model's (or executor's) "
                             "flags")
    listing.add_argument("model", nargs="?")
    sub.add_parser("presets", help="the built-in grid files")
    report = sub.add_parser("report", help="leaderboard, CSVs and plots from stored results")
    report.add_argument("--results", dest="results_dir", type=Path, default=Path("results"))
    report.add_argument("--out", type=Path, default=Path("reports"))
    add_paper_arguments(sub.add_parser("paper", help="the experimental section as LaTeX "
                                       "(booktabs tables, setup.tex, vector figures, main.tex)"))
    add_compare_arguments(sub.add_parser("compare", help="native vs anomalib reference, "
                                         "side by side"))
    diagnose = sub.add_parser("diagnose", help="seed 001's pilot diagnostics (drift, freeze "
                              "ablation, entropy change, t-SNE)")
    add_run_arguments(diagnose)
    diagnose.add_argument("--out", type=Path, default=Path("reports/diagnostics"))
    add_data_arguments(sub.add_parser("data", help="per-class counts, masks, modes and sizes, "
                                      "and every unreadable file or bad mask (exit 2 if any)"))
    tune = sub.add_parser("tune", help="compare values of one model field on a validation "
                          "split of the training data (never the test set)")
    add_tune_arguments(tune)
    add_component_flags(tune)
    add_status_arguments(sub.add_parser("status", help="per cell: ok, failed (why), skipped, "
                                        "running/pending on Slurm"))
    plan = sub.add_parser("plan", help="the grid's cells and their estimated time, from a short "
                          "calibration on this device")
    add_run_arguments(plan)
    plan.add_argument("--calibration-steps", type=int, default=3)
    plan.add_argument("--steps-only", action="store_true",
                      help="counts, memory and disk without calibrating (seconds, no device)")
    plan.add_argument("--gpus", type=int, help="the wall-clock time on N GPUs")
    plan.add_argument("--per-cell", action="store_true", help="a row per cell as well")
    check = sub.add_parser("check", help="regression check against reports/baselines")
    check.add_argument("--baseline", type=Path, default=Path("reports/baselines/check.json"))
    check.add_argument("--update", action="store_true", help="rewrite the baseline")
    return parser


def request_from_args(args: argparse.Namespace, base: str | None = None) -> RunRequest:
    """The grid file's values (`--config`, else `base`), then explicit flags on top."""
    name = args.config or base
    values: dict[str, Any] = load_grid(name) if name else {}
    given = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(RunRequest)}
    values.update({k: v for k, v in given.items() if v is not None})
    if not values.get("models"):
        fail("no model given (use --model NAME or --config bench)")
    values.setdefault("strategies", [DEFAULT_STRATEGY])
    values.setdefault("seeds", [0])
    model_flags_given, strategy_flags_given = overrides_from_args(args)
    stray = sorted(set(model_flags_given) - set(values["models"]))
    if stray:
        fail(f"flags given for model(s) not in the run: {', '.join(stray)}")
    # a grid file's tables for models left out by --model are dropped, not an error
    grid_models = {k: v for k, v in values.get("model_overrides", {}).items()
                   if k in values["models"]}
    values["model_overrides"] = _merged(grid_models, model_flags_given)
    values["model_backbones"] = {k: v for k, v in values.get("model_backbones", {}).items()
                                 if k in values["models"]}
    values["executor_options"] = _merged(values.get("executor_options", {}),
                                         executor_options_from_args(args))
    values["strategy_overrides"] = _merged(values.get("strategy_overrides", {}),
                                           strategy_flags_given)
    return RunRequest(**values)


def _merged(base: dict[str, dict], given: dict[str, dict]) -> dict[str, dict]:
    merged = {k: dict(v) for k, v in base.items()}
    for owner, fields in given.items():
        merged.setdefault(owner, {}).update(fields)
    return merged


REFERENCE_INFO = FeatureInfo(channels=(24, 40, 112), strides=(4, 8, 16), input_size=256)


def models_table() -> pd.DataFrame:
    """One row per model: native ones first, then the reference entries."""
    rows = []
    for name in available_models():
        cls = get_model_class(name)
        try:
            params = count_parameters(cls(cls.config_class(), REFERENCE_INFO))[0]
            shown = f"{params / 1e6:.2f}M"
        except Exception as err:  # e.g. anomalib missing for a reference entry
            shown = f"n/a ({type(err).__name__})"
        rows.append({"model": name, "kind": cls.kind, "paper": cls.paper, "params": shown,
                     "class-conditional": "yes" if cls.class_conditional else "",
                     "own strategy": cls.own_strategy or ""})
    table = pd.DataFrame(rows)
    return table.sort_values("kind", kind="stable", key=lambda s: s != "native")


def list_command(args: argparse.Namespace) -> int:
    if args.model is None:
        print(models_table().to_markdown(index=False))
        print("\nparams: EfficientNet-Lite0 taps at 256 px. `nfbench list MODEL` for its flags.")
        return 0
    if args.model in available_executors() and args.model not in available_models():
        print(f"executor {args.model}:")
        flags = executor_flags(args.model)
    else:
        cls = get_model_class(args.model)
        print(f"{args.model} ({cls.kind}): {cls.paper}")
        flags = model_flags(args.model)
    rows = [{"flag": f.name, "default": f.default, "help (source)": f.help} for f in flags]
    print(pd.DataFrame(rows).to_markdown(index=False))
    return 0


def presets_command(args: argparse.Namespace) -> int:
    rows = [{"preset": k, "what": v} for k, v in presets().items()]
    print(pd.DataFrame(rows).to_markdown(index=False))
    return 0


def run_command(args: argparse.Namespace) -> int:
    request = request_from_args(args)
    records = run_grid(request)
    counts = {s: sum(r.status == s for r in records) for s in ("failed", "skipped")}
    print(f"{len(records)} cells, {counts['failed']} failed, {counts['skipped']} skipped; "
          f"results in {request.results_dir}/cells")
    return 1 if args.strict and counts["failed"] else 0


def report_command(args: argparse.Namespace) -> int:
    from nfbench.benchmarks.report import write_report

    print(f"wrote {write_report(args.results_dir, args.out)}")
    return 0


def diagnose_command(args: argparse.Namespace) -> int:
    from nfbench.benchmarks.commands.diagnose import run_diagnostics

    for path in run_diagnostics(request_from_args(args, base="diagnose"), args.out):
        print(f"wrote {path}")
    return 0


def plan_command(args: argparse.Namespace) -> int:
    from nfbench.benchmarks.commands.plan import main_plan

    return main_plan(args, request_from_args(args))


def check_command(args: argparse.Namespace) -> int:
    from nfbench.benchmarks.commands.check import run_check

    return run_check(args.baseline, update=args.update)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": run_command, "list": list_command, "presets": presets_command,
    "report": report_command, "compare": main_compare, "data": main_data,
    "diagnose": diagnose_command, "check": check_command, "tune": main_tune,
    "plan": plan_command,
    "status": main_status, "paper": main_paper,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as err:
        fail(str(err))
    except KeyboardInterrupt:
        print("nfbench: interrupted; finished cells are kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
