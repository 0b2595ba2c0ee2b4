"""Metrics: scikit-learn agreement, NaN cases, and AUPRO against a slow direct version."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from skimage.measure import label as sk_label
from sklearn.metrics import average_precision_score, roc_auc_score

from nfbench.benchmarks.measuring.metrics import (
    aupro,
    f1_max,
    image_metrics,
    pixel_metrics,
    pro_curve,
)


def slow_aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float) -> float:
    """Direct MVTec AD definition: one pass over the pixels per distinct threshold."""
    masks = masks.astype(bool)
    regions = []  # boolean pixel sets, one per connected component, per image
    for i in range(maps.shape[0]):
        lab = sk_label(masks[i], connectivity=2)  # 8-connectivity, independent labeller
        for r in range(1, lab.max() + 1):
            region = np.zeros(masks.shape, dtype=bool)
            region[i] = lab == r
            regions.append(region)
    normal = ~masks
    points = [(0.0, 0.0)]
    for t in sorted(set(maps.ravel().tolist()), reverse=True):
        above = maps >= t
        fpr = above[normal].sum() / normal.sum()
        pro = np.mean([above[r].sum() / r.sum() for r in regions])
        points.append((fpr, pro))
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=True):
        if x0 >= fpr_limit:
            break
        if x1 <= fpr_limit:
            area += 0.5 * (y0 + y1) * (x1 - x0)
        else:  # segment crosses the limit: cut it there
            y_cut = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            area += 0.5 * (y0 + y_cut) * (fpr_limit - x0)
    return area / fpr_limit


# --- image level -----------------------------------------------------------------------


def test_image_metrics_match_sklearn_and_hand_f1():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    labels = np.array([0, 0, 1, 1])
    out = image_metrics(scores, labels)
    assert out["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))  # 0.75
    assert out["image_auroc"] == pytest.approx(0.75)
    assert out["image_ap"] == pytest.approx(average_precision_score(labels, scores))
    # thresholds >=0.8: P=1 R=1/2 F1=2/3; >=0.4: P=1/2 R=1/2 F1=1/2;
    # >=0.35: P=2/3 R=1 F1=0.8; >=0.1: P=1/2 R=1 F1=2/3  -> max 0.8
    assert out["image_f1max"] == pytest.approx(0.8)


def test_image_metrics_larger_literal_against_sklearn():
    scores = np.array([0.2, 0.9, 0.9, 0.3, 0.7, 0.1, 0.5, 0.5, 0.6, 0.05, 0.95, 0.4])
    labels = np.array([0, 1, 0, 0, 1, 0, 1, 0, 1, 0, 1, 1], dtype=bool)
    out = image_metrics(scores, labels)
    assert out["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert out["image_ap"] == pytest.approx(average_precision_score(labels, scores))
    # brute-force F1 over every ">= threshold" rule
    best = 0.0
    for t in np.unique(scores):
        pred = scores >= t
        tp = np.sum(pred & labels)
        if tp:
            p, r = tp / pred.sum(), tp / labels.sum()
            best = max(best, 2 * p * r / (p + r))
    assert out["image_f1max"] == pytest.approx(best)


def test_image_metrics_single_class_is_nan_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for labels in ([0, 0, 0], [1, 1, 1]):
            out = image_metrics(np.array([0.1, 0.2, 0.3]), np.array(labels))
            assert set(out) == {"image_auroc", "image_ap", "image_f1max"}
            assert all(np.isnan(v) for v in out.values())


def test_f1_max_all_wrong_scores_is_not_nan():
    # the positive has the lowest score: best rule flags everything, P=1/3 R=1 -> F1=0.5
    assert f1_max(np.array([0.9, 0.8, 0.1]), np.array([0, 0, 1])) == pytest.approx(0.5)


def test_image_metrics_rejects_bad_input():
    with pytest.raises(ValueError):
        image_metrics(np.array([0.1, 0.2]), np.array([0, 1, 1]))
    with pytest.raises(ValueError):
        image_metrics(np.array([0.1, np.nan]), np.array([0, 1]))


# --- pixel level -----------------------------------------------------------------------

MAPS_A = np.array([[[0.9, 0.6, 0.2], [0.5, 0.1, 0.7]]])
MASKS_A = np.array([[[1, 0, 0], [1, 0, 1]]], dtype=bool)


def test_pixel_metrics_match_sklearn():
    maps = np.array(
        [
            [[0.1, 0.2, 0.9], [0.3, 0.8, 0.7], [0.0, 0.1, 0.2]],
            [[0.5, 0.4, 0.3], [0.2, 0.6, 0.1], [0.9, 0.95, 0.05]],
        ]
    )
    masks = np.array(
        [
            [[0, 0, 1], [0, 1, 1], [0, 0, 0]],
            [[0, 0, 0], [0, 0, 0], [1, 1, 0]],
        ],
        dtype=bool,
    )
    out = pixel_metrics(maps, masks)
    assert out["pixel_auroc"] == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()))
    assert out["pixel_ap"] == pytest.approx(average_precision_score(masks.ravel(), maps.ravel()))
    assert out["pixel_aupro"] == pytest.approx(aupro(maps, masks))
    assert out["pixel_aupro"] == pytest.approx(1.0)  # every anomalous pixel outranks every normal


def test_pixel_metrics_nan_without_positive_or_negative():
    maps = np.random.default_rng(0).random((2, 4, 4))
    for masks in (np.zeros((2, 4, 4), bool), np.ones((2, 4, 4), bool)):
        out = pixel_metrics(maps, masks)
        assert set(out) == {"pixel_auroc", "pixel_ap", "pixel_aupro"}
        assert all(np.isnan(v) for v in out.values())
        assert np.isnan(aupro(maps, masks))


def test_pixel_metrics_rejects_shape_mismatch():
    with pytest.raises(ValueError):
        pixel_metrics(np.zeros((2, 4, 4)), np.zeros((2, 4, 5), bool))


# --- AUPRO -------------------------------------------------------------------------------


def test_aupro_perfect_separation_is_one():
    rng = np.random.default_rng(1)
    masks = np.zeros((3, 8, 8), bool)
    masks[0, 1:3, 1:4] = True
    masks[0, 6, 6] = True
    masks[2, 4:8, 0:2] = True
    maps = np.where(masks, 1.0 + rng.random(masks.shape), rng.random(masks.shape))
    for limit in (0.3, 0.05, 1.0):
        assert aupro(maps, masks, fpr_limit=limit) == pytest.approx(1.0, abs=1e-12)


def test_aupro_hand_worked_two_regions():
    # MAPS_A / MASKS_A: region A = {0.9, 0.5} (vertical pair), region B = {0.7};
    # normal pixels {0.6, 0.2, 0.1}. Thresholds, high to low, as (FPR, PRO):
    #   0.9 -> (0, (1/2 + 0)/2 = 1/4)   0.7 -> (0, (1/2 + 1)/2 = 3/4)
    #   0.6 -> (1/3, 3/4)               0.5 -> (1/3, 1)
    #   0.2 -> (2/3, 1)                 0.1 -> (1, 1)
    # limit 0.3: PRO is 3/4 on [0, 0.3]          -> 0.3 * 3/4 / 0.3 = 0.75
    # limit 0.5: 1/3 * 3/4 + (0.5 - 1/3) * 1    = 1/4 + 1/6 = 5/12 -> / 0.5 = 5/6
    # limit 1.0: 1/4 + 2/3                       = 11/12
    assert aupro(MAPS_A, MASKS_A, fpr_limit=0.3) == pytest.approx(0.75, abs=1e-12)
    assert aupro(MAPS_A, MASKS_A, fpr_limit=0.5) == pytest.approx(5 / 6, abs=1e-12)
    assert aupro(MAPS_A, MASKS_A, fpr_limit=1.0) == pytest.approx(11 / 12, abs=1e-12)
    fpr, pro = pro_curve(MAPS_A, MASKS_A)
    np.testing.assert_allclose(fpr, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(pro, [0, 1 / 4, 3 / 4, 3 / 4, 1, 1, 1])


def test_aupro_uses_8_connectivity():
    # The mask's 3 pixels touch only diagonally at (0,1)-(1,2): one region with 8-connectivity.
    maps = np.array([[[0.3, 0.2, 0.8], [0.7, 0.6, 0.9], [0.5, 0.1, 0.05]]])
    masks = np.array([[[1, 1, 0], [0, 0, 1], [0, 0, 0]]], dtype=bool)
    # One region of 3: 0.9 -> PRO 1/3; normals 0.8, 0.7, 0.6, 0.5 take FPR to 4/6 at PRO 1/3;
    # 0.3 and 0.2 take PRO to 1; the rest is PRO 1 to FPR 1.
    # Area (limit 1): 4/6 * 1/3 + 2/6 * 1 = 2/9 + 1/3 = 5/9.
    # (4-connectivity would give regions {0.9} and {0.3, 0.2}: 4/6 * 1/2 + 1/3 = 2/3.)
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(5 / 9, abs=1e-12)


def test_aupro_regions_are_per_image():
    # Masks overlap at (0, 0) across the two images; they are still two regions:
    # image 0: region {0.9} (1 px); image 1: region {0.1, 0.1, 0.1} (3 px); normals all 0.5.
    masks = np.array([[[1, 0], [0, 0]], [[1, 1], [1, 0]]], dtype=bool)
    maps = np.array([[[0.9, 0.5], [0.5, 0.5]], [[0.1, 0.1], [0.1, 0.5]]])
    # Thresholds: 0.9 -> (0, (1 + 0)/2); 0.5 -> (1, 1/2); 0.1 -> (1, 1). Area (limit 1) = 1/2.
    # (One merged 4-px region would give PRO 1/4 at 0.9 and area 1/4.)
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(0.5, abs=1e-12)
    assert slow_aupro(maps, masks, 1.0) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_aupro_matches_slow_reference_on_random_examples(seed):
    rng = np.random.default_rng(seed)
    n, h, w = rng.integers(1, 4), rng.integers(3, 9), rng.integers(3, 9)
    masks = rng.random((n, h, w)) < rng.uniform(0.1, 0.4)
    masks[0, 0, 0] = True  # at least one region
    masks[-1, -1, -1] = False  # at least one normal pixel
    if seed % 2:  # integer scores: many ties across normal and anomalous pixels
        maps = rng.integers(0, 6, size=(n, h, w)).astype(float) + masks * rng.integers(0, 3)
    else:
        maps = rng.normal(size=(n, h, w)) + 0.8 * masks
    for limit in (0.3, 0.1, 0.5, 1.0):
        assert aupro(maps, masks, limit) == pytest.approx(slow_aupro(maps, masks, limit), abs=1e-9)


def test_aupro_rejects_bad_limit():
    with pytest.raises(ValueError):
        aupro(MAPS_A, MASKS_A, fpr_limit=0.0)
    with pytest.raises(ValueError):
        aupro(MAPS_A, MASKS_A, fpr_limit=1.5)


def test_float16_maps_are_counted_per_value_with_the_same_exact_figures():
    """Stored maps are float16: counting pixels per float16 value (no sort) must give the
    figures of scikit-learn and of the direct AUPRO definition on the same values, ties and
    negative scores included."""
    rng = np.random.default_rng(3)
    maps = np.round(rng.normal(0, 2, (4, 12, 12)), 1).astype(np.float16)  # many ties
    maps[0, 0, 0] = np.float16(-0.0)
    masks = np.zeros((4, 12, 12), dtype=bool)
    masks[1, 2:6, 3:8] = masks[2, 7:11, 1:4] = masks[3, 0:3, 9:12] = True
    maps[masks] += np.float16(1.5)
    out = pixel_metrics(maps, masks)
    exact = maps.astype(np.float64)
    assert out["pixel_auroc"] == pytest.approx(roc_auc_score(masks.ravel(), exact.ravel()),
                                               abs=1e-12)
    assert out["pixel_ap"] == pytest.approx(
        average_precision_score(masks.ravel(), exact.ravel()), abs=1e-12)
    assert out["pixel_aupro"] == pytest.approx(slow_aupro(exact, masks, 0.3), abs=1e-9)
    shifted = exact * 1.0000001 + 1e-7  # same order and ties, not float16: the sorting path
    assert pixel_metrics(shifted, masks) == pytest.approx(out, abs=1e-12)
