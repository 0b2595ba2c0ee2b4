"""Accuracy metrics for one evaluation, and the registry of them (`metric_table()`).

ROC and PR quantities come from scikit-learn so that every stored number can be
recomputed outside nfbench with the same library. Only AUPRO is computed here,
because scikit-learn has no per-region overlap curve; it follows the MVTec AD
definition (Bergmann et al., IJCV 2021) and is exact over every distinct score.

Every metric is one registered `MetricSpec` row (key, labels, level, direction, whether it
is summarised into ACC/FM/BWT, format) plus its function, and optionally a vectorised
function for its bootstrap replicates; evaluation, the record, the bootstrap intervals, the
report, the plots, compare, check and tune all read the table, so a new metric is one row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from nfbench.benchmarks.measuring.replicate_metrics import (
    PixelHistograms,
    aupro_replicates,
    auroc_replicates,
    pixel_auroc_replicates,
)
from nfbench.models.registry import Registry

__all__ = [
    "METRICS", "MetricSpec", "PixelData", "aupro", "f1_max", "image_metrics", "metric_spec",
    "metric_table", "pixel_metrics", "pro_curve", "register_metric", "summarised_keys",
]

NAN = float("nan")
AUPRO_FPR_LIMIT = 0.3  # MVTec AD's integration limit

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
    """Return (N,H,W) float maps (float16 kept as is, other types as float64) and bool masks;
    a single (H,W) pair is promoted."""
    m = np.asarray(maps)
    m = m if m.dtype == np.float16 else m.astype(np.float64)
    g = np.asarray(masks).astype(bool)
    if m.ndim == 2 and g.ndim == 2:
        m, g = m[None], g[None]
    if m.ndim != 3 or m.shape != g.shape:
        raise ValueError(f"maps {m.shape} and masks {g.shape} must both be (N, H, W)")
    if not np.all(np.isfinite(m)):
        raise ValueError("anomaly maps contain NaN or inf")
    return m, g


HALF_BINS = 1 << 16


def float16_keys(values: np.ndarray) -> np.ndarray | None:
    """Each value's rank among all float16 numbers (0..65535, order-preserving), or None when
    some value is not exactly a float16. The harness stores maps as float16, so every pixel
    metric can count pixels per possible value (np.bincount, linear time) instead of sorting
    millions of pixels: the same thresholds, so the same exact figures."""
    if values.dtype == np.float16:
        half = values
    else:
        with np.errstate(over="ignore"):  # beyond float16's range: not float16 values
            half = values.astype(np.float16)
    if half is not values and not np.array_equal(half, values):
        return None
    bits = (half + np.float16(0)).view(np.uint16).astype(np.int64)  # -0.0 becomes +0.0
    return np.where(bits & 0x8000, 0xFFFF - bits, bits | 0x8000)


def _key_values(keys: np.ndarray) -> np.ndarray:
    """The float16 values of rank keys (the inverse of float16_keys), as float64."""
    bits = np.where(keys & 0x8000, keys & 0x7FFF, 0xFFFF - keys).astype(np.uint16)
    return bits.view(np.float16).astype(np.float64)


def _regions(g: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected defect regions (8-connectivity), numbered globally over images (0: normal)."""
    labels = np.empty(g.shape, dtype=np.int32)
    offset = 0
    for i in range(g.shape[0]):  # regions are per image; number them globally
        lab, n = ndimage.label(g[i], structure=_STRUCTURE_8)
        labels[i] = np.where(lab > 0, lab + offset, 0)
        offset += n
    return labels.ravel(), offset


def pro_curve(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact (FPR, PRO) curve over every distinct score, from (0, 0) to (1, 1) (see
    PixelData.pro_curve)."""
    return PixelData(maps, masks).pro_curve()


def _cumulative_by_sorting(s: np.ndarray, lab: np.ndarray,
                           weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positives, PRO) at each distinct score, descending: one sort of the pixels."""
    order = np.argsort(s)[::-1]  # descending score; ties are grouped below
    s_sorted, lab_sorted = s[order], lab[order]
    fp_cum = np.cumsum(lab_sorted == 0, dtype=np.int64)
    pro_cum = np.cumsum(weight[lab_sorted])
    # Last index of each group of equal scores = operating point of that threshold.
    last = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))
    return fp_cum[last], pro_cum[last]


def _cumulative_by_counting(keys: np.ndarray, lab: np.ndarray,
                            weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same, per float16 value present: pixels counted per value, no sort."""
    normal = lab == 0
    fp = np.bincount(keys[normal], minlength=HALF_BINS)[::-1]
    pro = np.bincount(keys, weights=weight[lab], minlength=HALF_BINS)[::-1]
    present = (np.bincount(keys, minlength=HALF_BINS)[::-1] > 0)
    return np.cumsum(fp, dtype=np.int64)[present], np.cumsum(pro)[present]


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
    """Area under the PRO curve for FPR in [0, fpr_limit], divided by fpr_limit (see
    PixelData.aupro)."""
    return PixelData(maps, masks).aupro(fpr_limit)


class PixelData:
    """Maps and masks of the images one pixel metric is computed over. What several metrics
    share is computed once: the float16 value ranks of the pixels, the distinct
    (score, label) pairs of the ROC and PR metrics, the defect regions of AUPRO."""

    def __init__(self, maps: np.ndarray, masks: np.ndarray) -> None:
        self.maps, self.masks = _check_maps(maps, masks)
        labels = self.masks.ravel()
        self.defined = bool(labels.any() and not labels.all())

    @cached_property
    def keys(self) -> np.ndarray | None:
        """float16 value ranks of the pixels (None when the maps are not float16 values)."""
        return float16_keys(self.maps.ravel())

    @cached_property
    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct (score, label) pairs with their counts as weights.

        ROC and PR curves are step functions of the distinct thresholds, so weighting each
        distinct pair by its count gives exactly the values of the full pixel list; with
        float16 maps this shrinks millions of pixels to at most ~2 x 65k rows.
        """
        y = self.masks.ravel()
        if self.keys is None:
            s = self.maps.ravel()
            pos, pos_n = np.unique(s[y], return_counts=True)
            neg, neg_n = np.unique(s[~y], return_counts=True)
        else:  # counted per float16 value: linear time, the same pairs
            pos, pos_n = _present(np.bincount(self.keys[y], minlength=HALF_BINS))
            neg, neg_n = _present(np.bincount(self.keys[~y], minlength=HALF_BINS))
        labels = np.concatenate((np.ones(pos.size, dtype=bool), np.zeros(neg.size, dtype=bool)))
        weights = np.concatenate((pos_n, neg_n)).astype(np.float64)
        return np.concatenate((pos, neg)), labels, weights

    def pro_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact (FPR, PRO) curve over every distinct score, from (0, 0) to (1, 1).

        Point i is the operating point of threshold "score >= v_i" for the distinct values
        v_0 > v_1 > ... . PRO at a threshold is the mean over regions of the covered
        fraction, i.e. a sum over covered anomalous pixels of the weight
        1 / (n_regions * |region|); FPR is a count over normal pixels. Both are cumulative
        sums over the pixels in descending score: per float16 value (counted, no sort) when
        the maps are float16, else over the sorted pixels.
        """
        lab_flat, n_regions = _regions(self.masks)
        n_normal = int((~self.masks).sum())
        if n_regions == 0 or n_normal == 0:
            return np.array([0.0, NAN]), np.array([0.0, NAN])
        sizes = np.bincount(lab_flat, minlength=n_regions + 1).astype(np.float64)
        weight = np.zeros(n_regions + 1)
        weight[1:] = 1.0 / (n_regions * sizes[1:])
        if self.keys is None:
            fp_cum, pro_cum = _cumulative_by_sorting(self.maps.ravel(), lab_flat, weight)
        else:
            fp_cum, pro_cum = _cumulative_by_counting(self.keys, lab_flat, weight)
        fpr = fp_cum / n_normal
        pro = np.clip(pro_cum, 0.0, 1.0)  # clip float drift from the cumsum
        pro[-1] = 1.0  # lowest threshold covers every pixel; remove rounding residue
        return np.concatenate(([0.0], fpr)), np.concatenate(([0.0], pro))

    def aupro(self, fpr_limit: float = 0.3) -> float:
        """Area under the PRO curve for FPR in [0, fpr_limit], divided by fpr_limit.

        Normalising makes a perfect detector score 1.0 whatever the limit. NaN when there
        is no anomalous region or no normal pixel.
        """
        if not 0.0 < fpr_limit <= 1.0:
            raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
        fpr, pro = self.pro_curve()
        if np.isnan(fpr[-1]):
            return NAN
        return _area_up_to(fpr, pro, fpr_limit) / fpr_limit


def _present(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float16 values that occur, their counts), ascending."""
    keys = np.flatnonzero(counts)
    return _key_values(keys), counts[keys]


def pixel_auroc(data: PixelData) -> float:
    scores, labels, weights = data.pairs
    return float(roc_auc_score(labels, scores, sample_weight=weights))


def pixel_ap(data: PixelData) -> float:
    scores, labels, weights = data.pairs
    return float(average_precision_score(labels, scores, sample_weight=weights))


def pixel_aupro(data: PixelData) -> float:
    return data.aupro()


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
    # bootstrap replicates at once: image (scores, labels, weights (B, n)) -> (B,); pixel
    # (PixelHistograms, weights (B, n), normal-pixel counts (B, L)) -> (B,). None: `compute`
    # on each resampled set (exact, slower).
    replicates: Callable[..., np.ndarray] | None = None

    def format(self, value: float | None) -> str:
        if value is None or not np.isfinite(value):
            return "n/a"
        return f"{value * self.scale:.{self.decimals}f}"


METRICS: Registry[MetricSpec] = Registry("metric")


def register_metric(spec: MetricSpec, *, overwrite: bool = False) -> MetricSpec:
    """Make a metric part of every evaluation, record, interval, table and tune run."""
    return METRICS.add(spec.key, spec, overwrite=overwrite)


def _aupro_replicates(h: PixelHistograms, weights: np.ndarray, normal: np.ndarray) -> np.ndarray:
    return aupro_replicates(h, weights, AUPRO_FPR_LIMIT, normal)


for _spec in (
    MetricSpec("image_auroc", "image AUROC", "img AUROC", "image", image_auroc, summarised=True,
               replicates=auroc_replicates),
    MetricSpec("image_ap", "image AP", "img AP", "image", image_ap),
    MetricSpec("image_f1max", "image F1-max", "img F1-max", "image", f1_max),
    MetricSpec("pixel_auroc", "pixel AUROC", "pix AUROC", "pixel", pixel_auroc, summarised=True,
               replicates=pixel_auroc_replicates),
    MetricSpec("pixel_aupro", "AUPRO", "AUPRO", "pixel", pixel_aupro, summarised=True,
               replicates=_aupro_replicates),
    MetricSpec("pixel_ap", "pixel AP", "pix AP", "pixel", pixel_ap),
    MetricSpec("image_auroc_pooled", "image AUROC (classes pooled)", "img AUROC pooled",
               "image", image_auroc, summarised=True, pooled=True, replicates=auroc_replicates),
):
    register_metric(_spec)


def metric_table() -> tuple[MetricSpec, ...]:
    """Every registered metric, in registration order (tables and records keep it)."""
    return tuple(METRICS.values())


def summarised_keys() -> tuple[str, ...]:
    """The metrics that get ACC/FM/BWT in every record, the leaderboard and `nfbench check`."""
    return tuple(m.key for m in metric_table() if m.summarised)


def metric_spec(key: str) -> MetricSpec:
    return METRICS.get(key)


def image_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every (class-level) image metric of the table; NaN for all when only one label occurs.

    A set with only normal (or only anomalous) images is a data fact, not an error, so it
    yields NaN rather than the exception scikit-learn would raise.
    """
    s, y = _check_scores(scores, labels)
    specs = [m for m in metric_table() if m.level == "image" and not m.pooled]
    defined = y.any() and not y.all()
    return {m.key: m.compute(s, y) if defined else NAN for m in specs}


def pixel_metrics(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Every pixel metric of the table over all pixels of all images; NaN for all when there
    is no anomalous or no normal pixel. The caller has already dropped anomalous images
    without a ground-truth mask (their all-zero mask would count defect pixels as normal)."""
    data = PixelData(maps, masks)
    specs = [m for m in metric_table() if m.level == "pixel"]
    return {m.key: m.compute(data) if data.defined else NAN for m in specs}
