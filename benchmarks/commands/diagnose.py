"""`nfbench diagnose`: seed 001's pilot experiments, for any model with named parameter groups.

- drift: relative L2 change of each parameter group between consecutive tasks;
- freeze ablation, for every model that declares two `ablation_groups` (e.g. flow and GMM):
  each group updated or frozen after task 1, with ACC, FM and the entropy change of p(y|x) on
  normal and on anomalous test images of old tasks;
- dH per task for class-conditional models with a class posterior;
- t-SNE of per-image latents, coloured by class, after the first and the last task.
Each writes a CSV and a PNG under reports/diagnostics/.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nfbench.benchmarks.measuring.evaluate import EvalSet
from nfbench.benchmarks.records.record import CellRecord
from nfbench.benchmarks.report.diagnostic_plots import (
    plot_ablation,
    plot_drift,
    plot_entropy,
    plot_tsne,
)
from nfbench.benchmarks.running.callbacks import Callback
from nfbench.benchmarks.running.context import CellContext
from nfbench.benchmarks.running.runner import RunRequest, run_grid
from nfbench.benchmarks.running.strategies import (
    DEFAULT_STRATEGY,
    Phase,
    get_strategy_class,
    mechanism_strategy,
)
from nfbench.models.base import FlowADModel
from nfbench.models.capabilities import HasClassPosterior, HasLatents
from nfbench.models.registry import get_model_class


def pooled_latents(model: HasLatents, features: list[torch.Tensor]) -> np.ndarray:
    """One vector per image: the deepest level's latent map averaged over positions."""
    return model.latents(features)[-1].mean(dim=(2, 3)).detach().cpu().numpy()


class DiagnosticObserver(Callback):
    """Collects drift snapshots, posterior entropies and latents phase by phase; optionally
    freezes named parameter groups from the second task on (the freeze ablation)."""

    def __init__(self, freeze: tuple[str, ...] = (), batch_size: int = 32) -> None:
        self.freeze = freeze
        self.batch_size = batch_size
        self.snapshots: list[dict[str, torch.Tensor]] = []
        self.entropy: list[np.ndarray] = []
        self.latents: dict[int, np.ndarray] = {}
        self.test: EvalSet | None = None

    def _groups(self, model: FlowADModel) -> dict[str, list[torch.Tensor]]:
        return model.diagnostic_groups()

    def before_phase(self, ctx: CellContext, phase: Phase) -> None:
        if phase.row == 0 or not self.freeze:
            return
        for name, params in self._groups(ctx.model).items():
            if any(name == f or name.startswith(f) for f in self.freeze):
                for p in params:
                    p.requires_grad_(False)

    @torch.no_grad()
    def after_phase(self, ctx: CellContext, phase: Phase) -> None:
        model, self.test = ctx.model, ctx.test
        self.snapshots.append({name: torch.cat([p.detach().flatten().cpu().clone()
                                                for p in params]) if params else torch.zeros(0)
                               for name, params in self._groups(model).items()})
        entropies, latents = [], []
        for feats, _ in model.iter_batches(ctx.test_features, None, self.batch_size):
            if isinstance(model, HasClassPosterior) and model.class_conditional:
                entropies.append(model.posterior_entropy(feats).cpu().numpy())
            if isinstance(model, HasLatents):
                latents.append(pooled_latents(model, feats))
        if entropies:
            self.entropy.append(np.concatenate(entropies))
        if latents:
            self.latents[phase.row] = np.concatenate(latents)


def drift_table(model: str, snapshots: list[dict[str, torch.Tensor]]) -> pd.DataFrame:
    """||theta_t - theta_{t-1}|| / ||theta_{t-1}|| per group (and the RMS change, which stays
    readable where a group starts near zero, e.g. class weights with one class); groups
    that grew compare the rows that existed before (a new class's centre is growth, not drift)."""
    rows = []
    for t in range(1, len(snapshots)):
        for name, now in snapshots[t].items():
            before = snapshots[t - 1].get(name)
            if before is None or before.numel() == 0:
                continue
            delta = now[: before.numel()] - before
            rel = float(delta.norm() / before.norm().clamp_min(1e-12))
            rms = float(delta.norm() / before.numel() ** 0.5)
            rows.append({"model": model, "group": name, "from_task": t, "to_task": t + 1,
                         "relative_drift": rel, "rms_change": rms})
    return pd.DataFrame(rows)


def entropy_changes(entropy: list[np.ndarray], test: EvalSet) -> pd.DataFrame:
    """dH after each task t >= 2 on old tasks' (k < t) test images, normal vs anomalous."""
    rows = []
    for t in range(1, len(entropy)):
        old = test.task_of < t
        for label, name in ((0, "normal"), (1, "anomalous")):
            sel = old & (test.labels == label)
            delta = float(np.mean(entropy[t][sel] - entropy[t - 1][sel])) if sel.any() else np.nan
            rows.append({"after_task": t + 1, "samples": name, "delta_H": delta})
    return pd.DataFrame(rows)


def _strategy_for(model: str, requested: str | None) -> str:
    """The strategy a diagnostic runs: the requested one (default: the model's own mechanism
    where it has one), or the strategy it would repeat exactly, whose cell the grid runs (a
    mechanism that acts under every strategy is diagnosed under the default strategy)."""
    model_class = get_model_class(model)
    if requested is None:
        requested = mechanism_strategy() if model_class.own_strategy else DEFAULT_STRATEGY
    return get_strategy_class(requested, model_class).equivalent_to(model_class) or requested


def _run(request: RunRequest, model: str, strategy: str,
         observer: DiagnosticObserver) -> CellRecord:
    req = dataclasses.replace(request, models=[model], strategies=[strategy], seeds=[0],
                              measure_cost=False)
    [record] = run_grid(req, show_progress=False, callbacks=[observer], resume=False)
    return record


def run_diagnostics(request: RunRequest, out_dir: Path) -> list[Path]:
    """Run every diagnostic for the request's models; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    drift, entropy, tsne = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        request = dataclasses.replace(request, results_dir=Path(tmp))
        for model in request.models:
            strategy = _strategy_for(model, request.strategies[0] if request.strategies else None)
            observer = DiagnosticObserver()
            record = _run(request, model, strategy, observer)
            if not record.ok:
                why = record.error.message if record.error else record.skip_reason
                print(f"diagnose: {model} / {strategy} {record.status}: {why}")
                continue
            drift.append(drift_table(model, observer.snapshots))
            if observer.entropy:
                entropy.append(entropy_changes(observer.entropy, observer.test).assign(model=model))
            if observer.latents:
                first, last = min(observer.latents), max(observer.latents)
                classes = np.array([s.class_name for s in observer.test.samples])
                tsne[model] = (observer.latents[first], observer.latents[last], classes,
                               observer.test.labels)
        for model in request.models:
            if len(get_model_class(model).ablation_groups) == 2:
                written += freeze_ablation(request, model, out_dir)
    if drift:
        table = pd.concat(drift)
        written += [_csv(table, out_dir / "drift.csv"), plot_drift(table, out_dir / "drift.png")]
    if entropy:
        table = pd.concat(entropy)
        written += [_csv(table, out_dir / "entropy_change.csv"),
                    plot_entropy(table, out_dir / "entropy_change.png")]
    for model, (first, last, classes, labels) in tsne.items():
        written.append(plot_tsne(model, first, last, classes, labels,
                                 out_dir / f"tsne_{model}.png", out_dir / f"tsne_{model}.csv"))
    return written


def freeze_ablation(request: RunRequest, model: str, out_dir: Path) -> list[Path]:
    """The model under its own strategy with each of its two ablation groups (e.g. flow and
    GMM) updated or frozen after task 1."""
    model_class = get_model_class(model)
    (first, first_groups), (second, second_groups) = model_class.ablation_groups.items()
    strategy = _strategy_for(model, None)
    rows = []
    for first_frozen in (False, True):
        for second_frozen in (False, True):
            freeze = (first_groups if first_frozen else ()) + (
                second_groups if second_frozen else ())
            observer = DiagnosticObserver(freeze=freeze)
            record = _run(request, model, strategy, observer)
            label = (f"{first}_{'freeze' if first_frozen else 'update'}_"
                     f"{second}_{'freeze' if second_frozen else 'update'}")
            row = {"model": model, "setting": label, "status": record.status}
            if record.ok:
                dh = entropy_changes(observer.entropy, observer.test)
                row |= {"acc": record.summary_value("image_auroc", "acc"),
                        "fm": record.summary_value("image_auroc", "fm"),
                        "delta_H_normal": dh.loc[dh.samples == "normal", "delta_H"].mean(),
                        "delta_H_anomalous": dh.loc[dh.samples == "anomalous", "delta_H"].mean()}
            rows.append(row)
    table = pd.DataFrame(rows)
    written = [_csv(table, out_dir / f"freeze_ablation_{model}.csv")]
    if "acc" not in table:
        print(f"diagnose: {model}'s freeze ablation has no finished cell "
              f"({', '.join(table.status)}); see {written[0]}")
        return written
    return [*written, plot_ablation(table, out_dir / f"freeze_ablation_{model}.png")]


def _csv(table: pd.DataFrame, path: Path) -> Path:
    table.to_csv(path, index=False)
    return path
