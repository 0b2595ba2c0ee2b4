"""Callbacks around a cell's phases: what the protocol does besides training and evaluating.

The protocol (protocol.py) calls every callback at four points: the cell's start, before and
after each training phase, and the cell's end. Automatic thresholds, inference cost, progress
and the diagnostics are callbacks, so adding such a concern never touches the protocol.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from nfbench.benchmarks.measuring.cost import measure_cost
from nfbench.benchmarks.measuring.evaluate import EvalSet, image_scores, scoring_precision
from nfbench.benchmarks.measuring.thresholds import threshold_report
from nfbench.benchmarks.records.record import CellRecord
from nfbench.datasets.base import Dataset, Sample
from nfbench.datasets.scenarios import Scenario
from nfbench.models.base import FlowADModel
from nfbench.models.feature_cache import FeatureCache

if TYPE_CHECKING:
    from nfbench.benchmarks.running.protocol import CellSpec
    from nfbench.benchmarks.running.strategies import Phase, Strategy


@dataclass
class CellEnv:
    """What every cell of a grid shares in one process: data, features, device."""

    dataset: Dataset
    scenario: Scenario
    cache: FeatureCache
    results_dir: Path
    device: torch.device
    show_progress: bool = True
    concurrent_cells: int = 1  # cells running at once in this grid (parallel workers)
    eval_batch_size: int = 32  # images per scoring call (larger keeps a GPU busy)
    autocast: str = "none"  # "bf16": scoring under bfloat16 autocast (opt-in)

    def class_ids(self, samples: list[Sample]) -> torch.Tensor:
        """Global class ids: a class's position in the scenario's class order."""
        index = {name: i for i, name in enumerate(self.scenario.classes)}
        return torch.tensor([index[s.class_name] for s in samples], dtype=torch.long)


@dataclass
class CellContext:
    """A cell in progress, as callbacks see it."""

    spec: CellSpec
    env: CellEnv
    model: FlowADModel
    strategy: Strategy
    test: EvalSet
    test_features: list[torch.Tensor]
    record: CellRecord
    held: list[Sample] = field(default_factory=list)  # training images held after a phase
    maps: np.ndarray | None = None  # the latest evaluation
    scores: np.ndarray | None = None

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the block's wall time to record.timings[stage] (seconds)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.env.device.type == "cuda":
                torch.cuda.synchronize(self.env.device)
            timings = self.record.timings
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


class Callback:
    """No-op hooks; override the ones you need."""

    def on_cell_start(self, ctx: CellContext) -> None: ...

    def before_phase(self, ctx: CellContext, phase: Phase) -> None: ...

    def after_phase(self, ctx: CellContext, phase: Phase) -> None: ...

    def on_cell_end(self, ctx: CellContext) -> None: ...


class Thresholds(Callback):
    """Automatic thresholds fitted on the normal training scores of what the learner holds
    after the last phase, applied to the final test scores, next to the oracle F1-max."""

    def on_cell_end(self, ctx: CellContext) -> None:
        if not ctx.record.ok:
            return
        with ctx.timed("thresholds"):
            held = ctx.held
            ids = ctx.env.class_ids(held) if ctx.spec.task_aware else None
            features = ctx.env.cache.features(held, desc="train scores")
            train_scores = image_scores(ctx.model, features, ids, ctx.env.device,
                                        ctx.env.eval_batch_size, ctx.env.autocast)
            ctx.record.thresholds = threshold_report(
                ctx.model, train_scores, ctx.scores, ctx.test.labels, ctx.test_features)
        ctx.record.threshold_calibration = {"source": ctx.strategy.holds, "images": len(held)}


def _cost_key(record: CellRecord) -> tuple[str, float]:
    """What inference cost depends on: the model variant and the size its state ended at
    (a memory bank or class table grows by strategy; a flow's size does not)."""
    state = record.cost.state_mb[-1] if record.cost.state_mb else 0.0
    return record.variant, round(state, 3)


class InferenceCost(Callback):
    """Latency, throughput and memory, measured once per model variant and final state size in
    a process: they depend on the model, its settings and what the strategy made it grow,
    not on the seed or (for a flow) the strategy, so later cells reuse the figures and name
    the cell that measured them. With parallel workers the record says how many cells ran at
    once while it was measured: such latencies are not those of a quiet machine."""

    def __init__(self) -> None:
        self.measured: dict[tuple[str, float], dict] = {}

    def remember(self, record: CellRecord) -> None:
        figures = record.cost.inference()
        key = _cost_key(record)
        if record.ok and "latency_ms_p50" in figures and key not in self.measured:
            source = record.cost.cost_measured_in or record.cell_id
            self.measured[key] = {**figures, "cost_measured_in": source,
                                  "concurrent_cells": record.cost.concurrent_cells}

    def on_cell_end(self, ctx: CellContext) -> None:
        record = ctx.record
        if not record.ok or not ctx.spec.measure_cost:
            return
        shared = self.measured.get(_cost_key(record))
        if shared is None:
            with ctx.timed("cost"):
                with scoring_precision(ctx.env.device, ctx.env.autocast):
                    shared = measure_cost(ctx.env.cache.backbone, ctx.model, ctx.env.device)
            shared["concurrent_cells"] = ctx.env.concurrent_cells
        for key, value in shared.items():
            setattr(record.cost, key, value)
        self.remember(record)


class Progress(Callback):
    """Names the running cell and its phase on a tqdm bar."""

    def __init__(self, bar) -> None:
        self.bar = bar

    def before_phase(self, ctx: CellContext, phase: Phase) -> None:
        self.bar.set_postfix_str(f"{ctx.record.label} s{ctx.record.seed}: task {phase.row + 1}"
                                 f"/{ctx.env.scenario.num_tasks}")
