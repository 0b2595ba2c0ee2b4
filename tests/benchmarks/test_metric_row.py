"""A new metric is one registered row: records, tables, bootstrap intervals and tune get it
with no other edit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from nfbench.benchmarks.commands.tune import summarize_values, tuned_metrics
from nfbench.benchmarks.measuring import metrics
from nfbench.benchmarks.measuring import statistics as st
from nfbench.benchmarks.report import write_report
from nfbench.benchmarks.running.runner import run_grid


def _slow_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(roc_auc_score(labels, scores))


@pytest.fixture
def extra_metric(monkeypatch):
    """image AUROC again, registered without vectorised replicates: its intervals come from
    the generic path (compute on every resampled set), so they must equal image AUROC's."""
    monkeypatch.setattr(metrics.METRICS, "_entries", dict(metrics.METRICS._entries))
    return metrics.register_metric(metrics.MetricSpec(
        "image_auroc_again", "image AUROC again", "img AUROC again", "image", _slow_auroc,
        summarised=True))


@pytest.mark.slow
def test_a_registered_metric_reaches_records_tables_intervals_and_tune(
        extra_metric, tiny_request, tmp_path):
    key = extra_metric.key
    records = run_grid(tiny_request, show_progress=False)
    [record] = records
    assert record.ok
    np.testing.assert_array_equal(record.R[key], record.R["image_auroc"])  # records
    assert record.summary[key] == record.summary["image_auroc"]
    assert all(v[key] == v["image_auroc"] for v in record.per_class.values())

    cell = st.load_cell_scores(tiny_request.results_dir, record)
    counts = st.stratified_counts(cell.strata, n_boot=200)
    replicates = st.bootstrap_cell(cell, counts, pixel=False)  # intervals
    np.testing.assert_allclose(replicates[key], replicates["image_auroc"], equal_nan=True)

    write_report(tiny_request.results_dir, tmp_path / "report")  # tables
    board = pd.read_csv(tmp_path / "report" / "csv" / "leaderboard.csv")
    for suffix in ("__mean", "__blo", "__bhi"):
        assert board[f"{key}_acc{suffix}"].tolist() == board[f"image_auroc_acc{suffix}"].tolist()
    assert np.isfinite(board[f"{key}_acc__blo"]).all()

    assert (key, extra_metric.label) in tuned_metrics()  # tune
    table = summarize_values("lr", [{"label": "1e-3", "records": records}])
    assert table[f"{extra_metric.label} ACC"].tolist() == table["image AUROC ACC"].tolist()
