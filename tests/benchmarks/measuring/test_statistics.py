"""Intervals, the stratified bootstrap and paired tests, on literal examples.

Every figure is checked against scikit-learn / scipy or the exact functions of metrics.py.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from nfbench.benchmarks.measuring import statistics as st
from nfbench.benchmarks.measuring.forgetting import summarize
from nfbench.benchmarks.records.record import CellRecord

# --------------------------------------------------------------- seed interval


def test_seed_interval_student_t() -> None:
    x = [0.640, 0.489, 0.485]  # CFLOW finetune ACC over three seeds (H100 bench)
    lo, hi = st.seed_interval(x)
    half = 4.302652729911275 * np.std(x, ddof=1) / math.sqrt(3)  # t_{0.975, 2}
    assert lo == pytest.approx(np.mean(x) - half) and hi == pytest.approx(np.mean(x) + half)
    assert lo < 0.485 and hi > 0.640  # three seeds: wider than their range


def test_seed_interval_undefined_with_one_seed() -> None:
    assert all(math.isnan(v) for v in st.seed_interval([0.8]))
    assert all(math.isnan(v) for v in st.seed_interval([0.8, float("nan")]))
    assert st.seed_interval([0.7, 0.7]) == (0.7, 0.7)


def test_percentile_interval() -> None:
    r = np.arange(1001) / 1000.0
    assert st.percentile_interval(r) == pytest.approx((0.025, 0.975))
    assert st.percentile_interval(np.append(r, np.nan)) == pytest.approx((0.025, 0.975))
    assert all(math.isnan(v) for v in st.percentile_interval(np.array([np.nan])))


# --------------------------------------------------------------- resampling


def test_stratified_counts_keep_stratum_sizes_and_are_seeded() -> None:
    strata = [("a", 0)] * 3 + [("a", 1)] * 2 + [("b", 0)] * 4 + [("b", 1)]
    c = st.stratified_counts(strata, n_boot=200, seed=0)
    assert c.shape == (200, 10)
    np.testing.assert_array_equal(c[:, :3].sum(1), 3)
    np.testing.assert_array_equal(c[:, 3:5].sum(1), 2)
    np.testing.assert_array_equal(c[:, 5:9].sum(1), 4)
    np.testing.assert_array_equal(c[:, 9], 1)  # a stratum of one is always itself
    np.testing.assert_array_equal(c, st.stratified_counts(strata, n_boot=200, seed=0))
    assert not np.array_equal(c, st.stratified_counts(strata, n_boot=200, seed=1))
    assert (c[:, :3] != 1).any()  # really resampled


# --------------------------------------------------------------- summaries


def test_summarize_replicates_matches_forgetting() -> None:
    nan = float("nan")
    mats = np.array([
        [[0.9, nan, nan], [0.8, 0.7, nan], [0.6, 0.75, 0.95]],
        [[0.9, 0.2, 0.1], [nan, 0.7, 0.3], [0.5, nan, 0.9]],  # unseen entries are ignored
        [[nan, nan, nan], [nan, nan, nan], [0.6, 0.7, 0.8]],  # joint: final row only
    ])
    got = st.summarize_replicates(mats)
    for b, R in enumerate(mats):
        ref = summarize(R)
        for k in ("acc", "fm", "bwt"):
            assert got[k][b] == pytest.approx(ref[k], nan_ok=True), (b, k)


def _cell(scores: dict | None, tasks: list[list[str]] | None = None) -> CellRecord:
    return CellRecord("c", "ok", "m", "m", "s", "finetune", 0, tasks=tasks or [], scores=scores)


def _write_cell(tmp: Path, rows: list[tuple]) -> tuple[Path, CellRecord]:
    """A scores CSV (no maps) for one cell; rows = (after_task, task, class, label, score)."""
    (tmp / "scores").mkdir(parents=True, exist_ok=True)
    with open(tmp / "scores" / "c.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["after_task", "task", "class_name", "path", "label", "has_mask", "image_score",
                    "row"])
        n = len({(r[1], r[2], i) for i, r in enumerate(rows) if r[0] == 0})
        for i, (t, k, c, y, s) in enumerate(rows):
            w.writerow([t, k, c, f"{c}/test/{i % n:03d}.png", y, True, s, i % n])
    return tmp, _cell({"csv": "scores/c.csv"}, [["a", "b"], ["c"]])


def test_bootstrap_cell_task_figure_is_mean_of_classes(tmp_path: Path) -> None:
    # task 0 = classes a and b, task 1 = class c; evaluated after task 0 and after task 1
    base = [(0, "a", 0, 0.1), (0, "a", 1, 0.9), (0, "a", 0, 0.5), (0, "a", 1, 0.4),
            (0, "b", 0, 0.6), (0, "b", 1, 0.7), (0, "b", 0, 0.65), (0, "b", 1, 0.95),
            (1, "c", 0, 0.2), (1, "c", 1, 0.3), (1, "c", 0, 0.25), (1, "c", 1, 0.1)]
    rows = [(t, k, c, y, s + 0.01 * t) for t in (0, 1) for k, c, y, s in base]
    res, rec = _write_cell(tmp_path, rows)
    cell = st.load_cell_scores(res, rec)
    assert cell is not None and cell.n_tasks == 2 and cell.maps_path is None
    R = st.bootstrap_cell(cell, np.ones((1, 12)))["image_auroc"][0]
    y = np.array([r[2] for r in base])
    s = np.array([r[3] for r in base])
    per = {c: roc_auc_score(y[i], s[i]) for c in "abc"
           if (i := [j for j, r in enumerate(base) if r[1] == c])}
    pooled = roc_auc_score(y[:8], s[:8])
    assert R[1, 0] == pytest.approx((per["a"] + per["b"]) / 2)  # MVTec convention
    assert R[1, 0] != pytest.approx(pooled)  # not the pooled ROC
    assert R[1, 1] == pytest.approx(per["c"])
    assert R[0, 0] == pytest.approx(R[1, 0]) and math.isnan(R[0, 1])  # unseen: not filled
    reps = st.bootstrap_cell(cell, st.stratified_counts(cell.strata, 300, 0))["image_auroc"]
    lo, hi = st.percentile_interval(st.summarize_replicates(reps)["acc"])
    assert lo <= np.mean([R[1, 0], R[1, 1]]) <= hi and lo < hi


def test_load_cell_scores_missing(tmp_path: Path) -> None:
    assert st.load_cell_scores(tmp_path, _cell(None)) is None
    assert st.load_cell_scores(tmp_path, _cell({"csv": "scores/nope.csv"})) is None


# --------------------------------------------------------------- comparisons


def test_paired_bootstrap() -> None:
    rng = np.random.default_rng(0)
    a = 0.8 + 0.02 * rng.standard_normal(1000)
    same = st.paired_bootstrap(a, a)
    assert (same.low, same.high, same.significant) == (0.0, 0.0, False)  # contains 0
    up = st.paired_bootstrap(a + 0.05, a, difference=0.05)
    assert up.significant is True and up.difference == 0.05 and up.low == pytest.approx(0.05)
    noisy = st.paired_bootstrap(a, rng.permutation(a))  # unpaired noise of +-0.06 around 0
    assert noisy.significant is False and noisy.low < 0 < noisy.high


def test_welch_matches_scipy() -> None:
    a, b = [0.640, 0.489, 0.485], [0.70, 0.72, 0.69]
    c = st.welch(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert c.method == "welch" and c.p_value == pytest.approx(ref.pvalue)
    assert c.difference == pytest.approx(np.mean(a) - np.mean(b))
    assert c.significant is bool(ref.pvalue < 0.05) is False  # p = 0.079
    assert c.low < c.difference < c.high
    assert st.welch([0.6], b).significant is None


def test_compare_picks_the_test() -> None:
    reps = np.linspace(0.7, 0.9, 101)
    assert st.compare([0.8, 0.82], [0.7, 0.71], reps, reps).method == "welch"
    boot = st.compare([0.8], [0.7, 0.71], reps + 0.1, reps)
    assert boot.method == "paired bootstrap" and boot.significant is True
    assert boot.difference == pytest.approx(0.8 - 0.705)
    assert st.compare([0.8], [0.7], None, reps) is None


def test_paired_seeds_is_scipys_paired_t_and_handles_no_spread():
    a, b = [0.80, 0.83, 0.79], [0.82, 0.84, 0.83]
    res = st.paired_seeds(a, b)
    ref = sps.ttest_rel(a, b)
    lo, hi = ref.confidence_interval()
    assert res.method == "paired t" and res.p_value == pytest.approx(ref.pvalue)
    assert (res.low, res.high) == (pytest.approx(lo), pytest.approx(hi))
    assert res.difference == pytest.approx(np.mean(np.subtract(a, b)))
    same = st.paired_seeds([0.5, 0.6], [0.5, 0.6])  # the same model scored the same way
    assert (same.difference, same.low, same.high, same.significant) == (0, 0, 0, False)
    assert st.paired_seeds([0.5], [0.4]).significant is None  # one pair: no test
