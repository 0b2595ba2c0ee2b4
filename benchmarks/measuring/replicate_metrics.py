"""Metric values per bootstrap replicate, vectorised (the interval machinery is statistics.py).

A replicate is a row of per-image counts (how often each test image was drawn), so:
- image AUROC is the Mann-Whitney statistic on count-weighted tie groups (a row of ones gives
  exactly ``sklearn.metrics.roc_auc_score``);
- pixel AUROC and AUPRO are computed from count-weighted sums of per-image histograms on
  shared score bins: each class's maps (float16, or float32 where beyond float16's range) are
  cut into at most ``LEVELS`` quantile bins (exact when a class has no more distinct values
  than that; otherwise pixels within a bin count as tied).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["LEVELS", "PixelHistograms", "aupro_replicates", "auroc_replicates",
           "pixel_auroc_replicates", "pixel_histograms"]

NAN = float("nan")
LEVELS = 1024
_STRUCTURE_8 = np.ones((3, 3), dtype=bool)  # defect regions as in metrics.pro_curve


def _auc_from_groups(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC from (B, G) weighted counts of positives/negatives in ascending tie groups.

    Mann-Whitney: each positive beats the negatives of lower groups and ties (one half) with
    the negatives of its own group; divided by (weight of positives x weight of negatives).
    """
    neg_below = np.cumsum(neg, axis=1) - neg
    u = np.sum(pos * (neg_below + 0.5 * neg), axis=1)
    denom = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, u / np.where(denom > 0, denom, 1.0), NAN)


def auroc_replicates(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Image AUROC per replicate: (B,) from scores (n,), labels (n,) and counts (B, n).

    Rank form of the Mann-Whitney U statistic with ties counting one half, so a row of ones
    gives exactly ``sklearn.metrics.roc_auc_score``. NaN where a replicate lacks a class.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if s.shape != y.shape or w.shape[1] != s.size:
        raise ValueError(f"scores {s.shape}, labels {y.shape} and weights {w.shape} disagree")
    if s.size == 0:
        return np.full(w.shape[0], NAN)
    order = np.argsort(s, kind="stable")
    s, y, w = s[order], y[order], w[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos = np.add.reduceat(w * y, starts, axis=1)
    neg = np.add.reduceat(w * ~y, starts, axis=1)
    return _auc_from_groups(pos, neg)


# ---------------------------------------------------------------- pixel histograms


@dataclass(frozen=True)
class PixelHistograms:
    """One class's pixels as per-image histograms on shared score bins (ascending).

    Rows are images, aligned with the bootstrap counts; excluded images have zero rows.
    """

    normal: np.ndarray  # (n, L) normal pixels per bin
    anomalous: np.ndarray  # (n, L) anomalous pixels per bin
    pro: np.ndarray  # (n, L) sum over anomalous pixels of 1 / |their region|
    regions: np.ndarray  # (n,) defect regions (8-connected) per image


def _bins(codes_count: np.ndarray, code_values: np.ndarray, levels: int
          ) -> tuple[np.ndarray, int]:
    """Lookup table code -> bin (ascending score), and the number of bins, from the pixel count
    and the value of every code.

    Every distinct value goes wholly into one bin (ties never straddle bins); with more
    distinct values than ``levels`` the bins are quantiles of the pixel mass.
    """
    present = np.flatnonzero(codes_count)
    values = code_values[present]
    if not np.all(np.isfinite(values)):
        raise ValueError("anomaly maps contain NaN or inf")
    uniq, inv = np.unique(values, return_inverse=True)  # +0.0 and -0.0 are one value
    mass = np.bincount(inv, weights=codes_count[present])
    if uniq.size <= levels:
        bin_of = np.arange(uniq.size)
        n_bins = uniq.size
    else:
        mid = np.cumsum(mass) - 0.5 * mass
        bin_of = np.minimum((mid / mass.sum() * levels).astype(np.int64), levels - 1)
        n_bins = levels
    lut = np.zeros(codes_count.size, dtype=np.int64)
    lut[present] = bin_of[inv]
    return lut, n_bins


# the value of every float16 bit pattern (NaN patterns included: _bins refuses them)
_FLOAT16_VALUES = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float64)


def _pixel_codes(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(an integer code per pixel (n, H, W), the value of every code as float64).

    float16 maps (the usual storage) are coded by their bit pattern, with no sort; maps stored
    as float32 because they exceed float16's range (evaluate.to_stored) by their rank among
    the distinct values present, so no value is rounded, let alone to inf.
    """
    if maps.dtype == np.float16:
        return maps.view(np.uint16), _FLOAT16_VALUES
    values, codes = np.unique(maps, return_inverse=True)
    return codes.reshape(maps.shape), values.astype(np.float64)


def pixel_histograms(maps: np.ndarray, masks: np.ndarray, include: np.ndarray | None = None,
                     levels: int = LEVELS) -> PixelHistograms:
    """Per-image histograms of ``maps`` (n, H, W; float16 or float32, as stored) against bool
    ``masks`` (n, H, W).

    ``include`` (n,) drops images from pixel metrics (anomalous images without a mask) by
    leaving their rows at zero. Bins are shared by all images of the call (one class).
    """
    m = np.asarray(maps)
    g = np.asarray(masks).astype(bool)
    if m.ndim != 3 or m.shape != g.shape:
        raise ValueError(f"maps {m.shape} and masks {g.shape} must both be (n, H, W)")
    n = m.shape[0]
    inc = np.ones(n, dtype=bool) if include is None else np.asarray(include, dtype=bool)
    codes, code_values = _pixel_codes(m)
    count = np.zeros(code_values.size, dtype=np.float64)
    for i in np.flatnonzero(inc):
        count += np.bincount(codes[i].ravel(), minlength=code_values.size)
    if not count.any():
        z = np.zeros((n, 1))
        return PixelHistograms(z, z.copy(), z.copy(), np.zeros(n))
    lut, L = _bins(count, code_values, levels)
    normal, anomalous, pro = (np.zeros((n, L)) for _ in range(3))
    regions = np.zeros(n)
    for i in np.flatnonzero(inc):
        b, gi = lut[codes[i]].ravel(), g[i].ravel()
        normal[i] = np.bincount(b[~gi], minlength=L)
        if gi.any():
            lab, regions[i] = ndimage.label(g[i], structure=_STRUCTURE_8)
            lab = lab.ravel()
            size = np.bincount(lab)
            anomalous[i] = np.bincount(b[gi], minlength=L)
            pro[i] = np.bincount(b[gi], weights=1.0 / size[lab[gi]], minlength=L)
    return PixelHistograms(normal, anomalous, pro, regions)


def pixel_auroc_replicates(h: PixelHistograms, weights: np.ndarray,
                           normal: np.ndarray | None = None) -> np.ndarray:
    """Binned pixel AUROC per replicate (B,): a replicate's histogram is counts @ per-image ones.

    ``normal`` is ``weights @ h.normal`` when the caller has it already (AUPRO needs it too).
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    return _auc_from_groups(w @ h.anomalous, w @ h.normal if normal is None else normal)


def _area_clipped(x: np.ndarray, y: np.ndarray, x_max: float) -> np.ndarray:
    """Row-wise trapezoid area of (B, P) curves with non-decreasing x, on [0, x_max],
    interpolating at x_max (``metrics._area_up_to`` for every row at once)."""
    inside = x <= x_max
    seg = 0.5 * (y[:, 1:] + y[:, :-1]) * np.diff(x, axis=1)
    area = np.sum(seg, axis=1, where=inside[:, 1:])
    j = inside.sum(axis=1)  # first point beyond x_max (P when none)
    part = np.flatnonzero((j > 0) & (j < x.shape[1]))
    if part.size:
        jj = j[part]
        x0, x1 = x[part, jj - 1], x[part, jj]
        y0, y1 = y[part, jj - 1], y[part, jj]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)  # x1 > x_max >= x0
        area[part] += 0.5 * (y0 + y_at) * (x_max - x0)
    return area


def aupro_replicates(h: PixelHistograms, weights: np.ndarray, fpr_limit: float = 0.3,
                     normal: np.ndarray | None = None) -> np.ndarray:
    """Binned AUPRO per replicate (B,): PRO over FPR in [0, fpr_limit], divided by fpr_limit.

    Same definition as ``metrics.aupro``: thresholds from the top bin down; FPR counts normal
    pixels; PRO sums 1 / (regions x |region|) over covered defect pixels, where a resampled
    image contributes its regions as often as it is drawn. Only the bins down to the first
    threshold where every replicate has passed ``fpr_limit`` are summed (the rest adds no area).
    """
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    neg = w @ h.normal if normal is None else normal
    n_neg, n_reg = neg.sum(axis=1), w @ h.regions
    ok = (n_reg > 0) & (n_neg > 0)
    L = neg.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = np.cumsum(neg[:, ::-1], axis=1) / np.where(ok, n_neg, 1.0)[:, None]
        keep = min(L, int(np.searchsorted(fpr.min(axis=0), fpr_limit)) + 1)
        pro = np.cumsum(w @ h.pro[:, ::-1][:, :keep], axis=1) / np.where(ok, n_reg, 1.0)[:, None]
    pro = np.clip(pro, 0.0, 1.0)
    if keep == L:
        pro[:, -1] = 1.0  # the lowest threshold covers every pixel (as metrics.pro_curve)
    zeros = np.zeros((w.shape[0], 1))
    area = _area_clipped(np.hstack([zeros, fpr[:, :keep]]), np.hstack([zeros, pro]), fpr_limit)
    return np.where(ok, area / fpr_limit, NAN)
