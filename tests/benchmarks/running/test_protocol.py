"""The protocol on the feature store: bounded host memory, and the same records whichever
store serves the features."""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from conftest import make_tiny_mvtec

from nfbench.benchmarks.running.runner import run_grid
from nfbench.models.backbone import Backbone
from nfbench.models.feature_cache import bytes_per_image

pytestmark = pytest.mark.slow

BUDGET = 6_000_000  # bytes of numpy buffers the grid may hold at once
IMAGES = 2 * (90 + 4)


@pytest.fixture
def larger_request(tmp_path, tiny_request):
    """188 images at 128 px: 16 MB of float16 features, over twice the budget."""
    data = make_tiny_mvtec(tmp_path / "larger", size=128, n_train=90, n_good=2, n_bad=2)
    return dataclasses.replace(
        tiny_request, data_root=data, input_size=128, strategies=["joint"],
        model_overrides={"fastflow": {"epochs": 1, "flow_steps": 2, "batch_size": 4}})


def _peak_traced(request) -> int:
    """Peak bytes allocated through Python's and numpy's allocators while the grid runs (the
    store's buffers are numpy arrays; torch's own allocator is not traced)."""
    tracemalloc.start()
    try:
        [record] = run_grid(request, show_progress=False)
        assert record.status == "ok", record.error
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_host_memory_stays_under_the_budget_when_features_exceed_it(larger_request):
    per_image = bytes_per_image(Backbone("efficientnet_lite0", input_size=128).feature_info)
    assert IMAGES * per_image > 2.5 * BUDGET
    held = _peak_traced(dataclasses.replace(larger_request, feature_store="memory"))
    assert held > IMAGES * per_image  # the control: held features are what is measured
    for store in ("disk", "recompute"):
        results = larger_request.results_dir.parent / f"results-{store}"
        request = dataclasses.replace(larger_request, feature_store=store, results_dir=results)
        assert _peak_traced(request) < BUDGET, store


def test_recompute_gives_the_records_of_the_disk_store(tiny_request):
    records = {}
    for store in ("disk", "recompute"):
        request = dataclasses.replace(tiny_request, feature_store=store,
                                      results_dir=tiny_request.results_dir / store)
        [record] = run_grid(request, show_progress=False)
        assert record.run_settings["feature_store"] == {"mode": store, "reason": "asked for"}
        records[store] = (record, pd.read_csv(request.results_dir / record.scores["csv"]))
    (disk, disk_scores), (again, again_scores) = records["disk"], records["recompute"]
    for metric, R in disk.R.items():
        np.testing.assert_array_equal(np.array(R, float), np.array(again.R[metric], float))
    pd.testing.assert_frame_equal(disk_scores, again_scores)


def test_auto_says_what_it_chose(tiny_request):
    [record] = run_grid(tiny_request, show_progress=False)
    store = record.run_settings["feature_store"]
    assert store["mode"] == "disk" and store["reason"].startswith("auto:")
