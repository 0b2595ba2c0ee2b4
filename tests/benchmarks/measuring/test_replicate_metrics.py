"""Metric values per bootstrap replicate, on literal examples: a row of ones gives exactly
scikit-learn's AUROC and metrics.py's pixel figures, a row of counts the figures of the
resampled stack."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from nfbench.benchmarks.measuring import replicate_metrics as rm
from nfbench.benchmarks.measuring.metrics import aupro, pixel_metrics

SCORES = np.array([0.1, 0.4, 0.35, 0.8, 0.35, 0.9, 0.2, 0.8])
LABELS = np.array([0, 0, 1, 1, 0, 1, 0, 0])  # ties across labels at 0.35 and 0.8


def test_auroc_replicates_matches_sklearn_with_ties() -> None:
    ones = np.ones((1, SCORES.size))
    expected = roc_auc_score(LABELS, SCORES)
    assert rm.auroc_replicates(SCORES, LABELS, ones)[0] == pytest.approx(expected)
    assert roc_auc_score(LABELS, SCORES) == pytest.approx(12 / 15)  # 2.5 + 4.5 + 5 wins of 15 pairs
    y, s = [0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]  # all tied: 0.5
    assert rm.auroc_replicates(s, y, np.ones((1, 4)))[0] == roc_auc_score(y, s) == 0.5


def test_auroc_replicates_counts_equal_repeated_samples() -> None:
    counts = np.array([[2, 0, 1, 3, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1],
                       [0, 2, 1, 0, 2, 3, 0, 1]])
    got = rm.auroc_replicates(SCORES, LABELS, counts)
    for row, value in zip(counts, got, strict=True):
        idx = np.repeat(np.arange(SCORES.size), row)
        assert value == pytest.approx(roc_auc_score(LABELS[idx], SCORES[idx]))
    one_class = rm.auroc_replicates(SCORES[:2], LABELS[:2], np.ones((1, 2)))
    assert math.isnan(one_class[0])


# --------------------------------------------------------------- pixel metrics


def _maps_masks(levels: int | None) -> tuple[np.ndarray, np.ndarray]:
    """4 images of 12x12: two normal, two with defects (one with two regions)."""
    rng = np.random.default_rng(3)
    masks = np.zeros((4, 12, 12), bool)
    masks[2, 2:5, 2:6] = True
    masks[3, 1:3, 1:3] = True
    masks[3, 7:11, 6:10] = True
    maps = rng.random(masks.shape) + 0.6 * masks
    if levels is not None:  # few distinct values: binning is exact
        maps = np.round(maps * levels) / levels
    return maps.astype(np.float16), masks


def test_binned_pixel_metrics_exact_with_few_distinct_values() -> None:
    maps, masks = _maps_masks(levels=8)
    h = rm.pixel_histograms(maps, masks, levels=1024)
    exact = pixel_metrics(maps.astype(np.float32), masks)
    ones = np.ones((1, 4))
    assert rm.pixel_auroc_replicates(h, ones)[0] == pytest.approx(exact["pixel_auroc"], abs=1e-12)
    assert rm.aupro_replicates(h, ones)[0] == pytest.approx(exact["pixel_aupro"], abs=1e-12)
    np.testing.assert_array_equal(h.regions, [0, 0, 1, 2])


def test_binned_pixel_metrics_close_to_exact_within_binning() -> None:
    maps, masks = _maps_masks(levels=None)  # ~ 500 distinct float16 values
    exact = pixel_metrics(maps.astype(np.float32), masks)
    ones = np.ones((1, 4))
    for levels, tol in ((64, 0.01), (1024, 1e-12)):
        h = rm.pixel_histograms(maps, masks, levels=levels)
        assert h.normal.shape[1] <= levels
        assert rm.pixel_auroc_replicates(h, ones)[0] == pytest.approx(exact["pixel_auroc"], abs=tol)
        assert rm.aupro_replicates(h, ones)[0] == pytest.approx(exact["pixel_aupro"], abs=tol)


def test_pixel_replicates_equal_metrics_of_the_resampled_stack() -> None:
    maps, masks = _maps_masks(levels=8)
    h = rm.pixel_histograms(maps, masks)
    counts = np.array([[2, 0, 0, 2], [0, 1, 3, 0]])
    auc, pro = rm.pixel_auroc_replicates(h, counts), rm.aupro_replicates(h, counts)
    for row, a, p in zip(counts, auc, pro, strict=True):
        idx = np.repeat(np.arange(4), row)
        exact = pixel_metrics(maps[idx].astype(np.float32), masks[idx])
        assert a == pytest.approx(exact["pixel_auroc"], abs=1e-12)
        assert p == pytest.approx(aupro(maps[idx].astype(np.float32), masks[idx]), abs=1e-12)


def test_pixel_histograms_exclude_images_without_mask() -> None:
    maps, masks = _maps_masks(levels=8)
    h = rm.pixel_histograms(maps, masks, include=np.array([True, True, False, True]))
    assert h.normal[2].sum() == 0 and h.anomalous[2].sum() == 0
    keep = [0, 1, 3]
    exact = pixel_metrics(maps[keep].astype(np.float32), masks[keep])
    assert rm.pixel_auroc_replicates(h, np.ones((1, 4)))[0] == pytest.approx(exact["pixel_auroc"])


def test_pixel_histograms_of_float32_maps_beyond_float16() -> None:
    """Maps stored as float32 because they exceed float16's range (evaluate.to_stored) are
    binned on their own values, never cast back to float16 (which made them inf): the figures
    equal metrics.py's exact ones, and NaN/inf is still refused."""
    maps, masks = _maps_masks(levels=8)
    big = maps.astype(np.float32) * 1e5 - 2e5  # up to ~1.6e5, beyond float16's 65504
    assert np.abs(big).max() > np.finfo(np.float16).max
    h = rm.pixel_histograms(big, masks)
    exact = pixel_metrics(big, masks)
    ones = np.ones((1, 4))
    assert rm.pixel_auroc_replicates(h, ones)[0] == pytest.approx(exact["pixel_auroc"], abs=1e-12)
    assert rm.aupro_replicates(h, ones)[0] == pytest.approx(exact["pixel_aupro"], abs=1e-12)
    big[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        rm.pixel_histograms(big, masks)
