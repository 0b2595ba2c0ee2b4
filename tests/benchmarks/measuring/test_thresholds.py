"""Automatic thresholds on literal normal-train scores, and the fixed-threshold report."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from skimage.filters import threshold_otsu
from sklearn.metrics import confusion_matrix

from nfbench.benchmarks.measuring import thresholds as th
from nfbench.benchmarks.measuring.thresholds import (
    THRESHOLD_RULES,
    NFARule,
    binary_report,
    false_alarm_rate,
    mean_std_threshold,
    otsu_threshold,
    percentile_threshold,
    register_rule,
    threshold_report,
)
from nfbench.models.backbone import FeatureInfo
from nfbench.models.nfa import neg_log10_nfa_map
from nfbench.models.registry import create_model


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
    for rule in (percentile_threshold, mean_std_threshold, otsu_threshold):
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
    with pytest.raises(ValueError):
        false_alarm_rate(np.array([0.1, 0.2]), np.array([0, 1, 1]), 0.5)


def test_false_alarm_rate_is_sklearns_false_positive_rate():
    scores = np.array([0.1, 0.5, 0.6, 0.9, 0.7, 0.2])
    labels = np.array([0, 1, 0, 1, 0, 0])
    # threshold 0.55 flags 0.6 and 0.7 among the 4 normals: 2/4
    tn, fp, _, _ = confusion_matrix(labels, scores > 0.55).ravel()
    assert false_alarm_rate(scores, labels, 0.55) == pytest.approx(fp / (fp + tn)) == 0.5
    assert false_alarm_rate(scores, labels, 0.7) == 0.0  # strict ">": 0.7 is not flagged
    assert np.isnan(false_alarm_rate(np.array([1.0]), np.array([1]), 0.5))  # no normals


def _tiny(name: str, **overrides):
    torch.manual_seed(0)
    return create_model(name, FeatureInfo((4, 8), (4, 8), 32), **overrides).eval()


def _features(n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(n, 4, 8, 8, generator=g), torch.randn(n, 8, 4, 4, generator=g)]


def test_report_has_every_rule_that_applies_and_the_oracle():
    model = _tiny("fastflow", flow_steps=2)
    feats = _features(6)
    train = np.arange(101, dtype=float)
    scores, labels = np.array([10.0, 99.5, 20.0, 100.0, 30.0, 120.0]), np.array([0, 1, 0, 1, 0, 1])
    report = threshold_report(model, train, scores, labels, feats)
    assert list(report) == ["percentile_99", "mean_3std", "otsu", "nfa", "oracle_f1max"]
    assert report["percentile_99"]["threshold"] == pytest.approx(99.0)
    assert report["percentile_99"]["f1"] == pytest.approx(1.0)  # 99.5, 100, 120 flagged
    assert report["percentile_99"]["false_alarm_rate"] == 0.0  # no normal above 99
    assert report["mean_3std"]["false_alarm_rate"] == 0.0
    assert report["otsu"]["false_alarm_rate"] == 0.0  # Otsu of 0..100 is about 50
    nfa = NFARule().test_scores(model, scores, feats)  # the NFA rule flags on its own scores
    assert report["nfa"]["false_alarm_rate"] == pytest.approx(np.mean(nfa[labels == 0] > 0))
    assert report["mean_3std"]["threshold"] == pytest.approx(50.0 + 3 * train.std())
    assert report["otsu"]["threshold"] == pytest.approx(threshold_otsu(train))
    assert report["nfa"]["threshold"] == 0.0
    assert report["oracle_f1max"]["f1"] == pytest.approx(1.0)


def test_nfa_applies_to_gaussian_latents_only():
    assert NFARule().applies_to(_tiny("fastflow", flow_steps=2))
    assert NFARule().applies_to(_tiny("cflow", coupling_blocks=1, condition_vector=8))
    hgad = _tiny("hgad", coupling_blocks=1, pos_embed_dim=8)
    assert not NFARule().applies_to(hgad)  # GMM latents are not N(0, I)
    report = threshold_report(hgad, np.arange(10.0), np.array([1.0, 20.0]), np.array([0, 1]),
                              _features(2))
    assert "nfa" not in report


def test_nfa_scores_are_the_max_of_the_a_contrario_map():
    model = _tiny("uflow", flow_steps=2)
    feats = _features(3)
    with torch.no_grad():
        expected = neg_log10_nfa_map(model.latents(feats), 32).flatten(1).amax(1).double()
    got = NFARule(batch_size=2).test_scores(model, np.zeros(3), feats)
    np.testing.assert_allclose(got, expected.numpy())


def test_a_registered_rule_joins_every_report(monkeypatch):
    monkeypatch.setattr(THRESHOLD_RULES, "_entries", dict(THRESHOLD_RULES._entries))  # kept clean

    class MaxRule(th.ThresholdRule):
        name = "train_max"

        def fit(self, train_scores):
            return float(np.max(train_scores))

    register_rule(MaxRule())
    with pytest.raises(ValueError, match="threshold rule 'train_max' registered twice"):
        register_rule(MaxRule())
    report = threshold_report(_tiny("fastflow", flow_steps=2), np.array([1.0, 3.0]),
                              np.array([2.0, 4.0]), np.array([0, 1]), _features(2))
    assert report["train_max"]["threshold"] == 3.0 and report["train_max"]["f1"] == 1.0


def test_a_model_may_contribute_its_own_rule():
    class Fixed(th.ThresholdRule):
        name = "fixed_zero"

        def fit(self, train_scores):
            return 0.0

    model = _tiny("fastflow", flow_steps=2)
    model.extra_threshold_rules = lambda: [Fixed()]
    report = threshold_report(model, np.array([1.0]), np.array([-1.0, 1.0]), np.array([0, 1]),
                              _features(2))
    assert report["fixed_zero"]["f1"] == 1.0
