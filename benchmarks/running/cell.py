"""The unit every executor runs: one planned cell, in a process that opened its grid once.

`run_cell_task(request, cell)` is picklable and self-contained: it opens the grid's
environment once per process (dataset, backbone, feature cache), runs the cell with the default
callbacks (progress, thresholds, inference cost), writes its record atomically and returns it
as stored. So a record is the same whichever executor ran it, and a re-run skips whatever any
executor finished.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from nfbench.benchmarks.records.record import (
    CellRecord,
    ErrorInfo,
    cell_path,
    read_record,
    write_record,
)
from nfbench.benchmarks.running.callbacks import Callback, InferenceCost, Progress, Thresholds
from nfbench.benchmarks.running.context import CellEnv, CellSpec
from nfbench.benchmarks.running.protocol import run_cell
from nfbench.benchmarks.running.request import RunRequest
from nfbench.datasets.base import DatasetError
from nfbench.datasets.catalog import open_dataset
from nfbench.datasets.scenarios import build_scenario
from nfbench.datasets.validate import validate_dataset
from nfbench.models.backbone import Backbone
from nfbench.models.feature_cache import open_feature_cache


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


_ENVS: dict[str, CellEnv] = {}  # per process: the environment of each grid it serves
_COSTS: dict[str, InferenceCost] = {}  # per process and grid: cost measured once per variant


def request_key(request: RunRequest) -> str:
    return repr(dataclasses.astuple(request))


def grid_cost(request: RunRequest) -> InferenceCost:
    """The grid's inference-cost memo in this process (one per grid: a figure measured for
    another grid, e.g. on other data or settings, is never reused)."""
    return _COSTS.setdefault(request_key(request), InferenceCost())


def process_env(request: RunRequest, show_progress: bool = False) -> CellEnv:
    """The grid's environment in this process, opened once (the data were validated by the
    process that planned the grid)."""
    key = request_key(request)
    if key not in _ENVS:
        _ENVS[key] = open_env(request, show_progress, validate=False)
    return _ENVS[key]


def execute_cell(cell: PlannedCell, env: CellEnv, callbacks: Sequence[Callback]) -> CellRecord:
    """Run one cell; any error but bad input becomes a failed record."""
    try:
        return run_cell(cell.spec, env, cell.cell_id, callbacks)
    except DatasetError:
        raise
    except Exception as err:  # recorded, never a crash of the grid
        error = ErrorInfo(type(err).__name__, str(err), traceback=traceback.format_exc(limit=8))
        return CellRecord.failed(cell.cell_id, error, **identity(cell, env))


def identity(cell: PlannedCell, env: CellEnv) -> dict:
    """The record fields that name a planned cell."""
    return cell.spec.identity(env.scenario.name, cell.label)


def failed_record(request: RunRequest, cell: PlannedCell, env: CellEnv,
                  error: ErrorInfo) -> CellRecord:
    """A cell that could not finish (its worker or job died), written as its record."""
    path = cell_path(request.results_dir, cell.cell_id)
    write_record(path, CellRecord.failed(cell.cell_id, error, **identity(cell, env)))
    return read_record(path)


def run_cell_task(request: RunRequest, cell: PlannedCell, callbacks: Sequence[Callback] = (),
                  env: CellEnv | None = None, bar=None) -> CellRecord:
    """Run one planned cell, write its record, return it as stored (NaN -> null)."""
    env = env or process_env(request)
    progress = [Progress(bar)] if bar is not None else []
    cost = grid_cost(request)
    record = execute_cell(cell, env, [*progress, Thresholds(), cost, *callbacks])
    path = cell_path(request.results_dir, cell.cell_id)
    write_record(path, record)
    stored = read_record(path)
    cost.remember(stored)
    return stored
