"""The grid: models x strategies x seeds on one scenario, resumable cell by cell.

Every cell shares one backbone and one feature cache. A finished cell (its JSON exists) is
skipped on a re-run; a cell that fails for any reason but bad input becomes a recorded failure
and the grid goes on.
"""

from __future__ import annotations

import dataclasses
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from nfbench.benchmarks.cost import INFERENCE_COST_KEYS
from nfbench.benchmarks.protocol import CellSpec, PhaseObserver, run_cell
from nfbench.benchmarks.results import (
    SCHEMA_VERSION,
    cell_id,
    cell_path,
    read_record,
    write_json_atomic,
)
from nfbench.benchmarks.strategies import resolve_strategy
from nfbench.datasets.base import Dataset, DatasetError
from nfbench.datasets.catalog import open_dataset
from nfbench.datasets.scenarios import Scenario, build_scenario
from nfbench.datasets.validate import validate_dataset
from nfbench.models.backbone import Backbone
from nfbench.models.feature_cache import FeatureCache
from nfbench.models.registry import build_config, get_model_class


@dataclass
class RunRequest:
    """What `nfbench run` was asked to do, after presets and flags are merged."""

    models: list[str]
    strategies: list[str]
    seeds: list[int]
    scenario: str = "synthetic"
    tasks: str | None = None
    data_root: Path | None = None
    device: str = "cpu"
    task_aware: bool = False
    replay_per_class: int = 10
    backbone: str = "efficientnet_lite0"
    backbone_layers: list[str] | None = None
    backbone_weights: str = "default"
    input_size: int = 128
    results_dir: Path = Path("results")
    cache_dir: Path = Path(".cache/nfbench")
    model_overrides: dict[str, dict] = field(default_factory=dict)
    measure_cost: bool = True
    retry_failed: bool = False


def variant_name(model: str, overrides: dict) -> str:
    """'fastflow' or 'fastflow[flow_steps=4]': a label that says what was changed."""
    given = {k: v for k, v in sorted(overrides.items()) if v is not None}
    if not given:
        return model
    return f"{model}[{','.join(f'{k}={v}' for k, v in given.items())}]"


def _remember_cost(measured: dict[str, dict], record: dict) -> None:
    """Inference cost depends on the model and its settings, not on the strategy or seed
    (after the last task every strategy scores the same classes), so one measurement per
    variant serves its other cells; they name the cell it came from."""
    cost = record.get("cost") or {}
    if record["status"] == "ok" and "latency_ms_p50" in cost and record["variant"] not in measured:
        measured[record["variant"]] = {
            **{k: cost[k] for k in INFERENCE_COST_KEYS if k in cost},
            "cost_measured_in": cost.get("cost_measured_in", record["cell_id"]),
        }


def plan_cells(
    request: RunRequest, scenario: Scenario, backbone: Backbone, dataset: Dataset,
    device: torch.device,
) -> list[tuple[CellSpec, str, str | None]]:
    """(spec, cell id, skip reason or None) for every requested cell, in grid order.

    In a multi-model grid 'own' means a mechanism of its own where it differs from finetune;
    a model without one gets a skipped cell that says why (never a silent gap)."""
    cells = []
    for model in request.models:
        model_class = get_model_class(model)
        overrides = request.model_overrides.get(model, {})
        config = build_config(model, **overrides)  # validates the overrides early
        for strategy_name in request.strategies:
            skip = None
            if strategy_name == "own" and len(request.models) > 1:
                skip = own_strategy_skip_reason(model, model_class)
            strategy = "own" if skip else resolve_strategy(
                strategy_name, model_class.own_strategy, model)
            for seed in request.seeds:
                spec = CellSpec(model, overrides, variant_name(model, overrides), strategy, seed,
                                request.task_aware, request.replay_per_class,
                                request.measure_cost)
                settings = {
                    "config": vars(config), "backbone": backbone.describe(),
                    "tasks": scenario.tasks, "data": str(dataset.root),
                    "task_aware": request.task_aware, "replay": request.replay_per_class,
                    "device": device.type,
                }
                cid = cell_id(spec.variant, scenario.name, strategy, seed, settings)
                cells.append((spec, cid, skip))
    return cells


def own_strategy_skip_reason(model: str, model_class: type) -> str | None:
    if model_class.own_strategy is None:
        return f"{model} has no continual mechanism of its own"
    if model_class.own_strategy_is_finetune:
        return (f"{model}'s own mechanism ({model_class.own_strategy}) acts under every "
                "strategy, so its cell would repeat finetune exactly")
    return None


def _skip(spec: CellSpec, scenario: str, cid: str, reason: str, path: Path,
          show_progress: bool) -> dict:
    """A skipped cell: one line on the console and a record, so the report lists it."""
    record = {
        "schema_version": SCHEMA_VERSION, "status": "skipped", "skip_reason": reason,
        "model": spec.model, "variant": spec.variant, "scenario": scenario,
        "strategy": spec.strategy, "seed": spec.seed, "task_aware": spec.task_aware,
        "cell_id": cid,
    }
    if read_record(path) is None:
        write_json_atomic(path, record)
        message = f"skipped {spec.variant}/{spec.strategy}/s{spec.seed}: {reason}"
        tqdm.write(message, file=sys.stderr)
    return record


class DeviceError(ValueError):
    """A device that is not available here: a one-line user error."""


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)


def run_grid(
    request: RunRequest,
    show_progress: bool = True,
    observer: PhaseObserver | None = None,
    resume: bool = True,
) -> list[dict]:
    """Run (or resume) every cell of the request; returns the records of this grid.

    `observer` (the diagnostics) sees each phase of every cell; with resume=False finished
    cells run again (an observer needs the live model)."""
    for model in request.models:  # bad names and flags fail before any data is touched
        model_class = get_model_class(model)
        build_config(model, **request.model_overrides.get(model, {}))
        for strategy_name in request.strategies:
            if strategy_name != "own" or len(request.models) == 1:
                resolve_strategy(strategy_name, model_class.own_strategy, model)
    device = resolve_device(request.device)
    dataset_name = request.scenario.split(":", 1)[0]
    dataset = open_dataset(dataset_name, request.data_root, request.cache_dir)
    scenario = build_scenario(request.scenario, dataset.class_names, request.tasks)
    # every file decodes and every mask fits (plus the emptiness checks), before the backbone
    validate_dataset(dataset, scenario.classes, request.cache_dir)
    backbone = Backbone(request.backbone, request.backbone_layers, request.backbone_weights,
                        request.input_size)
    cache = FeatureCache(backbone, request.cache_dir / "features", device)
    cache.show_progress = show_progress

    cells = plan_cells(request, scenario, backbone, dataset, device)
    records = []
    measured: dict[str, dict] = {}  # variant -> its inference cost, measured once
    bar = tqdm(cells, desc="cells", disable=not show_progress)
    for spec, cid, skip_reason in bar:
        bar.set_postfix_str(f"{spec.variant}/{spec.strategy}/s{spec.seed}")
        path = cell_path(request.results_dir, cid)
        if skip_reason:
            records.append(_skip(spec, scenario.name, cid, skip_reason, path, show_progress))
            continue
        existing = read_record(path) if resume else None
        if existing and (existing["status"] == "ok" or not request.retry_failed):
            _remember_cost(measured, existing)
            records.append(existing)
            continue
        shared = measured.get(spec.variant)
        if shared is not None:
            spec = dataclasses.replace(spec, measure_cost=False)
        try:
            record = run_cell(spec, dataset, scenario, cache, request.results_dir, cid, device,
                              show_progress, observer)
        except DatasetError:
            raise
        except Exception as err:  # recorded, never a crash of the grid
            record = {
                "schema_version": SCHEMA_VERSION, "status": "failed", "model": spec.model,
                "variant": spec.variant, "scenario": scenario.name, "strategy": spec.strategy,
                "seed": spec.seed, "task_aware": spec.task_aware,
                "error": {"type": type(err).__name__, "message": str(err), "task": None,
                          "step": None, "traceback": traceback.format_exc(limit=8)},
            }
        if shared is not None and record["status"] == "ok":
            record["cost"].update(shared)
        record["cell_id"] = cid
        write_json_atomic(path, record)
        stored = read_record(path)  # exactly what is stored (NaN -> null)
        _remember_cost(measured, stored)
        records.append(stored)
    return records
