"""The grid: models x strategies x seeds on one scenario, resumable cell by cell.

Every cell of a process shares one backbone and one feature cache. A finished cell (its record
exists) is skipped on a re-run; a cell that fails for any reason but bad input becomes a
recorded failure and the grid goes on. Bad input (missing files, unknown names) stops the grid
before anything runs.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from nfbench.benchmarks.records.record import (
    CellRecord,
    RecordError,
    cell_path,
    read_record,
    write_record,
)
from nfbench.benchmarks.records.results import cell_id
from nfbench.benchmarks.running.callbacks import Callback
from nfbench.benchmarks.running.cell import PlannedCell, grid_cost
from nfbench.benchmarks.running.context import CellEnv, CellSpec
from nfbench.benchmarks.running.executors import build_executor
from nfbench.benchmarks.running.request import BACKBONE_FIELDS, RunRequest
from nfbench.benchmarks.running.strategies import StrategyError, build_config, get_strategy_class
from nfbench.models.registry import build_config as build_model_config
from nfbench.models.registry import get_model_class


def variant_name(model: str, overrides: dict) -> str:
    """'mymodel' or 'mymodel[flow_steps=4]': a label that says what was changed."""
    given = {k: v for k, v in sorted(overrides.items()) if v is not None}
    if not given:
        return model
    return f"{model}[{','.join(f'{k}={v}' for k, v in given.items())}]"


def training_key(variant: str, label: str, seed: int, settings: dict,
                 classes: tuple[str, ...]) -> str:
    """What a single-phase (joint) cell's training depends on: its settings with the
    scenario's classes, in order, in place of its tasks (which only group the evaluation),
    and without task-awareness (test time only). Equal keys train the same model once."""
    shared = {k: v for k, v in settings.items() if k not in ("tasks", "task_aware")}
    return cell_id(variant, "trained", label, seed, shared | {"classes": list(classes)})


def check_names(request: RunRequest) -> None:
    """Bad model, strategy or flag names fail before any data is touched."""
    used: set[str] = set()
    for model in request.models:
        model_class = get_model_class(model)
        build_model_config(model, **request.model_overrides.get(model, {}))
        for name in request.strategies:
            strategy_class = get_strategy_class(name, model_class)
            used.add(strategy_class.name)
            given = request.strategy_overrides.get(strategy_class.name, {})
            build_config(strategy_class.name, **given)
            reason = strategy_class.applies_to(model_class)
            if reason and len(request.models) == 1:
                raise StrategyError(reason)
    stray = sorted(set(request.strategy_overrides) - used)
    if stray:
        raise StrategyError(f"flags given for strategies not in the run: {', '.join(stray)}")


def plan_cells(request: RunRequest, env: CellEnv) -> list[PlannedCell]:
    """Every requested cell in grid order, with its id (a digest of every setting that
    shapes its numbers) and, for a cell that will not run, the reason."""
    cells = []
    for model in request.models:
        model_class = get_model_class(model)
        overrides = request.model_overrides.get(model, {})
        config = build_model_config(model, **overrides)
        for name in request.strategies:
            strategy_class = get_strategy_class(name, model_class)
            skip = strategy_class.skip_reason(model_class)
            label = strategy_class.name if skip else strategy_class.label_for(model_class)
            strategy_overrides = request.strategy_overrides.get(strategy_class.name, {})
            settings = {
                "config": dataclasses.asdict(config), "backbone": env.cache.backbone.describe(),
                "tasks": env.scenario.tasks, "data": str(env.dataset.root),
                "task_aware": request.task_aware, "device": env.device.type,
                "autocast": request.autocast,
                "strategy": dataclasses.asdict(
                    build_config(strategy_class.name, **strategy_overrides)),
            }
            if request.calibration_split:  # split 0 is the old behaviour: the old cell ids
                settings["calibration_split"] = request.calibration_split
            for seed in request.seeds:
                spec = CellSpec(model, overrides, variant_name(model, overrides),
                                strategy_class.name, seed, strategy_overrides,
                                request.task_aware, request.measure_cost,
                                request.calibration_split)
                cell_settings = settings
                if strategy_class.single_phase and not skip:
                    spec.training_key = training_key(spec.variant, label, seed, settings,
                                                     env.scenario.classes)
                    cell_settings = settings | {"training_key": spec.training_key}
                cid = cell_id(spec.variant, env.scenario.name, label, seed, cell_settings)
                cells.append(PlannedCell(spec, cid, label, skip))
    return cells


def _stored(path: Path) -> CellRecord | None:
    try:
        return read_record(path) if path.exists() else None
    except RecordError:
        return None  # unreadable or of another schema: the cell runs again


def _skip(cell: PlannedCell, env: CellEnv, path: Path) -> CellRecord:
    """A skipped cell: one line on the console and a record, so the report lists it."""
    spec = cell.spec
    record = CellRecord.skipped(cell.cell_id, cell.skip_reason or "",
                                **spec.identity(env.scenario.name, cell.label))
    if _stored(path) is None:
        write_record(path, record)
        tqdm.write(f"skipped {spec.variant}/{cell.label}/s{spec.seed}: {cell.skip_reason}",
                   file=sys.stderr)
    return record


def _pending(request: RunRequest, env: CellEnv, cells: list[PlannedCell],
             resume: bool) -> tuple[dict[str, CellRecord], list[PlannedCell]]:
    """(records that need no run: skipped or finished, by cell id; the cells to run)."""
    done, todo = {}, []
    for cell in cells:
        path = cell_path(request.results_dir, cell.cell_id)
        if cell.skip_reason:
            done[cell.cell_id] = _skip(cell, env, path)
            continue
        existing = _stored(path) if resume else None
        if existing and (existing.ok or not request.retry_failed):
            grid_cost(request).remember(existing)
            done[cell.cell_id] = existing
        else:
            todo.append(cell)
    return done, todo


def run_grid(
    request: RunRequest,
    show_progress: bool = True,
    callbacks: Sequence[Callback] = (),
    resume: bool = True,
) -> list[CellRecord]:
    """Run (or resume) every cell of the request; returns the records of this grid, as stored,
    in grid order.

    `callbacks` (e.g. the diagnostics) see every cell in this process; with resume=False
    finished cells run again (a callback that needs the live model needs that)."""
    check_names(request)  # on the whole grid: `own` is a skipped cell in any multi-model grid
    build_executor(request).check(callbacks)
    # one sub-grid per scenario and backbone, each with one backbone and feature cache
    return [r for sub in backbone_groups(request)
            for r in _run_sub_grid(sub, show_progress, callbacks, resume)]


def _run_sub_grid(request: RunRequest, show_progress: bool, callbacks: Sequence[Callback],
                  resume: bool) -> list[CellRecord]:
    executor = build_executor(request)
    env = executor.environment(show_progress)
    cells = plan_cells(request, env)
    done, todo = _pending(request, env, cells, resume)
    if todo:
        done.update((r.cell_id, r) for r in executor.run(todo, env, callbacks, show_progress))
    return [done[cell.cell_id] for cell in cells]


def backbone_groups(request: RunRequest) -> list[RunRequest]:
    """The request split into sub-grids: one per scenario when `scenario` is a list (a grid
    file's `scenario = ["mvtec:15x1", "mvtec:14-1"]`), and within it one per distinct backbone
    setting (models that set their own backbone in `model_backbones`, e.g. paper presets),
    scenario and model order kept. Each sub-grid has one scenario and no `model_backbones`;
    its cells share a backbone and a feature cache."""
    if not isinstance(request.scenario, str):
        return [group for scenario in request.scenario
                for group in backbone_groups(dataclasses.replace(request, scenario=scenario))]
    groups: dict[tuple, list[str]] = {}
    for model in request.models:
        own = request.model_backbones.get(model, {})
        key = tuple((f, repr(own.get(f, getattr(request, f)))) for f in BACKBONE_FIELDS)
        groups.setdefault(key, []).append(model)
    if not request.model_backbones:
        return [request]
    return [dataclasses.replace(
        request, models=models, **request.model_backbones.get(models[0], {}),
        model_backbones={}) for models in groups.values()]
