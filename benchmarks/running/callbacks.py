"""Callbacks around a cell's phases: what the protocol does besides training and evaluating.

The protocol (protocol.py) calls every callback at four points: the cell's start, before and
after each training phase, and the cell's end. Automatic thresholds, inference cost, progress
and the diagnostics are callbacks, so adding such a concern never touches the protocol.
"""

from __future__ import annotations

from nfbench.benchmarks.measuring.cost import measure_cost
from nfbench.benchmarks.measuring.evaluate import image_scores, scoring_precision
from nfbench.benchmarks.measuring.thresholds import threshold_report
from nfbench.benchmarks.records.record import CellRecord
from nfbench.benchmarks.running.calibration import CalibrationSplit
from nfbench.benchmarks.running.context import CellContext
from nfbench.benchmarks.running.strategies import Phase


class Callback:
    """No-op hooks; override the ones you need."""

    def on_cell_start(self, ctx: CellContext) -> None: ...

    def before_phase(self, ctx: CellContext, phase: Phase) -> None: ...

    def after_phase(self, ctx: CellContext, phase: Phase) -> None: ...

    def on_cell_end(self, ctx: CellContext) -> None: ...


class Thresholds(Callback):
    """Automatic thresholds fitted on the normal images of what the learner holds after the
    last phase (their held-out calibration split, unless the split is 0), applied to the final
    test scores, next to the oracle F1-max."""

    def on_cell_end(self, ctx: CellContext) -> None:
        if not ctx.record.ok:
            return
        split = ctx.calibration or CalibrationSplit(0.0, ctx.env.dataset, {})
        images = split.calibration_images(ctx.held)
        with ctx.timed("thresholds"):
            ids = ctx.env.class_ids(images) if ctx.spec.task_aware else None
            features = ctx.env.cache.features(images, desc="calibration scores")
            calibration_scores = image_scores(ctx.model, features, ids, ctx.env.device,
                                              ctx.env.eval_batch_size, ctx.env.autocast)
            ctx.record.thresholds = threshold_report(
                ctx.model, calibration_scores, ctx.scores, ctx.test.labels, ctx.test_features)
        ctx.record.threshold_calibration = {"source": split.describe(ctx.strategy.holds),
                                            "images": len(images), "split": split.fraction}


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
