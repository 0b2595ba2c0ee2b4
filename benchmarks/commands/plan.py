"""`nfbench plan`: the cells of a grid and their estimated time, before anything runs.

The estimate comes from a short calibration on the current device (plan_costs.py: per model
variant a few timed optimiser steps, one finish_task, and a few scoring batches on random
features of the backbone's shapes, the backbone's own time per image, and the metrics' time
per image). Those unit costs are scaled by what each cell will do: the strategy's phases and
their image counts (the strategies themselves plan the phases, on placeholder samples), the
epochs and batch size of the model's config, and the test set scored after every phase. No
dataset is read: class sizes come from the data root when given, else from the known sizes of
MVTec AD, VisA and the synthetic sets. Backbones are built with random weights (the same speed).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil
import torch
from tqdm.auto import tqdm

from nfbench.benchmarks.commands.plan_costs import (
    SCORE_BATCH,
    UnitCosts,
    backbone_seconds_per_image,
    calibrate,
    metrics_seconds_per_image,
)
from nfbench.benchmarks.running.calibration import split_for_calibration
from nfbench.benchmarks.running.cell import resolve_device
from nfbench.benchmarks.running.executors import memory_limits
from nfbench.benchmarks.running.runner import RunRequest, backbone_groups, variant_name
from nfbench.benchmarks.running.strategies import (
    build_config,
    get_strategy_class,
)
from nfbench.datasets.base import ClassData, Dataset, Sample
from nfbench.datasets.catalog import class_sizes
from nfbench.datasets.scenarios import Scenario, build_scenario
from nfbench.models.backbone import LITE_TAPS, Backbone, FeatureInfo
from nfbench.models.feature_cache import bytes_per_image, choose_store, existing_parent
from nfbench.models.registry import get_model_class


def placeholder_dataset(name: str, sizes: dict[str, tuple[int, int]]) -> Dataset:
    """A dataset of placeholder samples with the real counts, for the strategies to plan."""
    classes = {c: ClassData(c, [Sample(Path(f"{c}/train/{i}"), c, 0) for i in range(n_train)],
                            [Sample(Path(f"{c}/test/{i}"), c, 0) for i in range(n_test)])
               for c, (n_train, n_test) in sizes.items()}
    return Dataset(name, Path("."), classes)


@dataclass
class CellWork:
    """What one cell does, counted without running it."""

    steps: int  # optimiser steps, every phase
    finish_images: list[int]  # images finish_task sees, per phase
    scored: int  # test images scored, every phase
    metric_images: int  # test images of seen tasks measured, every phase
    held: int  # training images held after the last phase (threshold calibration)
    phases: int
    test_images: int


def cell_work(model_name: str, overrides: dict, strategy_name: str, strategy_overrides: dict,
              dataset: Dataset, scenario: Scenario, seed: int,
              calibration_split: float = 0.0) -> CellWork:
    """The strategy's phases and image counts (planned on placeholder samples), the epochs and
    batch size of the model's config (the trainer drops a ragged last batch); the strategy
    trains without the calibration images, as in a real run."""
    model_class = get_model_class(model_name)
    config = model_class.config_class(**overrides)
    split = split_for_calibration(dataset, scenario.classes, calibration_split, seed)
    strategy = get_strategy_class(strategy_name, model_class)(
        build_config(strategy_name, **strategy_overrides), scenario, split.training, seed,
        model_class)
    n_test = sum(len(dataset[c].test) for c in scenario.classes)
    work = CellWork(0, [], 0, 0, 0, 0, n_test)
    for phase in strategy.phases():
        held = len(strategy.training_samples(phase))
        batch = min(config.batch_size, held)
        work.steps += config.epochs * (held // batch) if batch else 0
        work.finish_images.append(held)
        work.scored += n_test
        work.metric_images += sum(len(dataset[c].test) for t in scenario.tasks[: phase.row + 1]
                                  for c in t)
        samples = strategy.training_samples(phase)
        work.held = len(split.calibration_images(samples))
        work.phases += 1
        strategy.after_phase(None, phase)
    return work


def cell_seconds(work: CellWork, units: UnitCosts) -> dict[str, float]:
    """Seconds per stage of one cell (features excluded: they are shared by the grid)."""
    return {"setup": units.setup,
            "training": work.steps * units.step + sum(map(units.finish_seconds,
                                                          work.finish_images)),
            "evaluation": work.scored * units.score_per_image,
            "metrics": work.metric_images * units.metrics_per_image,
            "thresholds": work.held * units.score_per_image}


def estimate_cell(units: UnitCosts, model_name: str, overrides: dict, strategy_name: str,
                  strategy_overrides: dict, dataset: Dataset, scenario: Scenario,
                  seed: int, calibration_split: float = 0.0) -> dict[str, float]:
    """Seconds per stage of one cell."""
    return cell_seconds(cell_work(model_name, overrides, strategy_name, strategy_overrides,
                                  dataset, scenario, seed, calibration_split), units)



HOST_BASELINE = 2e9  # bytes of a worker before any array: interpreter, torch, a CUDA context


def feature_info_of(group: RunRequest) -> FeatureInfo:
    """The backbone's tap shapes without weights or a forward pass: timm backbones are built
    on the meta device (no memory, well under a second); the small Lite ones for real."""
    if group.backbone in LITE_TAPS:
        return Backbone(group.backbone, group.backbone_layers, "none",
                        group.input_size).feature_info
    import timm

    taps = tuple(int(i) for i in (group.backbone_layers or (1, 2, 3)))
    with torch.device("meta"):
        net = timm.create_model(group.backbone, features_only=True, out_indices=taps,
                                pretrained=False)
    return FeatureInfo(tuple(net.feature_info.channels()),
                       tuple(net.feature_info.reduction()), group.input_size)


def host_bytes(work: CellWork, info: FeatureInfo, batch_size: int) -> int:
    """The large host arrays of one cell beside the features: a scoring pass's test maps in
    float32 and as stored (float16; earlier phases' maps wait on disk, memory-mapped), the
    latest maps, the masks, and a float16 and a float32 copy of a training and a scoring
    batch of features."""
    pixels = work.test_images * info.input_size ** 2
    maps = pixels * (4 + 2 + 2 + 1)
    batches = (batch_size + SCORE_BATCH) * bytes_per_image(info) * 3
    return maps + batches



@dataclass
class GroupPlan:
    """One sub-grid (scenario x backbone setting) as the planner sees it."""

    group: RunRequest
    info: FeatureInfo
    dataset: Dataset
    scenario: Scenario

    @property
    def key(self) -> tuple[str, FeatureInfo]:
        """One per backbone setting: calibrated once, its features counted once per image."""
        return self.group.backbone, self.info


def _group_plans(request: RunRequest) -> list[GroupPlan]:
    infos: dict[tuple, FeatureInfo] = {}
    plans = []
    for group in backbone_groups(request):
        key = (group.backbone, tuple(group.backbone_layers or ()), group.input_size)
        if key not in infos:
            infos[key] = feature_info_of(group)
        dataset_name = group.scenario.split(":", 1)[0]
        dataset = placeholder_dataset(dataset_name, class_sizes(dataset_name, group.data_root,
                                                                group.cache_dir))
        scenario = build_scenario(group.scenario, dataset.class_names, group.tasks)
        plans.append(GroupPlan(group, infos[key], dataset, scenario))
    return plans


class Calibrator:
    """Unit costs measured once per backbone setting and model variant, with progress."""

    def __init__(self, device: torch.device, steps: int, bar) -> None:
        self.device, self.steps, self.bar = device, steps, bar
        self.backbones: dict[tuple, tuple[Backbone, float, float]] = {}
        self.units: dict[tuple, UnitCosts] = {}

    def __call__(self, gp: GroupPlan, model: str, overrides: dict) -> UnitCosts:
        group, key = gp.group, gp.key
        unit_key = (key, model, repr(sorted(overrides.items())))
        if unit_key in self.units:
            return self.units[unit_key]
        self.bar.set_postfix_str(f"{model} @ {group.backbone} {group.input_size}px")
        if key not in self.backbones:
            backbone = Backbone(group.backbone, group.backbone_layers, "none",
                                group.input_size).to(self.device)
            self.backbones[key] = (backbone, backbone_seconds_per_image(backbone, self.device),
                                   metrics_seconds_per_image(group.input_size))
        backbone, per_image, metric_cost = self.backbones[key]
        self.units[unit_key] = calibrate(model, overrides, backbone, self.device, per_image,
                                         metric_cost, self.steps)
        self.bar.update()
        return self.units[unit_key]


def plan(request: RunRequest, steps: int = 3, steps_only: bool = False,
         show_progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """One row per cell the runner will run (its optimiser steps, host and GPU memory and,
    unless `steps_only`, its estimated seconds per stage), and the totals. Each backbone and
    each model on it is calibrated once, whatever the number of scenarios; features are
    counted once per backbone setting and image."""
    device = torch.device(request.device) if steps_only else resolve_device(request.device)
    plans = _group_plans(request)
    variants = {(gp.key, m, repr(sorted(gp.group.model_overrides.get(m, {}).items())))
                for gp in plans for m in gp.group.models}
    bar = tqdm(total=len(variants), desc="calibrating", disable=steps_only or not show_progress)
    calibrator = Calibrator(device, steps, bar)
    rows, feature_images, trained = [], {}, set()
    for gp in plans:
        for name in gp.scenario.classes:
            feature_images[(gp.key, gp.dataset.name, name)] = (
                len(gp.dataset[name].train) + len(gp.dataset[name].test))
        for model in gp.group.models:
            overrides = gp.group.model_overrides.get(model, {})
            units = None if steps_only else calibrator(gp, model, overrides)
            rows += _model_rows(gp, model, overrides, units, trained)
    bar.close()
    table = pd.DataFrame(rows)
    feature_s = 0.0 if steps_only else float(sum(
        n * calibrator.backbones[key][1] for (key, _, _), n in feature_images.items()))
    feature_bytes = sum(n * bytes_per_image(key[1]) for (key, _, _), n in feature_images.items())
    total = float(table["total_s"].sum()) + feature_s if "total_s" in table else None
    name = (torch.cuda.get_device_name(device) if device.type == "cuda" and not steps_only
            else device.type)
    by_backbone: dict[tuple, int] = {}
    for (key, _, _), n in feature_images.items():
        by_backbone[key] = by_backbone.get(key, 0) + n * bytes_per_image(key[1])
    return table, {"cells": len(table), "steps": int(table["steps"].sum()) if len(table) else 0,
                   "saved_steps": int(table["saved_steps"].sum()) if len(table) else 0,
                   "features_s": feature_s, "total_s": total, "feature_bytes": feature_bytes,
                   "feature_bytes_by_backbone": by_backbone,
                   "device": device.type, "device_name": name}



def _training_key(gp: GroupPlan, model: str, overrides: dict, strategy: str, seed: int
                  ) -> tuple:
    """What a single-phase (joint) cell's training depends on, as the runner's training key
    (running/runner.py) sees it: everything but the scenario's grouping of its classes."""
    group = gp.group
    return (repr(gp.key), variant_name(model, overrides), strategy, seed,
            tuple(gp.scenario.classes),
            repr(sorted(group.strategy_overrides.get(strategy, {}).items())),
            group.calibration_split, str(group.data_root), group.device)


def _model_rows(gp: GroupPlan, model: str, overrides: dict, units: UnitCosts | None,
                trained: set[tuple]) -> list[dict]:
    """The rows of the model's cells that the runner runs (its skip rule, not a copy). A
    joint cell whose training an earlier scenario's cell already did (`trained`: their keys)
    loads that model: its steps and training time count as 0, `saved_steps` says how many."""
    group, model_class = gp.group, get_model_class(model)
    config = model_class.config_class(**overrides)
    # measured by the calibration on a GPU; unknown otherwise (a model's activations are
    # most of it, and building the paper-size flows alone takes minutes on a CPU)
    gpu = units.gpu_bytes if units and units.gpu_bytes else float("nan")
    rows = []
    first = True
    for name in group.strategies:
        strategy_class = get_strategy_class(name, model_class)
        if strategy_class.skip_reason(model_class):
            continue  # the runner skips it too: the strategy's one skip rule
        for seed in group.seeds:
            work = cell_work(model, overrides, strategy_class.name,
                             group.strategy_overrides.get(strategy_class.name, {}),
                             gp.dataset, gp.scenario, seed, group.calibration_split)
            saved = 0
            if strategy_class.single_phase:
                key = _training_key(gp, model, overrides, strategy_class.name, seed)
                if key in trained:
                    saved, work.steps, work.finish_images = work.steps, 0, []
                trained.add(key)
            row = {"scenario": gp.scenario.name, "model": model,
                   "variant": variant_name(model, overrides),
                   "strategy": strategy_class.name, "seed": seed, "steps": work.steps,
                   "saved_steps": saved,
                   "host_bytes": host_bytes(work, gp.info, config.batch_size),
                   "gpu_bytes": gpu, "backbone": gp.key}
            if units is not None:
                stages = cell_seconds(work, units)
                stages["cost"] = units.inference_cost() if first and group.measure_cost else 0.0
                row |= {f"{k}_s": v for k, v in stages.items()}
                row["total_s"] = sum(stages.values())
            first = False
            rows.append(row)
    return rows


GB = 1e9



def per_model(table: pd.DataFrame, totals: dict, request: RunRequest) -> pd.DataFrame:
    """Per model: cells, optimiser steps, hours, feature bytes of its backbone setting and the
    store the runner would pick for them here (a sub-grid per backbone setting; on disk once
    per node, in memory once per worker), peak host memory per worker and GPU memory."""
    rows = []
    for model, cells in table.groupby("model", sort=False):
        features = sum(totals["feature_bytes_by_backbone"][key]
                       for key in dict.fromkeys(cells["backbone"]))
        store = choose_store(request.feature_store, features, request.cache_dir,
                             max(1, request.workers)).mode
        held = features if store == "memory" else 0
        row = {"model": model, "cells": len(cells), "steps (k)": cells["steps"].sum() / 1e3}
        if "total_s" in cells:
            row["hours"] = cells["total_s"].sum() / 3600
        rows.append(row | {
            "features GB": features / GB, "store": store,
            "host GB/worker": (HOST_BASELINE + held + cells["host_bytes"].max()) / GB,
            "GPU GB": cells["gpu_bytes"].max() / GB})
    return pd.DataFrame(rows)


def capacity_warnings(models: pd.DataFrame, totals: dict, request: RunRequest) -> list[str]:
    """One line per model a cell of which this machine, an executor's memory limit
    (`--slurm.mem`) or the disk cannot hold."""
    workers = max(1, request.workers)
    memory = psutil.virtual_memory().total / GB
    free_disk = shutil.disk_usage(existing_parent(Path(request.cache_dir))).free / GB
    gpu = (torch.cuda.get_device_properties(0).total_memory / GB
           if totals["device"] == "cuda" and torch.cuda.is_available() else None)
    lines = []
    for row in models.to_dict("records"):
        host, name = row["host GB/worker"], row["model"]
        if host * workers > memory:
            lines.append(f"{name}: {workers} worker(s) x {host:.1f} GB of host memory; this "
                         f"machine has {memory:.0f} GB")
        for executor, limit in memory_limits(request).items():
            if host > limit:
                lines.append(f"{name}: a cell needs about {host:.1f} GB; {executor}'s memory "
                             f"per cell is {limit:g} GB")
        if row["store"] == "disk" and row["features GB"] > free_disk:
            lines.append(f"{name}: its features take {row['features GB']:.1f} GB; "
                         f"{free_disk:.0f} GB free on the cache disk (--feature-store recompute)")
        if gpu is not None and row["GPU GB"] > gpu:
            lines.append(f"{name}: about {row['GPU GB']:.1f} GB of GPU memory; the GPU has "
                         f"{gpu:.0f} GB")
    return lines


def wall_clock_s(table: pd.DataFrame, totals: dict, gpus: int) -> float:
    """Cells spread over `gpus` GPUs, longest first onto the least loaded one (what a pool of
    workers or Slurm tasks does); the features are computed once, before."""
    load = [0.0] * max(1, gpus)
    for seconds in sorted(table["total_s"], reverse=True):
        load[load.index(min(load))] += seconds
    return max(load) + totals["features_s"]


def summary_line(totals: dict) -> str:
    steps = f"{totals['cells']} cells, {totals['steps']:,} optimiser steps"
    if totals.get("saved_steps"):
        steps += (f" ({totals['saved_steps']:,} not taken: joint is trained once across "
                  "scenarios with the same classes)")
    features = f"features {totals['feature_bytes'] / GB:.1f} GB in float16"
    if totals["total_s"] is None:
        return f"{steps}; {features} (--steps-only: no time estimate)"
    hours = totals["total_s"] / 3600
    unit = "GPU-hours" if totals["device"] == "cuda" else "CPU-hours"
    return (f"{steps}, about {hours:.2f} {unit} on {totals['device_name']} "
            f"({totals['total_s']:.0f} s; {features}, computed once in "
            f"{totals['features_s']:.0f} s)")


def main_plan(args, request: RunRequest) -> int:
    table, totals = plan(request, args.calibration_steps, steps_only=args.steps_only)
    if table.empty:
        print("no cell to run")
        return 0
    if args.per_cell:
        shown = table.drop(columns=["backbone", "model"])
        print(shown.to_markdown(index=False, floatfmt=".1f"))
    models = per_model(table, totals, request)
    print(models.to_markdown(index=False, floatfmt=".2f"))
    print(summary_line(totals))
    if args.gpus and totals["total_s"] is not None:
        hours = wall_clock_s(table, totals, args.gpus) / 3600
        print(f"on {args.gpus} GPU(s): about {hours:.1f} h wall-clock "
              f"(--workers {args.gpus}, or {args.gpus} Slurm tasks at once)")
    for line in capacity_warnings(models, totals, request):
        print(f"warning: {line}", file=sys.stderr)
    return 0
