"""Automatic thresholds on literal normal-train scores, and the fixed-threshold report."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from skimage.filters import threshold_otsu

from nfbench.benchmarks import thresholds as th
from nfbench.benchmarks.thresholds import (
    THRESHOLD_RULES,
    binary_report,
    fit_thresholds,
    mean_std_threshold,
    otsu_threshold,
    percentile_threshold,
    register_rule,
)


def test_percentile_threshold():
    s = np.arange(101, dtype=float)  # 0..100: the q-th percentile is q
    assert percentile_threshold(s) == pytest.approx(99.0)
    assert percentile_threshold(s, q=50) == pytest.approx(50.0)
    # linear interpolation: 99th percentile of [0, 10] is 0 + 0.99 * 10
    assert percentile_threshold(np.array([0.0, 10.0])) == pytest.approx(9.9)
    with pytest.raises(ValueError):
        percentile_threshold(s, q=101)


def test_mean_std_threshold():
    s = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    # mean 3; population variance (4 + 1 + 0 + 1 + 4) / 5 = 2 -> 3 + 3 * sqrt(2)
    assert mean_std_threshold(s) == pytest.approx(3 + 3 * np.sqrt(2))
    assert mean_std_threshold(s, k=1.0) == pytest.approx(3 + np.sqrt(2))


def test_otsu_threshold_splits_two_modes():
    s = np.array([0.0, 0.1, 0.2, 0.1, 10.0, 10.2, 9.9, 10.1])
    t = otsu_threshold(s)
    assert t == pytest.approx(threshold_otsu(s))
    assert 0.2 < t < 9.9
    assert otsu_threshold(np.array([4.0, 4.0, 4.0])) == pytest.approx(4.0)


def test_rules_reject_empty_or_non_finite():
    for rule in (percentile_threshold, mean_std_threshold, otsu_threshold, fit_thresholds):
        with pytest.raises(ValueError):
            rule(np.array([]))
        with pytest.raises(ValueError):
            rule(np.array([1.0, np.nan]))


def test_binary_report_hand_counts():
    scores = np.array([0.1, 0.5, 0.6, 0.9])
    labels = np.array([0, 1, 0, 1])
    # threshold 0.55: predicted [0, 0, 1, 1]; TP=1 FP=1 FN=1 -> P = R = F1 = 0.5
    assert binary_report(scores, labels, 0.55) == pytest.approx(
        {"f1": 0.5, "precision": 0.5, "recall": 0.5}
    )
    # threshold 0.5: strict ">" so 0.5 is still normal -> same counts
    assert binary_report(scores, labels, 0.5) == pytest.approx(
        {"f1": 0.5, "precision": 0.5, "recall": 0.5}
    )
    # threshold 0.3: predicted [0, 1, 1, 1]; TP=2 FP=1 FN=0 -> P=2/3 R=1 F1=0.8
    assert binary_report(scores, labels, 0.3) == pytest.approx(
        {"f1": 0.8, "precision": 2 / 3, "recall": 1.0}
    )


def test_binary_report_nothing_flagged_is_zero_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = binary_report(np.array([0.1, 0.2, 0.3]), np.array([0, 1, 1]), 1.0)
    assert out == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_binary_report_size_mismatch():
    with pytest.raises(ValueError):
        binary_report(np.array([0.1, 0.2]), np.array([0, 1, 1]), 0.5)


def test_fit_thresholds_default_rules():
    train = np.arange(101, dtype=float)
    out = fit_thresholds(train)
    assert list(out) == ["percentile_99", "mean_3std", "otsu"]
    assert out["percentile_99"] == pytest.approx(99.0)
    assert out["mean_3std"] == pytest.approx(50.0 + 3 * train.std())
    assert out["otsu"] == pytest.approx(threshold_otsu(train))
    assert all(isinstance(v, float) for v in out.values())


def test_fit_thresholds_custom_rules():
    out = fit_thresholds([1.0, 2.0, 3.0], rules={"max": lambda s: s.max(), "zero": lambda s: 0})
    assert out == {"max": 3.0, "zero": 0.0}


def test_register_rule_extends_fit(monkeypatch):
    monkeypatch.setattr(th, "THRESHOLD_RULES", dict(THRESHOLD_RULES))  # keep the real one clean
    register_rule("nfa", lambda s: 0.0)  # e.g. U-Flow: fixed threshold on -log10 NFA
    out = fit_thresholds(np.array([1.0, 2.0]))
    assert out["nfa"] == 0.0 and "otsu" in out
    with pytest.raises(KeyError):
        register_rule("nfa", lambda s: 1.0)
    register_rule("nfa", lambda s: 1.0, overwrite=True)
    assert fit_thresholds(np.array([1.0, 2.0]))["nfa"] == 1.0
    assert "nfa" not in THRESHOLD_RULES  # the module-level original was not touched
