"""The continual protocol for one cell: train phase by phase, evaluate every task after each.

Training sees only what the strategy gives each phase (the current task's normal training
images, plus a replay buffer where the strategy has one). Evaluation is task-agnostic unless
`task_aware`: then the oracle class id reaches the model. After training task t every task k
is evaluated, filling R[t, k]; entries with k > t are recorded too but enter no summary.
Everything else a cell does (thresholds, cost, progress, diagnostics) is a callback.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nfbench.benchmarks.measuring.cost import weights_mb
from nfbench.benchmarks.measuring.evaluate import (
    EvalSet,
    evaluation_row,
    per_class_metrics,
)
from nfbench.benchmarks.measuring.forgetting import summarize
from nfbench.benchmarks.measuring.metrics import metric_table, summarised_keys
from nfbench.benchmarks.measuring.routing import routing_row, score_and_route_all
from nfbench.benchmarks.measuring.ties import tied_classes
from nfbench.benchmarks.records.record import CellRecord, ErrorInfo, now
from nfbench.benchmarks.records.results import environment, write_scores
from nfbench.benchmarks.running.calibration import split_for_calibration
from nfbench.benchmarks.running.callbacks import Callback
from nfbench.benchmarks.running.context import CellContext, CellEnv, CellSpec
from nfbench.benchmarks.running.strategies import Phase, build_config, get_strategy_class
from nfbench.benchmarks.running.trained import load_trained, save_trained, trained_path
from nfbench.benchmarks.running.trainer import DivergedError, train_phase
from nfbench.datasets.base import Dataset, Sample, load_mask
from nfbench.datasets.scenarios import Scenario
from nfbench.models.base import count_parameters
from nfbench.models.registry import create_model, get_model_class


def build_test_set(dataset: Dataset, scenario: Scenario, size: int) -> EvalSet:
    """Every test image of the scenario, in task order, with labels and masks."""
    index = {name: i for i, name in enumerate(scenario.classes)}
    samples: list[Sample] = []
    tasks: list[int] = []
    for k, task in enumerate(scenario.tasks):
        for name in task:
            samples.extend(dataset[name].test)
            tasks.extend([k] * len(dataset[name].test))
    return EvalSet(
        samples=samples,
        task_of=np.array(tasks),
        class_ids=np.array([index[s.class_name] for s in samples]),
        labels=np.array([s.label for s in samples]),
        has_mask=np.array([s.label == 0 or s.has_mask for s in samples]),
        masks=np.stack([load_mask(s, size) for s in samples]),
    )


class Evaluations:
    """R matrices, per-sample score rows, maps and tie flags of every evaluation of a cell."""

    def __init__(self, test: EvalSet, num_tasks: int, spill_dir: Path | None = None) -> None:
        self.test = test
        self._spill = None
        if spill_dir is not None:
            Path(spill_dir).mkdir(parents=True, exist_ok=True)
            self._spill = tempfile.TemporaryDirectory(dir=spill_dir, prefix=".maps-")
        self.num_tasks = num_tasks
        self.R = {m.key: np.full((num_tasks, num_tasks), np.nan) for m in metric_table()}
        self.has_masks = bool((test.has_mask & (test.labels == 1)).any())
        self.rows: list[pd.DataFrame] = []
        self.arrays: dict[str, np.ndarray] = {"masks": test.masks}
        self.class_names = np.array([s.class_name for s in test.samples])
        self.ties: list[dict] = []
        self.routing: dict[str, list] = {"normal": [], "anomalous": [], "confusion": []}

    def add(self, row: int, maps: np.ndarray, scores: np.ndarray,
            routes: np.ndarray | None = None) -> None:
        """Fill R[row, k] for every task k from one evaluation (pixel metrics on seen tasks
        of a dataset with masks only), and the routing figures where the model routed."""
        test = self.test
        if routes is not None:
            for key, value in routing_row(routes, test, self.num_tasks, row + 1).items():
                self.routing[key].append(value)
        self.arrays[f"maps_t{row}"] = self._kept(maps, row)
        figures = evaluation_row(maps, scores, test, self.num_tasks, row + 1, self.has_masks)
        for k, values in enumerate(figures):
            for metric, value in values.items():
                self.R[metric][row, k] = value
        self.ties += tied_classes(scores, self.class_names, test.task_of, row)
        self.rows.append(pd.DataFrame({
            "after_task": row, "task": test.task_of, "class_name": self.class_names,
            "path": [str(s.path) for s in test.samples], "label": test.labels,
            "has_mask": test.has_mask, "image_score": scores, "row": np.arange(len(scores)),
        }))

    def _kept(self, maps: np.ndarray, row: int) -> np.ndarray:
        """A phase's maps moved to disk and memory-mapped for the scores file: a cell holds
        one phase's maps, not one per phase (15 x 0.9 GB at MVTec's 512 px)."""
        if self._spill is None:
            return maps
        path = Path(self._spill.name) / f"maps_t{row}.npy"
        np.save(path, maps)
        return np.load(path, mmap_mode="r")

    def close(self) -> None:
        if self._spill is not None:
            self._spill.cleanup()


def start_cell(spec: CellSpec, env: CellEnv, cid: str) -> CellContext:
    """Build the model and the strategy, read the test features, open the record. The
    strategy sees the training sets without their calibration images (calibration.py)."""
    model_class = get_model_class(spec.model)
    calibration = split_for_calibration(env.dataset, env.scenario.classes,
                                        spec.calibration_split, spec.seed)
    strategy = get_strategy_class(spec.strategy, model_class)(
        build_config(spec.strategy, **spec.strategy_overrides), env.scenario,
        calibration.training, spec.seed, model_class)
    backbone = env.cache.backbone
    model = create_model(spec.model, backbone.feature_info, **spec.overrides).to(env.device)
    record = CellRecord(
        cell_id=cid, status="ok", created=now(), **spec.identity(env.scenario.name, strategy.label),
        tasks=[list(t) for t in env.scenario.tasks], backbone=backbone.describe(),
        config=dataclasses.asdict(model.config),
        run_settings={"strategy": dataclasses.asdict(strategy.config), "autocast": env.autocast,
                      "feature_store": env.cache.choice.describe()},
        environment=environment(env.device), batch_dependent_scores=model.batch_dependent_scores,
        is_flow=model.is_flow)
    test = build_test_set(env.dataset, env.scenario, backbone.input_size)
    ctx = CellContext(spec, env, model, strategy, test, [], record, calibration=calibration)
    with ctx.timed("features"):
        ctx.test_features = env.cache.features(test.samples, desc="test features")
    return ctx


def run_phase(ctx: CellContext, phase: Phase, callbacks: Sequence[Callback],
              global_step: int) -> int:
    """Train one phase (or load the model another cell trained on exactly this, see
    trained.py), let the model finish it, score the test set; returns the steps."""
    env, model = ctx.env, ctx.model
    index = {name: i for i, name in enumerate(env.scenario.classes)}
    model.start_task(phase.model_task, [index[n] for n in phase.new_classes],
                     ctx.strategy.model_mode)
    ctx.strategy.before_phase(model, phase)
    samples = ctx.strategy.training_samples(phase)
    ctx.held = samples
    with ctx.timed("features"):
        feats = env.cache.features(samples, desc="train features")
    ids = env.class_ids(samples)
    for callback in callbacks:
        callback.before_phase(ctx, phase)
    ctx.record.cost.params_trainable.append(count_parameters(model)[1])
    shared = (None if ctx.spec.training_key is None
              else trained_path(env.results_dir, ctx.spec.training_key))
    trained = None if shared is None else load_trained(shared, env.device)
    if trained is None:
        started = time.perf_counter()
        with ctx.timed("training"):
            steps = train_phase(model, feats, ids, phase.model_task, ctx.spec.seed, env.device,
                                global_step, env.show_progress,
                                ctx.strategy.max_steps(phase, samples, model)).steps
            with torch.no_grad():  # part of learning the task (a memory bank is fitted here)
                model.finish_task(feats, ids)
        seconds = time.perf_counter() - started
        if shared is not None:  # a file that cannot be written only costs later cells time
            save_trained(shared, model, steps, seconds, ctx.record.cell_id)
    else:
        trained.load_into(model)
        trained.restore_random_state()
        steps, seconds, ctx.record.trained_in = trained.steps, trained.seconds, trained.cell_id
    ctx.record.cost.train_time_s.append(seconds)  # where it was trained
    ctx.record.cost.state_mb.append(weights_mb(model))  # grows with memory banks, tables
    test_ids = torch.from_numpy(ctx.test.class_ids) if ctx.spec.task_aware else None
    with ctx.timed("evaluation"):
        # routing is measured where it happens: task-agnostic evaluation only
        ctx.maps, ctx.scores, ctx.routes = score_and_route_all(
            model, ctx.test_features, test_ids, env.device, env.eval_batch_size, env.autocast)
    if not (np.isfinite(ctx.scores).all() and np.isfinite(ctx.maps).all()):
        raise DivergedError(phase.row, steps, "non-finite anomaly scores")
    return steps


def finish_cell(ctx: CellContext, evaluations: Evaluations) -> None:
    """Summaries, per-class figures of the final evaluation, scores on disk."""
    record = ctx.record
    record.dataset = {"name": ctx.env.dataset.name, "has_masks": evaluations.has_masks}
    record.R = dict(evaluations.R)
    record.summary = {m: summarize(evaluations.R[m]) for m in summarised_keys()}
    record.ties = evaluations.ties
    if evaluations.routing["confusion"]:
        record.routing = evaluations.routing
    record.cost.feature_time_s = ctx.env.cache.extraction_seconds
    record.cost.params_total = count_parameters(ctx.model)[0]
    if record.ok:
        with ctx.timed("metrics"):
            record.per_class = per_class_metrics(ctx.maps, ctx.scores, ctx.test,
                                                 evaluations.has_masks)
    if evaluations.rows:
        with ctx.timed("io"):
            record.scores = write_scores(ctx.env.results_dir, record.cell_id,
                                         pd.concat(evaluations.rows), evaluations.arrays)


def run_cell(
    spec: CellSpec, env: CellEnv, cid: str, callbacks: Sequence[Callback] = ()
) -> CellRecord:
    """Run one cell end to end and return its record (scores are written beside it). A NaN
    or inf makes it a failed record carrying its task and step; the rows already computed
    are kept."""
    torch.manual_seed(spec.seed)
    np.random.seed(spec.seed)
    started = time.perf_counter()
    ctx = start_cell(spec, env, cid)
    for callback in callbacks:
        callback.on_cell_start(ctx)
    evaluations = Evaluations(ctx.test, env.scenario.num_tasks, env.results_dir)
    global_step = 0
    for phase in ctx.strategy.phases():
        try:
            global_step += run_phase(ctx, phase, callbacks, global_step)
        except DivergedError as err:
            ctx.record.status = "failed"
            ctx.record.error = ErrorInfo("Diverged", str(err), err.task, err.step)
            break
        with ctx.timed("metrics"):
            evaluations.add(phase.row, ctx.maps, ctx.scores, ctx.routes)
        ctx.strategy.after_phase(ctx.model, phase)
        for callback in callbacks:
            callback.after_phase(ctx, phase)
    finish_cell(ctx, evaluations)
    evaluations.close()
    for callback in callbacks:
        callback.on_cell_end(ctx)
    ctx.record.wall_time_s = time.perf_counter() - started
    return ctx.record
