"""`nfbench plan`: the cells of a grid and their estimated time, before anything runs.

The estimate comes from a short calibration on the current device: per model variant a few
timed optimiser steps, one finish_task, and a few scoring batches on random features of the
backbone's shapes, the backbone's own time per image, and the metrics' time per image. Those
unit costs are scaled by what each cell will do: the strategy's phases and their image counts
(the strategies themselves plan the phases, on placeholder samples), the epochs and batch
size of the model's config, and the test set scored after every phase. No dataset is read:
class sizes come from the data root when given, else from the known sizes of MVTec AD, VisA
and the synthetic sets. Backbones are built with random weights (the same speed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nfbench.benchmarks.measuring.cost import (
    LATENCY_BUDGET_S,
    LATENCY_SAMPLES,
    THROUGHPUT_ITERATIONS,
    WARMUP,
)
from nfbench.benchmarks.measuring.evaluate import EvalSet, evaluation_row
from nfbench.benchmarks.running.calibration import split_for_calibration
from nfbench.benchmarks.running.cell import resolve_device
from nfbench.benchmarks.running.runner import RunRequest, backbone_groups, variant_name
from nfbench.benchmarks.running.strategies import (
    DEFAULT_STRATEGY,
    build_config,
    get_strategy_class,
)
from nfbench.benchmarks.running.trainer import train_phase
from nfbench.datasets.base import ClassData, Dataset, Sample
from nfbench.datasets.catalog import class_sizes
from nfbench.datasets.scenarios import Scenario, build_scenario
from nfbench.models.backbone import Backbone
from nfbench.models.base import FlowADModel
from nfbench.models.registry import create_model, get_model_class

SCORE_BATCH = 32
# the cost measurement (cost.py) besides the batch-1 timings: the batch-1 warm-up and the
# batch-32 throughput runs, then a memory pass of 2 inferences at each batch size under the
# profiler (counted as 3 each)
COST_INFERENCES = {1: WARMUP + 6, 32: THROUGHPUT_ITERATIONS + 1 + 6}


@dataclass
class UnitCosts:
    """Seconds per unit of work for one model variant on one device."""

    features_per_image: float
    step: float  # one optimiser step at the config's batch size
    finish: tuple[int, float, float]  # finish_task on n images: (n, seconds, growth exponent)
    score_per_image: float
    metrics_per_image: float
    setup: float  # building the model
    inference: dict[int, float]  # backbone + scoring, one call at batch 1 and at batch 32

    def finish_seconds(self, n: int) -> float:
        """finish_task on n images, from the power law fitted on two sizes (a memory bank's
        coreset grows faster than linearly; a flow's references linearly)."""
        base_n, base_s, exponent = self.finish
        return base_s * (n / base_n) ** exponent

    def inference_cost(self) -> float:
        """Latency and throughput timing plus the memory pass (see cost.py); the batch-1
        timings stop at LATENCY_SAMPLES or LATENCY_BUDGET_S, whichever comes first."""
        timings = min(LATENCY_SAMPLES * self.inference[1], LATENCY_BUDGET_S)
        return timings + sum(n * self.inference[batch] for batch, n in COST_INFERENCES.items())


def _timed(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats


def _random_features(backbone: Backbone, n: int, device: torch.device) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    info = backbone.feature_info
    return [torch.randn(n, c, s, s, generator=g).to(device)
            for c, s in zip(info.channels, info.sizes, strict=True)]


def backbone_seconds_per_image(backbone: Backbone, device: torch.device) -> float:
    images = _images(16, backbone, device)
    with torch.no_grad():
        return _timed(lambda: backbone(images), 2, device) / 16


def metrics_seconds_per_image(size: int, n: int = 16) -> float:
    """Image and pixel metrics of one task of n images (maps of the input size)."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    masks = np.zeros((n, size, size), dtype=bool)
    masks[labels == 1, size // 4: size // 2, size // 4: size // 2] = True
    test = EvalSet([], np.zeros(n, int), np.zeros(n, int), labels, np.ones(n, bool), masks)
    maps = rng.random((n, size, size)).astype(np.float16)
    scores = rng.random(n)
    return _timed(lambda: evaluation_row(maps, scores, test, 1, 1), 1, torch.device("cpu")) / n


def calibrate(model_name: str, overrides: dict, backbone: Backbone, device: torch.device,
              features_per_image: float, metrics_per_image: float, steps: int = 3) -> UnitCosts:
    """Time a few steps, one finish_task and a few scoring batches of the model."""
    start = time.perf_counter()
    model: FlowADModel = create_model(model_name, backbone.feature_info, **overrides).to(device)
    model.start_task(0, [0], DEFAULT_STRATEGY)
    setup = time.perf_counter() - start
    config = model.config
    batch = config.batch_size
    feats = _random_features(backbone, max(batch * (steps + 1), SCORE_BATCH), device)
    ids = torch.zeros(feats[0].shape[0], dtype=torch.long)
    train_feats = [f[: batch * (steps + 1)].cpu() for f in feats]
    train_ids = ids[: batch * (steps + 1)]
    for warm_up in (True, False):  # the first steps build kernels and optimiser state
        stats = train_phase(model, train_feats, train_ids, 0, 0, device, show_progress=False,
                            max_steps=1 if warm_up else steps)
    step = stats.seconds / max(stats.steps, 1)
    finish = _finish_law(model, feats, device)
    score_feats = [f[:SCORE_BATCH] for f in feats]
    with torch.no_grad():
        score = _timed(lambda: model.score(score_feats, None), 2, device) / SCORE_BATCH
        inference = {b: _timed(lambda b=b: model.score(backbone(_images(b, backbone, device)),
                                                        None), 2, device) for b in (1, 32)}
    return UnitCosts(features_per_image, step, finish, score, metrics_per_image, setup,
                     inference)


def _finish_law(model: FlowADModel, feats: list[torch.Tensor],
                device: torch.device) -> tuple[int, float, float]:
    """finish_task timed on n and 2n images: (n, seconds, exponent in [1, 2])."""
    n = max(feats[0].shape[0] // 2, 1)
    ids = torch.zeros(2 * n, dtype=torch.long)
    times = [_timed(lambda k=k: model.finish_task([f[:k].cpu() for f in feats], ids[:k]), 1,
                    device) for k in (n, 2 * n)]
    exponent = float(np.clip(np.log2(max(times[1], 1e-9) / max(times[0], 1e-9)), 1.0, 2.0))
    return n, times[0], exponent


def _images(n: int, backbone: Backbone, device: torch.device) -> torch.Tensor:
    return torch.rand(n, 3, backbone.input_size, backbone.input_size).to(device)


def placeholder_dataset(name: str, sizes: dict[str, tuple[int, int]]) -> Dataset:
    """A dataset of placeholder samples with the real counts, for the strategies to plan."""
    classes = {c: ClassData(c, [Sample(Path(f"{c}/train/{i}"), c, 0) for i in range(n_train)],
                            [Sample(Path(f"{c}/test/{i}"), c, 0) for i in range(n_test)])
               for c, (n_train, n_test) in sizes.items()}
    return Dataset(name, Path("."), classes)


def estimate_cell(units: UnitCosts, model_name: str, overrides: dict, strategy_name: str,
                  strategy_overrides: dict, dataset: Dataset, scenario: Scenario,
                  seed: int, calibration_split: float = 0.0) -> dict[str, float]:
    """Seconds per stage of one cell (features excluded: they are shared by the grid); the
    strategy trains without the calibration images, as in a real run."""
    model_class = get_model_class(model_name)
    config = model_class.config_class(**overrides)
    split = split_for_calibration(dataset, scenario.classes, calibration_split, seed)
    strategy = get_strategy_class(strategy_name, model_class)(
        build_config(strategy_name, **strategy_overrides), scenario, split.training, seed,
        model_class)
    n_test = sum(len(dataset[c].test) for c in scenario.classes)
    stages = dict.fromkeys(("setup", "training", "evaluation", "metrics", "thresholds"), 0.0)
    stages["setup"] = units.setup
    samples: list[Sample] = []
    for phase in strategy.phases():
        samples = strategy.training_samples(phase)
        held = len(samples)
        batch = min(config.batch_size, held)
        steps = config.epochs * (held // batch)
        stages["training"] += steps * units.step + units.finish_seconds(held)
        stages["evaluation"] += n_test * units.score_per_image
        seen = sum(len(dataset[c].test) for t in scenario.tasks[: phase.row + 1] for c in t)
        stages["metrics"] += seen * units.metrics_per_image
        strategy.after_phase(None, phase)
    stages["thresholds"] = len(split.calibration_images(samples)) * units.score_per_image
    return stages


def plan(request: RunRequest, steps: int = 3) -> tuple[pd.DataFrame, dict]:
    """One row per cell with its estimated seconds per stage, and the totals. Each backbone
    and each model on it is calibrated once, whatever the number of scenarios; features are
    counted once per backbone and image."""
    rows, features, device = [], {}, resolve_device(request.device)
    calibrated: dict[tuple, tuple[Backbone, float, float]] = {}
    units_of: dict[tuple, UnitCosts] = {}
    for group in backbone_groups(request):
        key = (group.backbone, tuple(group.backbone_layers or ()), group.input_size)
        if key not in calibrated:
            backbone = Backbone(group.backbone, group.backbone_layers, "none",
                                group.input_size).to(device)
            calibrated[key] = (backbone, backbone_seconds_per_image(backbone, device),
                               metrics_seconds_per_image(group.input_size))
        backbone, per_image, metric_cost = calibrated[key]
        dataset_name = group.scenario.split(":", 1)[0]
        sizes = class_sizes(dataset_name, group.data_root, group.cache_dir)
        dataset = placeholder_dataset(dataset_name, sizes)
        scenario = build_scenario(group.scenario, dataset.class_names, group.tasks)
        for name in scenario.classes:
            features[(key, dataset_name, name)] = sum(sizes[name]) * per_image
        for model in group.models:
            overrides = group.model_overrides.get(model, {})
            unit_key = (key, model, repr(sorted(overrides.items())))
            if unit_key not in units_of:
                units_of[unit_key] = calibrate(model, overrides, backbone, device, per_image,
                                               metric_cost, steps)
            rows += _model_rows(group, model, overrides, units_of[unit_key], dataset, scenario)
    table = pd.DataFrame(rows)
    feature_s = float(sum(features.values()))
    total = float(table["total_s"].sum()) + feature_s if len(table) else feature_s
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return table, {"cells": len(table), "features_s": feature_s, "total_s": total,
                   "device": device.type, "device_name": name}


def _model_rows(group: RunRequest, model: str, overrides: dict, units: UnitCosts,
                dataset: Dataset, scenario: Scenario) -> list[dict]:
    rows = []
    first = True
    for name in group.strategies:
        strategy_class = get_strategy_class(name, get_model_class(model))
        if strategy_class.skip_reason(get_model_class(model)):
            continue  # the runner skips it too
        for seed in group.seeds:
            stages = estimate_cell(units, model, overrides, strategy_class.name,
                                   group.strategy_overrides.get(strategy_class.name, {}),
                                   dataset, scenario, seed, group.calibration_split)
            stages["cost"] = units.inference_cost() if first and group.measure_cost else 0.0
            first = False
            rows.append({"scenario": scenario.name, "variant": variant_name(model, overrides),
                         "strategy": strategy_class.name, "seed": seed,
                         **{f"{k}_s": v for k, v in stages.items()},
                         "total_s": sum(stages.values())})
    return rows


def summary_line(totals: dict) -> str:
    hours = totals["total_s"] / 3600
    unit = "GPU-hours" if totals["device"] == "cuda" else "CPU-hours"
    return (f"{totals['cells']} cells, about {hours:.2f} {unit} on {totals['device_name']} "
            f"({totals['total_s']:.0f} s; features {totals['features_s']:.0f} s, computed once)")


def main_plan(args, request: RunRequest) -> int:
    table, totals = plan(request, args.calibration_steps)
    shown = table.copy()
    for column in [c for c in shown.columns if c.endswith("_s")]:
        shown[column] = shown[column].map(lambda v: f"{v:.1f}")
    print(shown.to_markdown(index=False))
    print(summary_line(totals))
    return 0


