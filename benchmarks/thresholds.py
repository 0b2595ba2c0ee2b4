"""Automatic anomaly thresholds, fitted on NORMAL TRAINING scores only.

F1-max picks its threshold by looking at test labels, so it is an oracle. A
deployable detector must fix its threshold before seeing the test set; these
rules do that from the scores of the normal training images, so no test
information leaks in. Each rule is reported with F1/precision/recall next to the
oracle F1-max.

Decision rule everywhere: an image is predicted anomalous when score > threshold
(the convention of skimage's Otsu, "foreground is above the threshold").

Extension point: THRESHOLD_RULES maps a rule name to a callable
``(train_scores: np.ndarray) -> float``. Add a rule with ``register_rule``; every
caller of ``fit_thresholds`` then reports it. U-Flow's a-contrario (NFA) rule is
the intended next entry. It is not fitted on training scores: U-Flow turns each
map into -log10 NFA and flags NFA < 1, a fixed threshold of 0 on that score, so
it can register as a rule that ignores its argument and returns 0.0, applied to
a model whose image score is -log10 NFA.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
from skimage.filters import threshold_otsu
from sklearn.metrics import f1_score, precision_score, recall_score

__all__ = [
    "THRESHOLD_RULES",
    "binary_report",
    "fit_thresholds",
    "mean_std_threshold",
    "otsu_threshold",
    "percentile_threshold",
    "predict",
    "register_rule",
]

ThresholdRule = Callable[[np.ndarray], float]


def _scores(train_scores: np.ndarray) -> np.ndarray:
    """1-D finite float array, non-empty; a threshold from bad scores would be silent garbage."""
    s = np.asarray(train_scores, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("no training scores to fit a threshold on")
    if not np.all(np.isfinite(s)):
        raise ValueError("training scores contain NaN or inf")
    return s


def percentile_threshold(train_scores: np.ndarray, q: float = 99.0) -> float:
    """q-th percentile of normal scores: about (100 - q)% false alarms on normal data."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q}")
    return float(np.percentile(_scores(train_scores), q))


def mean_std_threshold(train_scores: np.ndarray, k: float = 3.0) -> float:
    """mean + k * std (population std, ddof=0): a Gaussian-tail rule on normal scores."""
    s = _scores(train_scores)
    return float(s.mean() + k * s.std())


def otsu_threshold(train_scores: np.ndarray) -> float:
    """skimage's Otsu threshold (256-bin histogram) on the normal training scores.

    On normal-only scores there is no anomalous mode to separate, so Otsu splits
    the normal distribution itself (e.g. between its modes, or its bulk and its
    tail). That is what the design asks for: a label-free rule applied as is,
    whose false-alarm rate the report makes visible. Constant scores give that
    constant.
    """
    return float(threshold_otsu(_scores(train_scores)))


THRESHOLD_RULES: dict[str, ThresholdRule] = {
    "percentile_99": partial(percentile_threshold, q=99.0),
    "mean_3std": partial(mean_std_threshold, k=3.0),
    "otsu": otsu_threshold,
}


def register_rule(name: str, rule: ThresholdRule, *, overwrite: bool = False) -> ThresholdRule:
    """Add a rule to THRESHOLD_RULES (refuses to replace one silently)."""
    if name in THRESHOLD_RULES and not overwrite:
        raise KeyError(f"threshold rule {name!r} already registered")
    THRESHOLD_RULES[name] = rule
    return rule


def fit_thresholds(
    train_scores: np.ndarray, rules: dict[str, ThresholdRule] | None = None
) -> dict[str, float]:
    """Fit every rule (default: THRESHOLD_RULES) on the normal training scores."""
    s = _scores(train_scores)
    chosen = THRESHOLD_RULES if rules is None else rules
    return {name: float(rule(s)) for name, rule in chosen.items()}


def predict(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Binary decision: anomalous where score > threshold."""
    return np.asarray(scores, dtype=np.float64).ravel() > threshold


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
