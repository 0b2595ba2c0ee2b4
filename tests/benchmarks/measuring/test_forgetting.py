"""ACC / FM / BWT on literal matrices, answers worked out by hand (tasks 1..T in comments)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nfbench.benchmarks.measuring.forgetting import (
    accuracy,
    backward_transfer,
    forgetting,
    summarize,
)

nan = np.nan


def test_plain_forgetting_3_tasks():
    R = np.array(
        [
            [0.90, nan, nan],
            [0.80, 0.95, nan],
            [0.70, 0.85, 0.90],
        ]
    )
    # ACC = (0.70 + 0.85 + 0.90) / 3 = 2.45 / 3
    # FM: task1 max(0.90, 0.80) - 0.70 = 0.20; task2 max(0.95) - 0.85 = 0.10 -> 0.15
    # BWT: task1 0.70 - 0.90 = -0.20; task2 0.85 - 0.95 = -0.10 -> -0.15
    out = summarize(R)
    assert out["acc"] == pytest.approx(2.45 / 3)
    assert out["fm"] == pytest.approx(0.15)
    assert out["bwt"] == pytest.approx(-0.15)


def test_peak_after_diagonal_and_improvement():
    R = np.array(
        [
            [0.60, nan, nan],
            [0.90, 0.80, nan],
            [0.70, 0.90, 0.50],
        ]
    )
    # ACC = (0.70 + 0.90 + 0.50) / 3 = 0.70
    # FM: task1 max(0.60, 0.90) - 0.70 = 0.20 (peak is after the diagonal);
    #     task2 max(0.80) - 0.90 = -0.10 (improved during task 3)      -> 0.10 / 2 = 0.05
    # BWT: task1 0.70 - 0.60 = 0.10; task2 0.90 - 0.80 = 0.10          -> 0.10
    assert accuracy(R) == pytest.approx(0.70)
    assert forgetting(R) == pytest.approx(0.05)
    assert backward_transfer(R) == pytest.approx(0.10)


def test_future_task_entries_are_ignored():
    # Same as the first matrix, but the t < k entries were recorded (they must not count,
    # even though 1.0 would otherwise be the max for FM).
    R = np.array(
        [
            [0.90, 1.00, 0.10],
            [0.80, 0.95, 1.00],
            [0.70, 0.85, 0.90],
        ]
    )
    out = summarize(R)
    assert out["acc"] == pytest.approx(2.45 / 3)
    assert out["fm"] == pytest.approx(0.15)
    assert out["bwt"] == pytest.approx(-0.15)


def test_four_tasks():
    R = np.array(
        [
            [0.90, nan, nan, nan],
            [0.85, 0.80, nan, nan],
            [0.95, 0.70, 0.60, nan],
            [0.75, 0.70, 0.65, 1.00],
        ]
    )
    # ACC = (0.75 + 0.70 + 0.65 + 1.00) / 4 = 3.10 / 4 = 0.775
    # FM: task1 max(0.90, 0.85, 0.95) - 0.75 = 0.20
    #     task2 max(0.80, 0.70) - 0.70       = 0.10
    #     task3 max(0.60) - 0.65             = -0.05   -> 0.25 / 3
    # BWT: 0.75 - 0.90 = -0.15; 0.70 - 0.80 = -0.10; 0.65 - 0.60 = 0.05 -> -0.20 / 3
    out = summarize(R)
    assert out["acc"] == pytest.approx(0.775)
    assert out["fm"] == pytest.approx(0.25 / 3)
    assert out["bwt"] == pytest.approx(-0.20 / 3)


def test_single_task_has_no_fm_or_bwt():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = summarize(np.array([[0.8]]))
    assert out["acc"] == pytest.approx(0.8)
    assert np.isnan(out["fm"]) and np.isnan(out["bwt"])


def test_joint_only_last_row_filled():
    R = np.array(
        [
            [nan, nan, nan],
            [nan, nan, nan],
            [0.70, 0.80, 0.90],
        ]
    )
    # ACC = (0.70 + 0.80 + 0.90) / 3 = 0.80; nothing before the last row -> FM, BWT NaN
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Mean of empty slice" / "All-NaN slice"
        out = summarize(R)
    assert out["acc"] == pytest.approx(0.80)
    assert np.isnan(out["fm"]) and np.isnan(out["bwt"])


def test_missing_entries_are_skipped():
    # Task 2's metric is undefined (e.g. no masks): its column is NaN throughout.
    R = np.array(
        [
            [0.90, nan, nan],
            [0.80, nan, nan],
            [0.60, nan, 0.70],
        ]
    )
    # ACC = (0.60 + 0.70) / 2 = 0.65; FM = max(0.90, 0.80) - 0.60 = 0.30; BWT = 0.60 - 0.90
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = summarize(R)
    assert out["acc"] == pytest.approx(0.65)
    assert out["fm"] == pytest.approx(0.30)
    assert out["bwt"] == pytest.approx(-0.30)


def test_all_nan_matrix_is_nan_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = summarize(np.full((2, 2), nan))
    assert all(np.isnan(v) for v in out.values())


def test_input_not_modified_and_shape_checked():
    R = np.array([[0.9, 0.5], [0.8, 0.7]])
    before = R.copy()
    summarize(R)
    np.testing.assert_array_equal(R, before)
    with pytest.raises(ValueError):
        accuracy(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        forgetting(np.zeros(3))
    with pytest.raises(ValueError):
        backward_transfer(np.zeros((0, 0)))


def test_accepts_nested_lists():
    # ACC = (0.5 + 1.0) / 2 = 0.75; FM = 1.0 - 0.5 = 0.5; BWT = 0.5 - 1.0 = -0.5
    assert summarize([[1.0, nan], [0.5, 1.0]]) == pytest.approx(
        {"acc": 0.75, "fm": 0.5, "bwt": -0.5}
    )
