"""End to end on a tiny dataset: records, recomputation, resume, failures, strategies."""

from __future__ import annotations

import dataclasses
import json
import os
import stat

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from nfbench.benchmarks.measuring.forgetting import summarize
from nfbench.benchmarks.report import write_report
from nfbench.benchmarks.running import cell, protocol
from nfbench.benchmarks.running.runner import run_grid
from nfbench.datasets.base import DatasetError
from nfbench.models.base import LossTerms
from nfbench.models.fastflow.model import FastFlow
from nfbench.models.feature_cache import FeatureCache

pytestmark = pytest.mark.slow


def test_cell_record_is_complete_and_recomputable(tiny_request):
    request = dataclasses.replace(tiny_request, measure_cost=True)
    [record] = run_grid(request, show_progress=False)
    assert record.status == "ok", record.error
    assert record.schema_version == 3 and record.tasks == [["alpha"], ["beta"]]
    assert record.routing is None  # fastflow does not route: n/a
    R = np.array(record.R["image_auroc"], dtype=float)
    assert R.shape == (2, 2) and np.isfinite(R).all()  # k > t recorded too (unseen)
    for key in ("latency_ms_p50", "latency_ms_p95", "throughput_img_s", "memory_mb_batch1",
                "memory_mb_batch32"):
        assert getattr(record.cost, key) > 0
    assert record.cost.memory_kind == "cpu_torch_alloc"
    assert record.dataset == {"name": "folder", "has_masks": True}
    assert len(record.cost.train_time_s) == 2

    # every AUROC figure recomputes from the stored per-sample scores with scikit-learn
    scores = pd.read_csv(request.results_dir / record.scores["csv"])
    npz = np.load(request.results_dir / record.scores["maps"])
    recomputed = np.full((2, 2), np.nan)
    for (t, k), rows in scores.groupby(["after_task", "task"]):
        recomputed[t, k] = roc_auc_score(rows["label"], rows["image_score"])
        maps = npz[f"maps_t{t}"][rows["row"].to_numpy()].astype(np.float32)
        masks = npz["masks"][rows["row"].to_numpy()]
        stored = record.R["pixel_auroc"][t][k]
        if k > t:  # unseen task: image metrics only
            assert stored is None
            continue
        pixel = roc_auc_score(masks.ravel(), maps.ravel())
        assert pixel == pytest.approx(stored, abs=1e-6)
    np.testing.assert_allclose(recomputed, R, atol=1e-6)
    expected = summarize(recomputed)
    for key in ("acc", "fm", "bwt"):
        assert record.summary["image_auroc"][key] == pytest.approx(expected[key], abs=1e-6)


def test_rerun_skips_finished_cells(tiny_request, monkeypatch):
    run_grid(tiny_request, show_progress=False)

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished cell was run again")

    monkeypatch.setattr("nfbench.benchmarks.running.cell.run_cell", must_not_run)
    [record] = run_grid(tiny_request, show_progress=False)
    assert record.status == "ok"


def test_divergence_is_a_recorded_failure(tiny_request, monkeypatch):
    original = FastFlow.training_loss

    def nan_loss(self, features, class_ids, progress):
        real = original(self, features, class_ids, progress)
        if progress.task_index == 1:
            return LossTerms(real.total * torch.tensor(float("nan")), {})
        return real

    monkeypatch.setattr(FastFlow, "training_loss", nan_loss)
    [record] = run_grid(tiny_request, show_progress=False)
    assert record.status == "failed"
    assert record.error.type == "Diverged" and record.error.task == 1
    assert record.error.step == 0
    # the first task's results are kept, not lost
    assert record.R["image_auroc"][0][0] is not None
    assert record.R["image_auroc"][1][1] is None
    stored = json.loads((tiny_request.results_dir / "cells" / f"{record.cell_id}.json")
                        .read_text())
    assert stored["status"] == "failed"


def test_strategies_fill_the_expected_rows(tiny_request):
    request = dataclasses.replace(tiny_request, strategies=["replay", "joint"],
                                  strategy_overrides={"replay": {"per_class": 2}})
    replay, joint = run_grid(request, show_progress=False)
    assert replay.strategy == "replay" and joint.strategy == "joint"
    assert all(v is not None for v in replay.R["image_auroc"][1])
    assert joint.R["image_auroc"][0] == [None, None]  # joint trains once: last row only
    assert joint.summary["image_auroc"]["fm"] is None
    assert joint.summary["image_auroc"]["acc"] is not None


def test_replay_buffer_adds_old_class_images(tiny_request, monkeypatch):
    seen = []
    real = protocol.train_phase

    def spy(model, features, class_ids, *args, **kwargs):
        seen.append(class_ids.tolist())
        return real(model, features, class_ids, *args, **kwargs)

    monkeypatch.setattr(protocol, "train_phase", spy)
    request = dataclasses.replace(tiny_request, strategies=["replay"],
                                  strategy_overrides={"replay": {"per_class": 2}})
    run_grid(request, show_progress=False)
    assert seen[0] == [0] * 5  # 6 training images, 1 held out for calibration
    assert sorted(seen[1]) == [0, 0] + [1] * 5


def test_inference_cost_is_measured_once_per_variant_and_model_size(tiny_request):
    request = dataclasses.replace(tiny_request, strategies=["finetune", "joint"], seeds=[0, 1],
                                  measure_cost=True)
    fine0, fine1, joint0, joint1 = run_grid(request, show_progress=False)
    assert fine0.cost.latency_ms_p50 > 0 and fine0.cost.concurrent_cells == 1
    assert fine1.cost.latency_ms_p50 == fine0.cost.latency_ms_p50
    assert fine1.cost.cost_measured_in == fine0.cell_id
    assert fine1.cost.train_time_s != fine0.cost.train_time_s  # own training
    # a flow ends at the same size under every strategy: joint reuses it too
    assert joint0.cost.cost_measured_in == joint1.cost.cost_measured_in == fine0.cell_id
    bank = dataclasses.replace(request, models=["patchcore"], strategies=["finetune", "own"],
                               seeds=[0], model_overrides={}, results_dir=request.results_dir / "p")
    finetune, own = run_grid(bank, show_progress=False)
    assert own.cost.state_mb[-1] > finetune.cost.state_mb[-1]  # one coreset per task kept
    assert own.cost.cost_measured_in != finetune.cell_id  # a bigger bank: measured again
    again = run_grid(dataclasses.replace(request, results_dir=request.results_dir / "b"),
                     show_progress=False)
    assert again[0].cost.cost_measured_in != fine0.cell_id  # never reused across grids


def test_a_truncated_image_stops_the_grid_before_any_training(tiny_request, tiny_data,
                                                              monkeypatch):
    bad = tiny_data / "beta" / "test" / "spot" / "001.png"
    bad.write_bytes(bad.read_bytes()[:200])  # the header still opens: only a full decode fails

    def never(*args, **kwargs):
        raise AssertionError("the grid went past validation with a truncated image")

    monkeypatch.setattr(cell, "Backbone", never)
    monkeypatch.setattr(protocol, "train_phase", never)
    with pytest.raises(DatasetError, match="unreadable image") as err:
        run_grid(tiny_request, show_progress=False)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    assert not (tiny_request.results_dir / "cells").exists()


def test_thresholds_are_calibrated_on_what_the_learner_holds(tiny_request):
    request = dataclasses.replace(tiny_request, strategies=["finetune", "replay", "joint"],
                                  strategy_overrides={"replay": {"per_class": 2}},
                                  calibration_split=0.0)
    finetune, replay, joint = run_grid(request, show_progress=False)
    # split 0: calibrated on the training images themselves. 6 per class: finetune holds the
    # last task only, replay adds 2 of the old class, joint holds both classes
    assert finetune.threshold_calibration["images"] == 6
    assert replay.threshold_calibration["images"] == 8
    assert "replay buffer" in replay.threshold_calibration["source"]
    assert joint.threshold_calibration["images"] == 12
    assert joint.threshold_calibration["split"] == 0.0
    assert "no calibration split" in joint.threshold_calibration["source"]


def _spy_features(monkeypatch) -> dict[str, set]:
    """The image paths the feature cache was asked for, by what they were asked for."""
    asked: dict[str, set] = {}
    real = FeatureCache.features

    def spy(self, samples, desc="features"):
        asked.setdefault(desc, set()).update(str(s.path) for s in samples)
        return real(self, samples, desc)

    monkeypatch.setattr(FeatureCache, "features", spy)
    return asked


def test_thresholds_are_calibrated_on_a_split_training_never_sees(tiny_request, monkeypatch):
    asked = _spy_features(monkeypatch)
    request = dataclasses.replace(tiny_request, strategies=["finetune", "replay", "joint"],
                                  strategy_overrides={"replay": {"per_class": 2}})
    assert request.calibration_split == 0.1  # the default
    finetune, replay, joint = run_grid(request, show_progress=False)
    # 6 training images per class: 1 held out of each; a replayed class keeps its own
    assert finetune.threshold_calibration["images"] == 1
    assert replay.threshold_calibration["images"] == 2
    assert joint.threshold_calibration["images"] == 2
    assert "10% calibration split held out of" in replay.threshold_calibration["source"]
    assert replay.threshold_calibration["split"] == 0.1
    assert asked["calibration scores"] and not asked["calibration scores"] & asked["train features"]
    old = run_grid(dataclasses.replace(request, calibration_split=0.0), show_progress=False)
    assert {r.cell_id for r in old}.isdisjoint(r.cell_id for r in (finetune, replay, joint))


def test_own_without_a_mechanism_is_a_reported_skip(tiny_request, capsys):
    request = dataclasses.replace(
        tiny_request, models=["fastflow", "ccnf"], strategies=["own"],
        model_overrides={**tiny_request.model_overrides, "ccnf": {"epochs": 1}})
    skipped, ccnf = run_grid(request, show_progress=False)
    assert skipped.status == "skipped" and "no continual mechanism" in skipped.skip_reason
    assert ccnf.status == "ok" and ccnf.strategy == "ccnf"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("skipped fastflow[") and "/own/s0: " in err
    stored = json.loads((request.results_dir / "cells" / f"{skipped.cell_id}.json")
                        .read_text())
    assert stored["status"] == "skipped"  # the report reads it from disk


def test_result_files_respect_the_umask(tiny_request):
    old = os.umask(0o022)
    try:
        [record] = run_grid(tiny_request, show_progress=False)
    finally:
        os.umask(old)
    results = tiny_request.results_dir
    for path in (results / "cells" / f"{record.cell_id}.json",
                 results / record.scores["csv"], results / record.scores["maps"]):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_a_dataset_without_masks_says_so_and_measures_no_pixel_metric(tiny_request, tiny_data):
    for mask in tiny_data.glob("*/ground_truth/*/*.png"):
        mask.unlink()
    [record] = run_grid(tiny_request, show_progress=False)
    assert record.status == "ok"
    assert record.dataset["has_masks"] is False
    assert record.R["image_auroc"][1][1] is not None
    assert all(v is None for row in record.R["pixel_auroc"] for v in row)
    assert record.summary["pixel_aupro"]["acc"] is None


def test_tied_image_scores_are_flagged_in_the_record(tiny_request, monkeypatch):
    """A score that saturates (every image of a class on one value) is recorded as a tie of
    each seen class, after each task; the unseen task is not flagged."""
    original = FastFlow.score

    def saturated(self, features, class_ids):
        out = original(self, features, class_ids)
        return type(out)(out.maps, torch.ones_like(out.image_scores))

    monkeypatch.setattr(FastFlow, "score", saturated)
    [record] = run_grid(tiny_request, show_progress=False)
    seen = [(f["after_task"], f["class"], f["share"], f["value"]) for f in record.ties]
    assert seen == [(0, "alpha", 1.0, 1.0), (1, "alpha", 1.0, 1.0), (1, "beta", 1.0, 1.0)]


def test_maps_beyond_float16_are_stored_in_float32_measured_and_reported(tiny_request, tmp_path,
                                                                          monkeypatch):
    """Maps beyond float16's range (a CCNF on a random-init WideResNet, issue 14) are stored as
    float32, measured exactly, and the report (pixel bootstrap, anomaly-map figure) reads them
    as they are: once it cast them back to float16, i.e. inf, and stopped with a traceback."""
    original = FastFlow.score

    def large(self, features, class_ids):
        out = original(self, features, class_ids)
        return type(out)(out.maps * 1e6, out.image_scores * 1e6)  # finite, beyond float16

    monkeypatch.setattr(FastFlow, "score", large)
    [record] = run_grid(tiny_request, show_progress=False)
    assert record.ok
    npz = np.load(tiny_request.results_dir / record.scores["maps"])
    maps = npz["maps_t1"]
    assert maps.dtype == np.float32 and np.abs(maps).max() > 65504  # nothing saturated
    scores = pd.read_csv(tiny_request.results_dir / record.scores["csv"])
    rows = scores[(scores.after_task == 1) & (scores.task == 1)]["row"].to_numpy()
    pixel = roc_auc_score(npz["masks"][rows].ravel(), maps[rows].ravel())
    assert record.R["pixel_auroc"][1][1] == pytest.approx(pixel, abs=1e-9)
    out = tmp_path / "report"
    write_report(tiny_request.results_dir, out)
    board = pd.read_csv(out / "csv" / "leaderboard.csv")  # its bootstrap interval, from the
    low, high = board["pixel_auroc_acc__blo"].iloc[0], board["pixel_auroc_acc__bhi"].iloc[0]
    assert np.isfinite(low) and np.isfinite(high) and low <= high  # float32 maps
    assert (out / "plots" / "anomaly_maps.png").is_file()
