"""Grids as files: `nfbench run --config NAME|FILE.toml`.

A grid file's top-level keys are the CLI's flags without the dashes (`input-size = 128`,
`results = "results"`); a table named after a model holds that model's flags
(`[mymodel] flow-steps = 4` is `--mymodel.flow-steps 4`), a table named after a strategy its
flags (`[replay] per-class = 10`). A model table may also give the model a backbone of its
own (`backbone`, `backbone-layers`, `backbone-weights`, `input-size`): such a grid runs as one
sub-grid per backbone. `scenario` may be a list (`scenario = ["mvtec:15x1", "mvtec:14-1"]`):
the grid runs once per scenario, in that order (`--scenario` on the command line replaces
the list). The built-in presets are such files, shipped in
benchmarks/presets/ and listed by `nfbench presets`; flags on the command line override them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PRESET_DIR = Path(__file__).parents[1] / "presets"
# flags whose name is not the RunRequest field's
FLAG_ALIASES = {"model": "models", "strategy": "strategies", "results": "results_dir"}


class GridError(ValueError):
    """A grid file that cannot be read, or a key it should not have: a one-line user error."""


def presets() -> dict[str, str]:
    """Built-in preset names and the first line of their description."""
    out = {}
    for path in sorted(PRESET_DIR.glob("*.toml")):
        first = path.read_text().splitlines()[0] if path.stat().st_size else ""
        out[path.stem] = first.lstrip("# ").strip()
    return out


def grid_path(name: str) -> Path:
    """A preset's file, or a path to the user's own grid file."""
    path = Path(name).expanduser()
    if path.suffix == ".toml":
        if not path.is_file():
            raise GridError(f"grid file not found: {path}")
        return path
    preset = PRESET_DIR / f"{name}.toml"
    if not preset.is_file():
        raise GridError(f"unknown preset '{name}' (known: {', '.join(presets())}; "
                        "or give a .toml file)")
    return preset


def _field(key: str) -> str:
    return FLAG_ALIASES.get(key, key.replace("-", "_"))


def _executor_key(item: tuple[str, Any]) -> tuple[str, Any]:
    """`slurm-mem = 32` read as `[slurm] mem = 32` (the flags' first spelling)."""
    from nfbench.benchmarks.running.executors import available_executors

    key, value = item
    owner, dash, field = key.partition("-")
    if dash and owner in available_executors() and not isinstance(value, dict):
        return owner, {field: value}
    return key, value


def load_grid(name: str) -> dict[str, Any]:
    """The RunRequest keyword arguments a grid file sets (model and strategy tables become
    model_overrides and strategy_overrides)."""
    from nfbench.benchmarks.running.executors import available_executors
    from nfbench.benchmarks.running.request import BACKBONE_FIELDS, RunRequest
    from nfbench.benchmarks.running.strategies import available_strategies
    from nfbench.models.registry import available_models

    path = grid_path(name)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise GridError(f"{path}: {err}") from err
    fields = {f.name: f for f in dataclasses.fields(RunRequest)}
    values: dict[str, Any] = {"model_overrides": {}, "strategy_overrides": {},
                              "model_backbones": {}, "executor_options": {}}
    executors = available_executors()
    for key, value in map(_executor_key, data.items()):
        if isinstance(value, dict):
            target = ("model_overrides" if key in available_models() else
                      "strategy_overrides" if key in available_strategies() else
                      "executor_options" if key in executors else None)
            if target is None:
                raise GridError(f"{path}: [{key}] is neither a model, a strategy nor an "
                                "executor")
            table = {_field(k): v for k, v in value.items()}
            if target == "model_overrides":  # a model's own backbone settings go apart
                own = {f: table.pop(f) for f in BACKBONE_FIELDS if f in table}
                if own:
                    values["model_backbones"][key] = own
            values[target].setdefault(key, {}).update(table)
        elif key == "scenario" and not isinstance(value, str):
            if not (isinstance(value, list) and value
                    and all(isinstance(v, str) and v for v in value)):
                raise GridError(f"{path}: scenario must be a name or a non-empty list of names")
            values["scenario"] = list(value)
        elif _field(key) in fields:
            values[_field(key)] = Path(value) if _field(key).endswith("_dir") else value
        else:
            raise GridError(f"{path}: unknown key '{key}'")
    return values
