"""`nfbench` command line: run, list, report, check.

Each model's flags are generated from its config dataclass (`--fastflow.flow-steps 4`). Bad
input (missing paths, unknown model, class or flag) ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, NoReturn

from nfbench.benchmarks.compare import add_compare_arguments, main_compare
from nfbench.benchmarks.data_command import add_data_arguments, main_data
from nfbench.benchmarks.presets import PRESETS
from nfbench.benchmarks.runner import DeviceError, RunRequest, run_grid
from nfbench.benchmarks.strategies import StrategyError
from nfbench.benchmarks.tune_command import TuneError, add_tune_arguments, main_tune
from nfbench.datasets.base import DatasetError
from nfbench.models.backbone import BackboneError
from nfbench.models.registry import UnknownModelError, available_models, get_model_class

USER_ERRORS = (DatasetError, BackboneError, UnknownModelError, StrategyError, DeviceError,
               FileNotFoundError, TuneError)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (no usage block) and exits 2."""

    def error(self, message: str) -> NoReturn:
        fail(message)


def fail(message: str) -> NoReturn:
    print(f"nfbench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got '{text}'")


def _flag_type(field: dataclasses.Field) -> Any:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    return {"bool": parse_bool, "int": int, "float": float}.get(kind, str)


def model_flags(model: str) -> list[tuple[str, str, dataclasses.Field]]:
    """(flag, dest, field) for every config field of a model."""
    config_class = get_model_class(model).config_class
    return [(f"--{model}.{f.name.replace('_', '-')}", f"{model}__{f.name}", f)
            for f in dataclasses.fields(config_class)]


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    for model in available_models():
        group = parser.add_argument_group(f"{model} options")
        for flag, dest, field in model_flags(model):
            help_text = f"{field.metadata.get('help', '')} (default: {field.default})"
            group.add_argument(flag, dest=dest, type=_flag_type(field), default=None,
                               help=help_text, metavar=field.name.upper())


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", choices=sorted(PRESETS), help="a named preset grid")
    parser.add_argument("--model", "--models", dest="models", nargs="+", help="model names")
    parser.add_argument("--strategy", "--strategies", dest="strategies", nargs="+",
                        help="finetune, replay, joint, or own (the model's mechanism)")
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument("--scenario", help="e.g. synthetic, mvtec:15x1, visa:8-4, folder:3x1")
    parser.add_argument("--tasks", help='custom task split, e.g. "bottle,cable;capsule"')
    parser.add_argument("--data-root", type=Path, help="dataset root (not for synthetic)")
    parser.add_argument("--device", help="cpu or cuda")
    parser.add_argument("--task-aware", action="store_true", default=None,
                        help="give the oracle class id at test time")
    parser.add_argument("--replay-per-class", type=int)
    parser.add_argument("--backbone")
    parser.add_argument("--backbone-layers", nargs="+")
    parser.add_argument("--backbone-weights", help="'default', 'none' (random init) or FILE")
    parser.add_argument("--input-size", type=int)
    parser.add_argument("--results", dest="results_dir", type=Path)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--no-cost", dest="measure_cost", action="store_false", default=None,
                        help="skip the latency/memory measurement")
    parser.add_argument("--retry-failed", action="store_true", default=None)
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when any cell failed (CI, make gpu-check)")
    add_model_flags(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nfbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    add_run_arguments(sub.add_parser("run", help="run a grid of cells"))
    sub.add_parser("list", help="models with their flags and defaults")
    report = sub.add_parser("report", help="leaderboard, CSVs and plots from stored results")
    report.add_argument("--results", dest="results_dir", type=Path, default=Path("results"))
    report.add_argument("--out", type=Path, default=Path("reports"))
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
    add_model_flags(tune)
    check = sub.add_parser("check", help="regression check against reports/baselines")
    check.add_argument("--baseline", type=Path, default=Path("reports/baselines/check.json"))
    check.add_argument("--update", action="store_true", help="rewrite the baseline")
    return parser


def request_from_args(args: argparse.Namespace) -> RunRequest:
    """Preset values, then explicit flags on top; model flags grouped per model."""
    values: dict[str, Any] = dict(PRESETS[args.config]) if args.config else {}
    if args.command == "diagnose":
        values = {**PRESETS["diagnose"], **values}
    for name in (f.name for f in dataclasses.fields(RunRequest)):
        given = getattr(args, name, None)
        if given is not None and name != "model_overrides":
            values[name] = given
    if not values.get("models"):
        fail("no model given (use --model NAME or --config bench)")
    values.setdefault("strategies", ["finetune"])
    values.setdefault("seeds", [0])
    overrides: dict[str, dict] = {m: dict(o) for m, o in values.pop("model_overrides", {}).items()}
    for key, value in vars(args).items():
        if "__" in key and value is not None:
            model, field = key.split("__", 1)
            overrides.setdefault(model, {})[field] = value
    stray = sorted(set(overrides) - set(values["models"]))
    if stray:
        fail(f"flags given for model(s) not in the run: {', '.join(stray)}")
    return RunRequest(model_overrides=overrides, **values)


def list_models() -> None:
    for model in available_models():
        cls = get_model_class(model)
        extras = []
        if cls.class_conditional:
            extras.append("class-conditional")
        if cls.own_strategy:
            extras.append(f"own strategy: {cls.own_strategy}")
        print(f"{model}" + (f"  ({', '.join(extras)})" if extras else ""))
        for flag, _, field in model_flags(model):
            print(f"    {flag:<34} {field.default!s:<10} {field.metadata.get('help', '')}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            list_models()
        elif args.command == "run":
            request = request_from_args(args)
            records = run_grid(request)
            counts = {s: sum(r["status"] == s for r in records) for s in ("failed", "skipped")}
            print(f"{len(records)} cells, {counts['failed']} failed, {counts['skipped']} skipped;"
                  f" results in {request.results_dir}/cells")
            if args.strict and counts["failed"]:
                return 1
        elif args.command == "report":
            from nfbench.benchmarks.report import write_report

            print(f"wrote {write_report(args.results_dir, args.out)}")
        elif args.command == "compare":
            return main_compare(args)
        elif args.command == "data":
            return main_data(args)
        elif args.command == "tune":
            return main_tune(args)
        elif args.command == "diagnose":
            from nfbench.benchmarks.diagnostics import run_diagnostics

            for path in run_diagnostics(request_from_args(args), args.out):
                print(f"wrote {path}")
        elif args.command == "check":
            from nfbench.benchmarks.check import run_check

            return run_check(args.baseline, update=args.update)
    except USER_ERRORS as err:
        fail(str(err))
    except KeyboardInterrupt:
        print("nfbench: interrupted; finished cells are kept, re-run to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
