"""joint on the same classes is trained once across scenarios, and its records are the ones
retraining gives (running/trained.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from conftest import make_tiny_mvtec

from nfbench.benchmarks.running.runner import run_grid

pytestmark = pytest.mark.slow

SAME_AS_RETRAINING = ("R", "summary", "per_class", "thresholds", "routing", "ties", "tasks",
                      "config", "run_settings")


@pytest.fixture
def four_classes(tiny_request, tmp_path):
    root = make_tiny_mvtec(tmp_path / "four", classes=("alpha", "beta", "gamma", "delta"))
    return dataclasses.replace(
        tiny_request, data_root=root, models=["fastflow", "patchcore"], strategies=["joint"],
        scenario=["folder:4x1", "folder:2x2"],
        model_overrides={"fastflow": {"epochs": 2, "flow_steps": 2, "batch_size": 3},
                         "patchcore": {"coreset_ratio": 0.5}})


def test_joint_trains_once_and_matches_retraining(four_classes, tmp_path):
    shared = {(r.model, r.scenario): r for r in run_grid(four_classes, show_progress=False)}
    for model in ("fastflow", "patchcore"):
        first, second = shared[model, "folder:4x1"], shared[model, "folder:2x2"]
        assert first.ok and second.ok
        assert first.trained_in is None and second.trained_in == first.cell_id
        assert second.cost.train_time_s == first.cost.train_time_s  # the training's own cost
        assert "training" not in second.timings  # nothing trained here
    assert len(list((four_classes.results_dir / "trained").glob("*.pt"))) == 2

    alone = dataclasses.replace(four_classes, scenario="folder:2x2",
                                results_dir=tmp_path / "alone", cache_dir=tmp_path / "c2")
    for retrained in run_grid(alone, show_progress=False):
        derived = shared[retrained.model, "folder:2x2"]
        assert retrained.trained_in is None and retrained.cell_id == derived.cell_id
        for name in SAME_AS_RETRAINING:
            assert getattr(derived, name) == getattr(retrained, name), (retrained.model, name)
        pd.testing.assert_frame_equal(
            pd.read_csv(four_classes.results_dir / derived.scores["csv"]),
            pd.read_csv(alone.results_dir / retrained.scores["csv"]))
        with (np.load(four_classes.results_dir / derived.scores["maps"]) as a,
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
