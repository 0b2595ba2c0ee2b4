"""Accuracy metrics for one evaluation, and METRIC_TABLE: the one list of them.

ROC and PR quantities come from scikit-learn so that every stored number can be
recomputed outside nfbench with the same library. Only AUPRO is computed here,
because scikit-learn has no per-region overlap curve; it follows the MVTec AD
definition (Bergmann et al., IJCV 2021) and is exact over every distinct score.

Every metric is one `MetricSpec` row (key, labels, level, direction, whether it is
summarised into ACC/FM/BWT, format) plus its function; evaluation, the record, the
report, the plots, compare and check all read the table, so a new metric is one row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

__all__ = [
    "METRIC_TABLE", "MetricSpec", "PixelData", "aupro", "f1_max", "image_metrics", "metric_spec",
    "pixel_metrics", "pro_curve",
]

NAN = float("nan")

# 8-connectivity: diagonal neighbours belong to the same defect region (MVTec AD).
_STRUCTURE_8 = np.ones((3, 3), dtype=bool)


def _check_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten to 1-D float scores and bool labels; reject mismatches and non-finite scores."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores ({s.size}) and labels ({y.size}) differ in size")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or inf")
    return s, y


def f1_max(scores: np.ndarray, labels: np.ndarray) -> float:
    """Oracle F1: the best F1 over all thresholds (an upper bound for automatic thresholds)."""
    s, y = _check_scores(scores, labels)
    if y.all() or not y.any():
        return NAN
    precision, recall, _ = precision_recall_curve(y, s)
    denom = precision + recall
    f1 = np.divide(2.0 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(f1.max())


def image_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(roc_auc_score(labels, scores))


def image_ap(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(average_precision_score(labels, scores))


def _check_maps(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (N,H,W) float maps and bool masks; a single (H,W) pair is promoted."""
    m = np.asarray(maps, dtype=np.float64)
    g = np.asarray(masks).astype(bool)
    if m.ndim == 2 and g.ndim == 2:
        m, g = m[None], g[None]
    if m.ndim != 3 or m.shape != g.shape:
        raise ValueError(f"maps {m.shape} and masks {g.shape} must both be (N, H, W)")
    if not np.all(np.isfinite(m)):
        raise ValueError("anomaly maps contain NaN or inf")
    return m, g


def pro_curve(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact (FPR, PRO) curve over every distinct score, from (0, 0) to (1, 1).

    Point i is the operating point of threshold "score >= v_i" for the distinct
    values v_0 > v_1 > ... . PRO at a threshold is the mean over regions of the
    covered fraction, i.e. a sum over covered anomalous pixels of the weight
    1 / (n_regions * |region|); FPR is a count over normal pixels. Sorting the
    pixels once turns both into cumulative sums, so no loop over thresholds.
    """
    m, g = _check_maps(maps, masks)
    labels = np.empty(g.shape, dtype=np.int32)
    offset = 0
    for i in range(g.shape[0]):  # regions are per image; number them globally
        lab, n = ndimage.label(g[i], structure=_STRUCTURE_8)
        labels[i] = np.where(lab > 0, lab + offset, 0)
        offset += n
    n_regions = offset
    n_normal = int((~g).sum())
    if n_regions == 0 or n_normal == 0:
        return np.array([0.0, NAN]), np.array([0.0, NAN])

    lab_flat = labels.ravel()
    sizes = np.bincount(lab_flat, minlength=n_regions + 1).astype(np.float64)
    pro_weight = np.zeros(n_regions + 1)
    pro_weight[1:] = 1.0 / (n_regions * sizes[1:])

    order = np.argsort(m.ravel())[::-1]  # descending score; ties are grouped below
    s_sorted = m.ravel()[order]
    lab_sorted = lab_flat[order]
    fp_cum = np.cumsum(lab_sorted == 0, dtype=np.int64)
    pro_cum = np.cumsum(pro_weight[lab_sorted])
    # Last index of each group of equal scores = operating point of that threshold.
    last = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))
    fpr = fp_cum[last] / n_normal
    pro = np.clip(pro_cum[last], 0.0, 1.0)  # clip float drift from the cumsum
    pro[-1] = 1.0  # lowest threshold covers every pixel; remove rounding residue
    return np.concatenate(([0.0], fpr)), np.concatenate(([0.0], pro))


def _area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under a non-decreasing-x curve on [0, x_max], interpolating at x_max."""
    keep = x <= x_max
    xs, ys = x[keep], y[keep]
    if xs[-1] < x_max:
        j = int(np.searchsorted(x, x_max, side="right"))  # first point beyond x_max
        x0, y0, x1, y1 = x[j - 1], y[j - 1], x[j], y[j]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        xs, ys = np.append(xs, x_max), np.append(ys, y_at)
    return float(np.sum(0.5 * (ys[1:] + ys[:-1]) * np.diff(xs)))


def aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> float:
    """Area under the PRO curve for FPR in [0, fpr_limit], divided by fpr_limit.

    Normalising makes a perfect detector score 1.0 whatever the limit. NaN when
    there is no anomalous region or no normal pixel.
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    fpr, pro = pro_curve(maps, masks)
    if np.isnan(fpr[-1]):
        return NAN
    return _area_up_to(fpr, pro, fpr_limit) / fpr_limit


class PixelData:
    """Maps and masks of the images one pixel metric is computed over. The distinct
    (score, label) pairs that the ROC and PR metrics share are computed once."""

    def __init__(self, maps: np.ndarray, masks: np.ndarray) -> None:
        self.maps, self.masks = _check_maps(maps, masks)
        labels = self.masks.ravel()
        self.defined = bool(labels.any() and not labels.all())

    @cached_property
    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct (score, label) pairs with their counts as weights.

        ROC and PR curves are step functions of the distinct thresholds, so weighting each
        distinct pair by its count gives exactly the values of the full pixel list; with
        float16 maps this shrinks millions of pixels to at most ~2 x 65k rows.
        """
        s, y = self.maps.ravel(), self.masks.ravel()
        pos, pos_n = np.unique(s[y], return_counts=True)
        neg, neg_n = np.unique(s[~y], return_counts=True)
        labels = np.concatenate((np.ones(pos.size, dtype=bool), np.zeros(neg.size, dtype=bool)))
        weights = np.concatenate((pos_n, neg_n)).astype(np.float64)
        return np.concatenate((pos, neg)), labels, weights


def pixel_auroc(data: PixelData) -> float:
    scores, labels, weights = data.pairs
    return float(roc_auc_score(labels, scores, sample_weight=weights))


def pixel_ap(data: PixelData) -> float:
    scores, labels, weights = data.pairs
    return float(average_precision_score(labels, scores, sample_weight=weights))


def pixel_aupro(data: PixelData) -> float:
    return aupro(data.maps, data.masks)


@dataclass(frozen=True)
class MetricSpec:
    """One metric: what it is called, what it measures and how it is shown.

    Image metrics take (scores, labels) of a set of images; pixel metrics a PixelData.
    A task's figure is the mean of its classes' figures, except for `pooled` rows, which
    take all the task's images at once. `summarised` rows get ACC/FM/BWT in every record,
    appear in the leaderboard and are pinned by `nfbench check`."""

    key: str
    label: str  # "image AUROC": titles and axis labels
    short: str  # "img AUROC": table headers
    level: Literal["image", "pixel"]
    compute: Callable[..., float]
    higher_is_better: bool = True
    summarised: bool = False
    pooled: bool = False
    scale: float = 100.0  # shown in points
    decimals: int = 1

    def format(self, value: float | None) -> str:
        if value is None or not np.isfinite(value):
            return "n/a"
        return f"{value * self.scale:.{self.decimals}f}"


METRIC_TABLE: tuple[MetricSpec, ...] = (
    MetricSpec("image_auroc", "image AUROC", "img AUROC", "image", image_auroc, summarised=True),
    MetricSpec("image_ap", "image AP", "img AP", "image", image_ap),
    MetricSpec("image_f1max", "image F1-max", "img F1-max", "image", f1_max),
    MetricSpec("pixel_auroc", "pixel AUROC", "pix AUROC", "pixel", pixel_auroc, summarised=True),
    MetricSpec("pixel_aupro", "AUPRO", "AUPRO", "pixel", pixel_aupro, summarised=True),
    MetricSpec("pixel_ap", "pixel AP", "pix AP", "pixel", pixel_ap),
    MetricSpec("image_auroc_pooled", "image AUROC (classes pooled)", "img AUROC pooled",
               "image", image_auroc, summarised=True, pooled=True),
)
SUMMARISED = tuple(m.key for m in METRIC_TABLE if m.summarised)


def metric_spec(key: str) -> MetricSpec:
    for spec in METRIC_TABLE:
        if spec.key == key:
            return spec
    raise KeyError(f"unknown metric {key!r}")


def image_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every (class-level) image metric of the table; NaN for all when only one label occurs.

    A set with only normal (or only anomalous) images is a data fact, not an error, so it
    yields NaN rather than the exception scikit-learn would raise.
    """
    s, y = _check_scores(scores, labels)
    specs = [m for m in METRIC_TABLE if m.level == "image" and not m.pooled]
    defined = y.any() and not y.all()
    return {m.key: m.compute(s, y) if defined else NAN for m in specs}


def pixel_metrics(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Every pixel metric of the table over all pixels of all images; NaN for all when there
    is no anomalous or no normal pixel. The caller has already dropped anomalous images
    without a ground-truth mask (their all-zero mask would count defect pixels as normal)."""
    data = PixelData(maps, masks)
    specs = [m for m in METRIC_TABLE if m.level == "pixel"]
    return {m.key: m.compute(data) if data.defined else NAN for m in specs}
