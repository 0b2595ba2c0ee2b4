"""The continual protocol for one cell: train phase by phase, evaluate every task after each.

Training sees only the current phase's normal training images (plus a replay buffer where the
strategy has one). Evaluation is task-agnostic unless `task_aware`: then the oracle class id
reaches the model. After training task t every task k is evaluated, filling R[t, k]; entries
with k > t are recorded too but enter no summary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from nfbench.benchmarks.cost import measure_cost
from nfbench.benchmarks.evaluate import (
    R_METRICS,
    SUMMARY_METRICS,
    EvalSet,
    evaluation_row,
    per_class_metrics,
    score_all,
)
from nfbench.benchmarks.forgetting import summarize
from nfbench.benchmarks.results import SCHEMA_VERSION, environment, write_scores
from nfbench.benchmarks.strategies import Phase, ReplayBuffer, plan_phases, training_samples
from nfbench.benchmarks.thresholds import threshold_report
from nfbench.benchmarks.trainer import DivergedError, train_phase
from nfbench.datasets.base import Dataset, Sample, load_mask
from nfbench.datasets.scenarios import Scenario
from nfbench.models.base import FlowADModel, count_parameters
from nfbench.models.feature_cache import FeatureCache
from nfbench.models.registry import create_model


@dataclass
class CellSpec:
    """Everything that defines one cell of the grid."""

    model: str
    overrides: dict
    variant: str
    strategy: str
    seed: int
    task_aware: bool = False
    replay_per_class: int = 10
    measure_cost: bool = True
    extra: dict = field(default_factory=dict)


class PhaseObserver(Protocol):
    """Hooks around each training phase, for diagnostics that need the live model."""

    def before_phase(self, model: FlowADModel, phase: Phase) -> None: ...

    def after_phase(
        self, model: FlowADModel, phase: Phase, test_features: list[torch.Tensor], test: EvalSet
    ) -> None: ...


def scenario_class_index(scenario: Scenario) -> dict[str, int]:
    """Global class ids: a class's position in the scenario's class order."""
    return {name: i for i, name in enumerate(scenario.classes)}


def build_test_set(dataset: Dataset, scenario: Scenario, size: int) -> EvalSet:
    class_index = scenario_class_index(scenario)
    samples: list[Sample] = []
    tasks: list[int] = []
    for k, task in enumerate(scenario.tasks):
        for name in task:
            samples.extend(dataset[name].test)
            tasks.extend([k] * len(dataset[name].test))
    return EvalSet(
        samples=samples,
        task_of=np.array(tasks),
        class_ids=np.array([class_index[s.class_name] for s in samples]),
        labels=np.array([s.label for s in samples]),
        has_mask=np.array([s.label == 0 or s.has_mask for s in samples]),
        masks=np.stack([load_mask(s, size) for s in samples]),
    )


def _class_ids(samples: list[Sample], scenario: Scenario) -> torch.Tensor:
    index = scenario_class_index(scenario)
    return torch.tensor([index[s.class_name] for s in samples], dtype=torch.long)


def calibration_source(strategy: str, buffer: ReplayBuffer | None) -> str:
    """In words: which normal training images the thresholds were fitted on. Only what the
    learner still holds after the last task: under finetune its task's images, under replay
    those plus the buffer; joint holds every class."""
    if strategy == "joint":
        return "all classes' training images (joint)"
    if buffer is not None:
        return "last task's training images + replay buffer"
    return "last task's training images"


def _threshold_report(
    model, cache: FeatureCache, train: list[Sample], scenario: Scenario, device: torch.device,
    scores: np.ndarray, test: EvalSet, task_aware: bool, test_features: list[torch.Tensor],
) -> dict:
    """Automatic thresholds fitted on the normal training scores of what the learner holds,
    applied to the final test set, next to the oracle F1-max (the best F1 any threshold
    reaches on the test set itself)."""
    ids = _class_ids(train, scenario) if task_aware else None
    _, train_scores = score_all(model, cache.features(train, desc="train scores"), ids, device)
    return threshold_report(model, train_scores, scores, test.labels, test_features)


def run_cell(
    spec: CellSpec,
    dataset: Dataset,
    scenario: Scenario,
    cache: FeatureCache,
    results_dir: Path,
    cid: str,
    device: torch.device,
    show_progress: bool = True,
    observer: PhaseObserver | None = None,
) -> dict:
    """Run one cell end to end and return its record (scores are written beside it).

    An observer (the diagnostics) sees the model before and after each training phase; it may
    freeze parameter groups in `before_phase`, and reads what it needs in `after_phase`.
    """
    torch.manual_seed(spec.seed)
    np.random.seed(spec.seed)
    started = time.perf_counter()
    backbone = cache.backbone
    model = create_model(spec.model, backbone.feature_info, **spec.overrides).to(device)
    test = build_test_set(dataset, scenario, backbone.input_size)
    test_feats = cache.features(test.samples, desc="test features")
    test_ids = torch.from_numpy(test.class_ids) if spec.task_aware else None
    T = scenario.num_tasks
    R = {m: np.full((T, T), np.nan) for m in R_METRICS}
    has_masks = bool((test.has_mask & (test.labels == 1)).any())
    train_time, trainable, arrays = [], [], {"masks": test.masks}
    buffer = ReplayBuffer(spec.replay_per_class, spec.seed) if spec.strategy == "replay" else None
    rows, error, global_step = [], None, 0
    maps = scores = None
    held: list[Sample] = []  # the training images the learner holds after the last phase
    for phase in plan_phases(spec.strategy, scenario):
        try:
            class_index = scenario_class_index(scenario)
            model.start_task(phase.row, [class_index[n] for n in phase.new_classes], spec.strategy)
            samples = training_samples(spec.strategy, phase, dataset, buffer)
            held = samples
            feats = cache.features(samples, desc="train features")
            if observer is not None:
                observer.before_phase(model, phase)
            trainable.append(count_parameters(model)[1])
            stats = train_phase(model, feats, _class_ids(samples, scenario), phase.row,
                                spec.seed, device, global_step, show_progress)
            global_step += stats.steps
            train_time.append(stats.seconds)
            with torch.no_grad():
                model.finish_task(feats, _class_ids(samples, scenario))
            maps, scores = score_all(model, test_feats, test_ids, device)
            if observer is not None:
                observer.after_phase(model, phase, test_feats, test)
            if not (np.isfinite(scores).all() and np.isfinite(maps).all()):
                raise DivergedError(phase.row, stats.steps, "non-finite anomaly scores")
        except DivergedError as err:
            error = {"type": "Diverged", "message": str(err), "task": err.task, "step": err.step}
            break
        if buffer is not None:
            buffer.add_classes(dataset, phase.new_classes)
        arrays[f"maps_t{phase.row}"] = maps
        for k, values in enumerate(evaluation_row(maps, scores, test, T, phase.row + 1,
                                                  pixel=has_masks)):
            for metric, value in values.items():
                R[metric][phase.row, k] = value
        rows.append(pd.DataFrame({
            "after_task": phase.row, "task": test.task_of,
            "class_name": [s.class_name for s in test.samples],
            "path": [str(s.path) for s in test.samples], "label": test.labels,
            "has_mask": test.has_mask, "image_score": scores, "row": np.arange(len(scores)),
        }))

    record = {
        "schema_version": SCHEMA_VERSION,
        "status": "failed" if error else "ok",
        "error": error,
        "model": spec.model,
        "variant": spec.variant,
        "scenario": scenario.name,
        "strategy": spec.strategy,
        "seed": spec.seed,
        "task_aware": spec.task_aware,
        "backbone": backbone.describe(),
        "dataset": {"name": dataset.name, "has_masks": has_masks},
        "batch_dependent_scores": type(model).batch_dependent_scores,
        "tasks": [list(t) for t in scenario.tasks],
        "config": vars(model.config),
        "run_settings": {"replay_per_class": spec.replay_per_class, **spec.extra},
        "environment": environment(device),
        "R": {m: R[m] for m in R_METRICS},
        "summary": {m: summarize(R[m]) for m in (*SUMMARY_METRICS, "image_auroc_pooled")},
        "per_class": per_class_metrics(maps, scores, test, has_masks) if error is None else None,
        "thresholds": None,
        "cost": {
            "train_time_s": train_time,
            "feature_time_s": cache.extraction_seconds,
            "params_total": count_parameters(model)[0],
            "params_trainable": trainable,
        },
    }
    if error is None:
        record["thresholds"] = _threshold_report(
            model, cache, held, scenario, device, scores, test, spec.task_aware, test_feats)
        record["threshold_calibration"] = {
            "source": calibration_source(spec.strategy, buffer), "images": len(held)}
        if spec.measure_cost:
            record["cost"].update(measure_cost(backbone, model, device))
    if rows:
        record["scores"] = write_scores(results_dir, cid, pd.concat(rows), arrays)
    record["wall_time_s"] = time.perf_counter() - started
    return record
