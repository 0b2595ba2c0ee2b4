"""CLI flags generated from config dataclasses: `--<model>.<field>`, `--<strategy>.<field>` and
`--<executor>.<field>` (also spelled `--<executor>-<field>`, e.g. `--slurm-mem`).

Every field of a model's or a strategy's config is a flag, typed from the field and
documented by its `help` metadata; a `choices` metadata entry limits its values (a wrong one
is a one-line usage error). They are accepted by `run`, `diagnose` and `tune` but kept
out of `--help` (there are over a hundred); `nfbench list MODEL` shows a model's.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from nfbench.benchmarks.running.executors import EXECUTORS, available_executors
from nfbench.benchmarks.running.strategies import available_strategies, get_strategy_class
from nfbench.models.registry import available_models, get_model_class


@dataclasses.dataclass(frozen=True)
class Flag:
    owner: str  # model or strategy name
    field: dataclasses.Field

    @property
    def name(self) -> str:
        return f"--{self.owner}.{self.field.name.replace('_', '-')}"

    @property
    def dest(self) -> str:
        return f"{self.owner}__{self.field.name}"

    @property
    def help(self) -> str:
        return self.field.metadata.get("help", "")

    @property
    def default(self) -> Any:
        return self.field.default


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got '{text}'")


def _flag_type(field: dataclasses.Field) -> Any:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    kind = kind.removesuffix(" | None")  # an optional field: None means "not given"
    return {"bool": parse_bool, "int": int, "float": float}.get(kind, str)


def model_flags(model: str) -> list[Flag]:
    return [Flag(model, f) for f in dataclasses.fields(get_model_class(model).config_class)]


def strategy_flags(strategy: str) -> list[Flag]:
    return [Flag(strategy, f)
            for f in dataclasses.fields(get_strategy_class(strategy).config_class)]


def executor_flags(executor: str) -> list[Flag]:
    return [Flag(executor, f) for f in dataclasses.fields(EXECUTORS.get(executor).config_class)]


def add_component_flags(parser: argparse.ArgumentParser) -> None:
    """Every model's, strategy's and executor's flags, hidden from --help."""
    flags = [f for m in available_models() for f in model_flags(m)]
    flags += [f for s in available_strategies() for f in strategy_flags(s)]
    for flag in flags:
        parser.add_argument(flag.name, dest=flag.dest, type=_flag_type(flag.field),
                            choices=flag.field.metadata.get("choices"), default=None,
                            help=argparse.SUPPRESS)
    for flag in (f for e in available_executors() for f in executor_flags(e)):
        dashed = flag.name.replace(".", "-", 1)  # --slurm-mem, as the flags were first spelled
        parser.add_argument(flag.name, dashed, dest=flag.dest, type=_flag_type(flag.field),
                            nargs=flag.field.metadata.get("nargs"), default=None,
                            help=argparse.SUPPRESS)


def _given(args: argparse.Namespace, owners: set[str]) -> dict[str, dict]:
    """{owner: {field: value}} of the component flags given on the command line."""
    given: dict[str, dict] = {}
    for key, value in vars(args).items():
        owner, sep, field = key.partition("__")
        if sep and value is not None and owner in owners:
            given.setdefault(owner, {})[field] = value
    return given


def overrides_from_args(args: argparse.Namespace) -> tuple[dict[str, dict], dict[str, dict]]:
    """(model overrides, strategy overrides) of the flags given on the command line."""
    return (_given(args, set(available_models())), _given(args, set(available_strategies())))


def executor_options_from_args(args: argparse.Namespace) -> dict[str, dict]:
    """{executor: {field: value}} of the executor flags given on the command line."""
    return _given(args, set(available_executors()))
