"""The grid: models x strategies x seeds on one scenario, resumable cell by cell.

Every cell of a process shares one backbone and one feature cache. A finished cell (its record
exists) is skipped on a re-run; a cell that fails for any reason but bad input becomes a
recorded failure and the grid goes on. Bad input (missing files, unknown names) stops the grid
before anything runs.
"""

from __future__ import annotations

import dataclasses
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from nfbench.benchmarks.records.record import (
    CellRecord,
    ErrorInfo,
    RecordError,
    cell_path,
    read_record,
    write_record,
)
from nfbench.benchmarks.records.results import cell_id
from nfbench.benchmarks.running.callbacks import Callback, CellEnv
from nfbench.benchmarks.running.executors import remember_cost, run_local, run_workers
from nfbench.benchmarks.running.protocol import CellSpec, run_cell
from nfbench.benchmarks.running.slurm_executor import check_executor, planning_env, run_slurm
from nfbench.benchmarks.running.strategies import StrategyError, build_config, get_strategy_class
from nfbench.datasets.base import DatasetError
from nfbench.datasets.catalog import open_dataset
from nfbench.datasets.scenarios import build_scenario
from nfbench.datasets.validate import validate_dataset
from nfbench.models.backbone import Backbone
from nfbench.models.feature_cache import open_feature_cache
from nfbench.models.registry import build_config as build_model_config
from nfbench.models.registry import get_model_class


@dataclass
class RunRequest:
    """What `nfbench run` was asked to do, after grid files and flags are merged."""

    models: list[str]
    strategies: list[str]
    seeds: list[int]
    scenario: str | list[str] = "synthetic"  # a list (grid files): one sub-grid per scenario
    tasks: str | None = None
    data_root: Path | None = None
    device: str = "cpu"
    task_aware: bool = False
    backbone: str = "efficientnet_lite0"
    backbone_layers: list[str] | None = None
    backbone_weights: str = "default"
    input_size: int = 128
    results_dir: Path = Path("results")
    cache_dir: Path = Path(".cache/nfbench")
    model_overrides: dict[str, dict] = field(default_factory=dict)
    strategy_overrides: dict[str, dict] = field(default_factory=dict)
    # a model's own backbone settings (backbone, backbone_layers, backbone_weights, input_size)
    model_backbones: dict[str, dict] = field(default_factory=dict)
    measure_cost: bool = True
    retry_failed: bool = False
    workers: int = 1  # cells in parallel processes (several per GPU allowed)
    eval_batch_size: int = 32  # images per scoring call; scores never depend on it
    feature_store: str = "auto"  # auto|memory|disk|recompute (models/feature_cache.py)
    autocast: str = "none"  # "bf16": score under bfloat16 autocast (GPU speed; opt-in)
    executor: str = "local"  # local (this machine) or slurm (a job array; slurm_executor.py)
    slurm_partition: str | None = None
    slurm_gpus: int | None = None  # GPUs per task (None: 1 with a cuda device, else 0)
    slurm_cpus: int | None = None  # CPUs per task (None: the cluster's default)
    slurm_mem: float | None = None  # GB per task
    slurm_time: int = 240  # minutes per task
    slurm_parallelism: int | None = None  # array tasks at once (None: submitit's 256)
    slurm_extra: list[str] = field(default_factory=list)  # more sbatch options, "KEY=VALUE"


@dataclass(frozen=True)
class PlannedCell:
    spec: CellSpec
    cell_id: str
    label: str  # the strategy as records name it (a model's own mechanism by its own label)
    skip_reason: str | None = None


class DeviceError(ValueError):
    """A device that is not available here: a one-line user error."""


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)


def variant_name(model: str, overrides: dict) -> str:
    """'mymodel' or 'mymodel[flow_steps=4]': a label that says what was changed."""
    given = {k: v for k, v in sorted(overrides.items()) if v is not None}
    if not given:
        return model
    return f"{model}[{','.join(f'{k}={v}' for k, v in given.items())}]"


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


def open_env(request: RunRequest, show_progress: bool = True, validate: bool = True) -> CellEnv:
    """Dataset (every file validated), scenario, backbone and feature cache of the request."""
    device = resolve_device(request.device)
    dataset_name = request.scenario.split(":", 1)[0]
    dataset = open_dataset(dataset_name, request.data_root, request.cache_dir)
    scenario = build_scenario(request.scenario, dataset.class_names, request.tasks)
    # every file decodes and every mask fits (plus the emptiness checks), before the backbone
    if validate:
        validate_dataset(dataset, scenario.classes, request.cache_dir)
    backbone = Backbone(request.backbone, request.backbone_layers, request.backbone_weights,
                        request.input_size)
    images = sum(len(dataset[c].train) + len(dataset[c].test) for c in scenario.classes)
    cache = open_feature_cache(backbone, request.cache_dir / "features", device,
                               request.feature_store, images, max(1, request.workers))
    cache.show_progress = show_progress
    return CellEnv(dataset, scenario, cache, Path(request.results_dir), device, show_progress,
                   concurrent_cells=max(1, request.workers),
                   eval_batch_size=request.eval_batch_size, autocast=request.autocast)


def own_skip_reason(model: str) -> str | None:
    """In a multi-model grid, 'own' means a mechanism of its own where it differs from
    finetune; other models get a skipped cell that says why (never a silent gap)."""
    model_class = get_model_class(model)
    if model_class.own_strategy is None:
        return f"{model} has no continual mechanism of its own"
    if model_class.own_strategy_is_finetune:
        return (f"{model}'s own mechanism ({model_class.own_strategy}) acts under every "
                "strategy, so its cell would repeat finetune exactly")
    return None


def cell_skip_reason(model: str, strategy: str) -> str | None:
    """Why the runner skips a (model, registered strategy) cell, or None when it runs: the
    one rule, shared with `nfbench plan` so it counts only the cells that run."""
    return own_skip_reason(model) if strategy == "own" else None


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
            skip = cell_skip_reason(model, strategy_class.name)
            label = "own" if skip else (model_class.own_strategy if strategy_class.name == "own"
                                        else strategy_class.name)
            strategy_overrides = request.strategy_overrides.get(strategy_class.name, {})
            settings = {
                "config": dataclasses.asdict(config), "backbone": env.cache.backbone.describe(),
                "tasks": env.scenario.tasks, "data": str(env.dataset.root),
                "task_aware": request.task_aware, "device": env.device.type,
                "autocast": request.autocast,
                "strategy": dataclasses.asdict(
                    build_config(strategy_class.name, **strategy_overrides)),
            }
            for seed in request.seeds:
                spec = CellSpec(model, overrides, variant_name(model, overrides),
                                strategy_class.name, seed, strategy_overrides,
                                request.task_aware, request.measure_cost)
                cid = cell_id(spec.variant, env.scenario.name, label, seed, settings)
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
        tqdm.write(f"skipped {spec.variant}/own/s{spec.seed}: {cell.skip_reason}", file=sys.stderr)
    return record


def execute_cell(cell: PlannedCell, env: CellEnv, callbacks: Sequence[Callback]) -> CellRecord:
    """Run one cell; any error but bad input becomes a failed record."""
    try:
        return run_cell(cell.spec, env, cell.cell_id, callbacks)
    except DatasetError:
        raise
    except Exception as err:  # recorded, never a crash of the grid
        error = ErrorInfo(type(err).__name__, str(err), traceback=traceback.format_exc(limit=8))
        identity = cell.spec.identity(env.scenario.name, cell.label)
        return CellRecord.failed(cell.cell_id, error, **identity)


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
            remember_cost(request, existing)
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
    if callbacks and request.workers > 1:
        raise ValueError("callbacks need the cells in this process: use workers=1")
    check_executor(request, callbacks)
    # one sub-grid per scenario and backbone, each with one backbone and feature cache
    return [r for sub in backbone_groups(request)
            for r in _run_sub_grid(sub, show_progress, callbacks, resume)]


def _run_sub_grid(request: RunRequest, show_progress: bool, callbacks: Sequence[Callback],
                  resume: bool) -> list[CellRecord]:
    slurm = request.executor == "slurm"
    env = planning_env(request, show_progress) if slurm else open_env(request, show_progress)
    cells = plan_cells(request, env)
    done, todo = _pending(request, env, cells, resume)
    if slurm and todo:
        ran = run_slurm(request, todo, env, show_progress)
    elif request.workers > 1 and todo:
        warm_cache(env, todo)  # workers then only read the cache
        ran = run_workers(request, todo, env, request.workers, show_progress)
    else:
        ran = run_local(request, todo, env, callbacks, show_progress)
    done.update((r.cell_id, r) for r in ran)
    return [done[cell.cell_id] for cell in cells]


BACKBONE_FIELDS = ("backbone", "backbone_layers", "backbone_weights", "input_size")


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


def warm_cache(env: CellEnv, cells: list[PlannedCell]) -> None:
    """Compute every feature the grid needs once, here, before processes share the cache."""
    samples = [s for name in env.scenario.classes
               for s in (*env.dataset[name].train, *env.dataset[name].test)]
    env.cache.features(samples, desc="features")
