"""Automatic anomaly thresholds, fixed before the test set is seen.

F1-max picks its threshold by looking at test labels, so it is an oracle. A deployable
detector must fix its threshold first. Each rule here does: from the scores of normal images
the learner holds (percentile, mean + k*std, Otsu), or from a null model (the a-contrario NFA
rule, which needs no data: NFA < 1). Those normal images are a calibration split held out of
the training images (running/calibration.py): scores of the very images a model was fitted on
are lower than a new normal image gets. Each rule is reported with F1/precision/recall next to
the oracle.

Decision rule everywhere: an image is predicted anomalous when score > threshold (the
convention of skimage's Otsu, "foreground is above the threshold").

Every rule implies a false-alarm rate (percentile_99: about 1% of normal images; NFA < eps: at
most eps false detections per image in expectation under its null model, so at most a fraction
eps of null images flagged, which says nothing at eps = 1), so the report gives each rule's
measured false-alarm rate on the normal test images next to its F1.

Extension point: a rule is a `ThresholdRule` object registered with `register_rule`; it says
which models it applies to, fits its threshold, and may score the test images its own way (the
NFA rule scores -log10 NFA from the latents of every model with Gaussian latents). A model may
contribute rules of its own through `extra_threshold_rules()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from skimage.filters import threshold_otsu
from sklearn.metrics import f1_score, precision_score, recall_score

from nfbench.benchmarks.measuring.metrics import f1_max
from nfbench.models.base import FlowADModel
from nfbench.models.capabilities import HasLatents, HasThresholdRules
from nfbench.models.nfa import neg_log10_nfa_map
from nfbench.models.registry import Registry


def _scores(normal_scores: np.ndarray) -> np.ndarray:
    """1-D finite float array, non-empty; a threshold from bad scores would be silent garbage."""
    s = np.asarray(normal_scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("no training scores to fit a threshold on")
    if not np.all(np.isfinite(s)):
        raise ValueError("training scores contain NaN or inf")
    return s


def percentile_threshold(normal_scores: np.ndarray, q: float = 99.0) -> float:
    """q-th percentile of normal scores: about (100 - q)% false alarms on normal data."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q}")
    return float(np.percentile(_scores(normal_scores), q))


def mean_std_threshold(normal_scores: np.ndarray, k: float = 3.0) -> float:
    """mean + k * std (population std, ddof=0): a Gaussian-tail rule on normal scores."""
    s = _scores(normal_scores)
    return float(s.mean() + k * s.std())


def otsu_threshold(normal_scores: np.ndarray) -> float:
    """skimage's Otsu threshold (256-bin histogram) on the normal calibration scores.

    On normal-only scores there is no anomalous mode to separate, so Otsu splits
    the normal distribution itself (e.g. between its modes, or its bulk and its
    tail). That is what the design asks for: a label-free rule applied as is,
    whose false-alarm rate the report makes visible. Constant scores give that
    constant.
    """
    return float(threshold_otsu(_scores(normal_scores)))


class ThresholdRule:
    """A rule that fixes an image threshold without the test labels."""

    name: ClassVar[str]

    def applies_to(self, model: FlowADModel) -> bool:
        return True

    def fit(self, normal_scores: np.ndarray) -> float:
        raise NotImplementedError

    def test_scores(
        self, model: FlowADModel, image_scores: np.ndarray, features: list[torch.Tensor]
    ) -> np.ndarray:
        """The per-image scores the threshold applies to: the model's image scores."""
        return image_scores


@dataclass
class PercentileRule(ThresholdRule):
    name: ClassVar[str] = "percentile_99"
    q: float = 99.0

    def fit(self, normal_scores: np.ndarray) -> float:
        return percentile_threshold(normal_scores, self.q)


@dataclass
class MeanStdRule(ThresholdRule):
    name: ClassVar[str] = "mean_3std"
    k: float = 3.0

    def fit(self, normal_scores: np.ndarray) -> float:
        return mean_std_threshold(normal_scores, self.k)


class OtsuRule(ThresholdRule):
    name: ClassVar[str] = "otsu"

    def fit(self, normal_scores: np.ndarray) -> float:
        return otsu_threshold(normal_scores)


@dataclass
class NFARule(ThresholdRule):
    """U-Flow's a-contrario rule, for every model whose latents are N(0, I) under the normal
    model: an image is anomalous where some region has NFA < 1, i.e. -log10 NFA > 0. The
    threshold comes from the null model, not from data (models/nfa.py)."""

    name: ClassVar[str] = "nfa"
    window: int = 5
    probability_thr: float = 0.9
    batch_size: int = 32

    def applies_to(self, model: FlowADModel) -> bool:
        return model.gaussian_latents and isinstance(model, HasLatents)

    def fit(self, normal_scores: np.ndarray) -> float:
        return 0.0

    @torch.no_grad()
    def test_scores(
        self, model: FlowADModel, image_scores: np.ndarray, features: list[torch.Tensor]
    ) -> np.ndarray:
        size = model.features.input_size
        parts = []
        for feats, _ in model.iter_batches(features, None, self.batch_size):
            nfa = neg_log10_nfa_map(model.latents(feats), size, self.window, self.probability_thr)
            parts.append(nfa.flatten(1).amax(dim=1).double().cpu().numpy())
        return np.concatenate(parts)


THRESHOLD_RULES: Registry[ThresholdRule] = Registry("threshold rule")


def register_rule(rule: ThresholdRule, *, overwrite: bool = False) -> ThresholdRule:
    """Make a rule part of every threshold report (refuses to replace one silently)."""
    return THRESHOLD_RULES.add(rule.name, rule, overwrite=overwrite)


for _rule in (PercentileRule(), MeanStdRule(), OtsuRule(), NFARule()):
    register_rule(_rule)


def rules_for(model: FlowADModel) -> list[ThresholdRule]:
    """The registered rules that apply to `model`, then the model's own contributions."""
    own = model.extra_threshold_rules() if isinstance(model, HasThresholdRules) else []
    return [r for r in (*THRESHOLD_RULES.values(), *own) if r.applies_to(model)]


def threshold_report(
    model: FlowADModel,
    normal_scores: np.ndarray,
    test_scores: np.ndarray,
    labels: np.ndarray,
    test_features: list[torch.Tensor],
) -> dict[str, dict[str, float]]:
    """F1/precision/recall, threshold and false-alarm rate of every applicable rule (fitted on
    `normal_scores`, the calibration images' scores), plus the oracle F1-max."""
    normal = _scores(normal_scores)
    report = {}
    for rule in rules_for(model):
        threshold = float(rule.fit(normal))
        scores = rule.test_scores(model, test_scores, test_features)
        report[rule.name] = {**binary_report(scores, labels, threshold), "threshold": threshold,
                             "false_alarm_rate": false_alarm_rate(scores, labels, threshold)}
    report["oracle_f1max"] = {"f1": f1_max(test_scores, labels)}
    return report


def predict(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Binary decision: anomalous where score > threshold."""
    return np.asarray(scores, dtype=np.float64).ravel() > threshold


def false_alarm_rate(test_scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Fraction of the normal (label 0) test images flagged: what a rule's promise bounds.
    NaN when there are no normal images."""
    y = np.asarray(labels).ravel().astype(bool)
    pred = predict(test_scores, threshold)
    if pred.shape != y.shape:
        raise ValueError(f"scores ({pred.size}) and labels ({y.size}) differ in size")
    return float(pred[~y].mean()) if (~y).any() else float("nan")


def binary_report(
    test_scores: np.ndarray, labels: np.ndarray, threshold: float
) -> dict[str, float]:
    """F1, precision and recall of the fixed threshold on test data (zero_division=0)."""
    y = np.asarray(labels).ravel().astype(bool)
    pred = predict(test_scores, threshold)
    if pred.shape != y.shape:
        raise ValueError(f"scores ({pred.size}) and labels ({y.size}) differ in size")
    return {
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
    }
