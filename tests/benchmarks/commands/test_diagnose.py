"""Diagnostics: drift and entropy change on literal inputs; the observer's freeze is real."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from nfbench.benchmarks.commands.diagnose import (
    DiagnosticObserver,
    drift_table,
    entropy_changes,
    run_diagnostics,
)
from nfbench.benchmarks.measuring.evaluate import EvalSet
from nfbench.benchmarks.running.runner import run_grid


def test_drift_is_relative_l2_and_ignores_grown_rows():
    snapshots = [
        {"flow": torch.tensor([3.0, 4.0]), "mus": torch.tensor([1.0, 0.0])},
        # flow moves by (0, 1): ||d|| / ||theta|| = 1 / 5; mus grows a row (ignored) and
        # its old rows move by (0, 2): 2 / 1
        {"flow": torch.tensor([3.0, 5.0]), "mus": torch.tensor([1.0, 2.0, 9.0])},
    ]
    table = drift_table("m", snapshots).set_index("group")
    assert table.loc["flow", "relative_drift"] == pytest.approx(0.2)
    assert table.loc["mus", "relative_drift"] == pytest.approx(2.0)
    assert table.loc["flow", "rms_change"] == pytest.approx(1 / 2**0.5)
    assert set(table["to_task"]) == {2}


def test_entropy_change_uses_old_tasks_only_split_by_label():
    test = EvalSet(samples=[], task_of=np.array([0, 0, 1, 1]), class_ids=np.array([0, 0, 1, 1]),
                   labels=np.array([0, 1, 0, 1]), has_mask=np.ones(4, bool),
                   masks=np.zeros((4, 1, 1), bool))
    entropy = [np.array([0.5, 0.2, 9.0, 9.0]), np.array([0.1, 0.9, 0.0, 0.0])]
    table = entropy_changes(entropy, test).set_index("samples")
    assert table.loc["normal", "delta_H"] == pytest.approx(0.1 - 0.5)
    assert table.loc["anomalous", "delta_H"] == pytest.approx(0.9 - 0.2)
    assert set(table["after_task"]) == {2}


@pytest.mark.slow
def test_observer_freezes_groups_after_the_first_task(tiny_request):
    observer = DiagnosticObserver(freeze=("flow_level0",))
    request = dataclasses.replace(tiny_request)
    [record] = run_grid(request, show_progress=False, callbacks=[observer], resume=False)
    assert record.ok
    first, second = observer.snapshots
    assert torch.equal(first["flow_level0"], second["flow_level0"])
    assert not torch.equal(first["flow_level1"], second["flow_level1"])
    assert set(observer.latents) == {0, 1}  # one pooled latent per test image after each task
    assert observer.latents[1].shape[0] == len(observer.test.samples)


@pytest.mark.slow
def test_run_diagnostics_runs_hgads_freeze_ablation_under_finetune(tiny_request, tmp_path):
    """HGAD's mechanism acts under every strategy, so the grid skips its 'own' cell; the
    diagnostics must run it as finetune instead of plotting four skipped cells."""
    request = dataclasses.replace(
        tiny_request, models=["hgad"], strategies=["own"],
        model_overrides={"hgad": {"epochs": 1, "batch_size": 4}})
    written = {p.name for p in run_diagnostics(request, tmp_path / "diag")}
    assert {"drift.csv", "freeze_ablation_hgad.csv", "freeze_ablation_hgad.png"} <= written
    table = pd.read_csv(tmp_path / "diag" / "freeze_ablation_hgad.csv")
    assert list(table.status) == ["ok"] * 4 and table["acc"].notna().all()
