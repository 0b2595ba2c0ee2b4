"""joint on the same classes is trained once across scenarios, and its records are the ones
retraining gives (running/trained.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from conftest import make_tiny_mvtec

from nfbench.benchmarks.running.runner import run_grid
from nfbench.models.registry import available_models

pytestmark = pytest.mark.slow

SAME_AS_RETRAINING = ("R", "summary", "per_class", "thresholds", "routing", "ties", "tasks",
                      "config", "run_settings")


NATIVE = [m for m in available_models() if "." not in m]  # not the anomalib.* references


@pytest.fixture
def four_classes(tiny_request, tmp_path):
    root = make_tiny_mvtec(tmp_path / "four", classes=("alpha", "beta", "gamma", "delta"))
    return dataclasses.replace(
        tiny_request, data_root=root, models=["fastflow"], strategies=["joint"],
        scenario=["folder:4x1", "folder:2x2"],
        model_overrides={"fastflow": {"epochs": 2, "flow_steps": 2, "batch_size": 3}})


@pytest.mark.parametrize("model", NATIVE)
def test_joint_trains_once_and_matches_retraining(model, four_classes, tmp_path):
    """Every native model: the second scenario loads the first's trained model, and its
    record, scores and maps are the ones retraining in a fresh results folder gives."""
    request = dataclasses.replace(four_classes, models=[model], model_overrides={
        model: {"epochs": 2, "batch_size": 4} if model != "patchcore" else {}})
    first, second = run_grid(request, show_progress=False)
    assert first.ok and second.ok, (first.error, second.error)
    assert first.trained_in is None and second.trained_in == first.cell_id
    assert second.cost.train_time_s == first.cost.train_time_s  # the training's own cost
    assert "training" not in second.timings  # nothing trained here
    assert len(list((request.results_dir / "trained").glob("*.pt"))) == 1

    alone = dataclasses.replace(request, scenario="folder:2x2",
                                results_dir=tmp_path / "alone", cache_dir=tmp_path / "c2")
    [retrained] = run_grid(alone, show_progress=False)
    assert retrained.trained_in is None and retrained.cell_id == second.cell_id
    for name in SAME_AS_RETRAINING:
        assert getattr(second, name) == getattr(retrained, name), name
    pd.testing.assert_frame_equal(pd.read_csv(request.results_dir / second.scores["csv"]),
                                  pd.read_csv(alone.results_dir / retrained.scores["csv"]))
    with (np.load(request.results_dir / second.scores["maps"]) as a,
          np.load(alone.results_dir / retrained.scores["maps"]) as b):
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


def test_only_the_same_classes_in_the_same_order_share(four_classes):
    def run(tasks: str):
        request = dataclasses.replace(four_classes, models=["fastflow"], scenario="folder",
                                      tasks=tasks)
        [record] = run_grid(request, show_progress=False)
        return record

    first = run("alpha;beta")
    assert run("beta;alpha").trained_in is None  # another class order: trained again
    assert run("alpha;beta;gamma").trained_in is None  # other classes: trained again
    assert run("alpha,beta").trained_in == first.cell_id  # one task of the same two classes
