"""Uncertainty of the summaries (DESIGN.md "Uncertainty"): intervals and paired tests.

Two sources of noise are reported apart, because they answer different questions:

- **Seeds** (training noise): the Student-t 95% interval of the mean of the per-seed figures.
  It is undefined with one seed, and says nothing about the test set.
- **Test images** (evaluation noise): a bootstrap over the stored per-sample scores. Test
  images are resampled with replacement *within each (class, label) stratum*, so every class
  keeps its normal/anomalous counts and every AUROC stays defined; the final-evaluation
  metrics and ACC (mean over tasks of R[T, k], a task's figure being the mean of its per-class
  figures, the MVTec convention) are recomputed per replicate; the interval is the 2.5th and
  97.5th percentile. Replicates are vectorised: a replicate is a row of per-image counts, so
  image AUROC is the Mann-Whitney statistic on weighted tie groups, and the pixel metrics are
  count-weighted sums of per-image histograms.

The pixel intervals (pixel AUROC, AUPRO) use *binned* scores: each class's stored maps are
cut into at most ``levels`` quantile bins (exact when a class has no more distinct values
than that; otherwise pixels within a bin count as tied). The point estimates shown beside
them stay the exact figures of ``measuring.metrics``; only the interval is binned.

Comparing two cells on the same test set uses the *same* bootstrap counts for both (paired),
and calls a difference "not significant" when the 95% interval of the difference contains 0.
Where both sides have several seeds, Welch's t-test across seeds (alpha 0.05) is used instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from nfbench.benchmarks.measuring.metrics import MetricSpec, PixelData, metric_table
from nfbench.benchmarks.measuring.replicate_metrics import LEVELS, pixel_histograms
from nfbench.benchmarks.records.record import CellRecord

__all__ = [
    "LEVELS", "CellScores", "Comparison", "bootstrap_cell", "compare", "load_cell_scores",
    "paired_bootstrap", "percentile_interval", "seed_interval", "stratified_counts",
    "summarize_replicates", "welch",
]

NAN = float("nan")
CONFIDENCE = 0.95
N_BOOT = 1000
BOOT_SEED = 0


def _nanmean(a: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """nanmean without the all-NaN RuntimeWarning (an undefined figure stays NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


# ---------------------------------------------------------------- intervals


def seed_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval of the mean of per-seed values; (NaN, NaN) with fewer than 2 seeds.

    With one seed the spread across seeds is unknown, so no interval is invented.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return NAN, NAN
    mean, sem = float(x.mean()), float(sps.sem(x))
    if sem == 0.0:  # identical seeds: scipy would return NaN for a zero scale
        return mean, mean
    lo, hi = sps.t.interval(confidence, df=x.size - 1, loc=mean, scale=sem)
    return float(lo), float(hi)


def percentile_interval(
    replicates: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaN replicates dropped; NaN if none left)."""
    r = np.asarray(replicates, dtype=np.float64).ravel()
    r = r[np.isfinite(r)]
    if r.size == 0:
        return NAN, NAN
    tail = 50.0 * (1.0 - confidence)
    lo, hi = np.percentile(r, [tail, 100.0 - tail])
    return float(lo), float(hi)


# ---------------------------------------------------------------- resampling


def stratified_counts(strata: Sequence[Hashable], n_boot: int = N_BOOT,
                      seed: int = BOOT_SEED) -> np.ndarray:
    """(n_boot, N) counts: how often each image is drawn in each replicate.

    Each stratum (e.g. (class, label)) is resampled with replacement to its own size, so the
    per-stratum totals are the same in every replicate. Strata are visited in order of first
    appearance and the generator is seeded, so two cells with the same test set get the
    same counts (that is what makes comparisons paired) and reports are reproducible.
    """
    keys = list(strata)
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_boot, len(keys)), dtype=np.float64)
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    for idx in groups.values():
        n = len(idx)
        draws = rng.integers(0, n, size=(n_boot, n)) + n * np.arange(n_boot)[:, None]
        counts[:, idx] = np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n)
    return counts


# ---------------------------------------------------------------- one cell


@dataclass
class CellScores:
    """One cell's stored per-sample scores, indexed by test image (the CSV's ``row``)."""

    n_tasks: int
    classes: np.ndarray  # (N,) class name
    labels: np.ndarray  # (N,) bool
    has_mask: np.ndarray  # (N,) False for anomalous images without ground truth
    task: np.ndarray  # (N,) task index k
    image_scores: dict[int, np.ndarray]  # after_task t -> (N,) scores (NaN where not scored)
    maps_path: Path | None
    signature: tuple = field(repr=False)  # identity of the test set, for pairing cells

    @property
    def strata(self) -> list[tuple[str, bool]]:
        """(class, label) per image: the bootstrap strata."""
        return list(zip(self.classes.tolist(), self.labels.tolist(), strict=True))


def load_cell_scores(results_dir: Path, record: CellRecord) -> CellScores | None:
    """The record's ``scores`` files as a CellScores, or None when absent or unreadable."""
    sc = record.scores or {}
    if not sc.get("csv"):
        return None
    try:
        df = pd.read_csv(Path(results_dir) / sc["csv"])
    except (OSError, ValueError):
        return None
    need = {"after_task", "task", "class_name", "path", "label", "has_mask", "image_score", "row"}
    if df.empty or not need <= set(df.columns):
        return None
    last = df[df["after_task"] == df["after_task"].max()].sort_values("row")
    n = int(df["row"].max()) + 1
    if len(last) != n or not np.array_equal(last["row"].to_numpy(), np.arange(n)):
        return None
    has_mask = last["has_mask"].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))
    scores = {}
    for t, part in df.groupby("after_task"):
        s = np.full(n, NAN)
        s[part["row"].to_numpy(int)] = part["image_score"].to_numpy(float)
        scores[int(t)] = s
    names = last["class_name"].astype(str).to_numpy()
    labels = last["label"].to_numpy(float).astype(bool)
    tail = ["/".join(Path(str(p)).parts[-3:]) for p in last["path"]]
    maps = Path(results_dir) / sc["maps"] if sc.get("maps") else None
    return CellScores(
        n_tasks=len(record.tasks) or int(last["task"].max()) + 1,
        classes=names, labels=labels, has_mask=has_mask.to_numpy(bool),
        task=last["task"].to_numpy(int), image_scores=scores,
        maps_path=maps if maps is not None and maps.is_file() else None,
        signature=tuple(zip(names.tolist(), labels.tolist(), tail, strict=True)))


def _task_row(per_class: dict[str, np.ndarray], cell: CellScores, B: int) -> np.ndarray:
    """(B, T) task figures: the mean of each task's per-class figures (NaN-skipping)."""
    row = np.full((B, cell.n_tasks), NAN)
    for k in range(cell.n_tasks):
        cls = [c for c in dict.fromkeys(cell.classes[cell.task == k]) if c in per_class]
        if cls:
            row[:, k] = _nanmean(np.stack([per_class[c] for c in cls]), axis=0)
    return row


def bootstrap_cell(cell: CellScores, counts: np.ndarray, pixel: bool = True,
                   levels: int = LEVELS) -> dict[str, np.ndarray]:
    """Replicate R matrices {metric: (B, T, T)} of every summarised metric of the table, from
    bootstrap ``counts`` (B, N).

    Image metrics fill every stored evaluation (k <= t), so ACC, FM and BWT all get
    replicates. Pixel metrics fill only the final evaluation (maps are the costly part), so
    they give ACC replicates only. Per task: the mean of its per-class figures, or for a
    `pooled` row the figure of all its images at once.
    """
    B, T = counts.shape[0], cell.n_tasks
    out = {}
    for spec in metric_table():
        if spec.summarised and spec.level == "image":
            out[spec.key] = np.full((B, T, T), NAN)
            for t, scores in cell.image_scores.items():
                if t < T:
                    row = _image_row(spec, cell, scores, counts, cell.task <= t)
                    out[spec.key][:, t, : t + 1] = row[:, : t + 1]
    last = max(cell.image_scores, default=None)
    if pixel and cell.maps_path is not None and last is not None:
        out.update(_pixel_replicates(cell, counts, last, levels))
    return out


def _image_replicates(spec: MetricSpec) -> Callable[..., np.ndarray]:
    """The row's vectorised replicates, or its `compute` on every resampled set."""
    if spec.replicates is not None:
        return spec.replicates

    def resampled(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
        values = np.full(weights.shape[0], NAN)
        for b, w in enumerate(weights.astype(np.int64)):
            y = np.repeat(labels, w)
            if y.any() and not y.all():
                values[b] = spec.compute(np.repeat(scores, w), y)
        return values

    return resampled


def _image_row(spec: MetricSpec, cell: CellScores, scores: np.ndarray, counts: np.ndarray,
               seen: np.ndarray) -> np.ndarray:
    """(B, T) replicates of one image metric after one evaluation, over the seen classes."""
    replicates = _image_replicates(spec)
    B = counts.shape[0]
    if spec.pooled:
        row = np.full((B, cell.n_tasks), NAN)
        for k in np.unique(cell.task[seen]):
            idx = np.flatnonzero((cell.task == k) & np.isfinite(scores))
            if idx.size:
                row[:, k] = replicates(scores[idx], cell.labels[idx], counts[:, idx])
        return row
    per_class = {}
    for c in dict.fromkeys(cell.classes[seen]):
        idx = np.flatnonzero((cell.classes == c) & np.isfinite(scores))
        if idx.size:
            per_class[c] = replicates(scores[idx], cell.labels[idx], counts[:, idx])
    return _task_row(per_class, cell, B)


def _final_maps(cell: CellScores, last: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(maps of the final evaluation, masks), or None when absent or without ground truth."""
    try:
        with np.load(cell.maps_path) as z:
            if f"maps_t{last}" not in z.files or "masks" not in z.files:
                return None
            masks = z["masks"]
            if not masks.any():  # no ground truth at all: pixel metrics are not defined
                return None
            return z[f"maps_t{last}"], masks
    except (OSError, ValueError):
        return None


def _pixel_fallback(spec: MetricSpec, maps: np.ndarray, masks: np.ndarray,
                    weights: np.ndarray) -> np.ndarray:
    """`compute` of a pixel metric without vectorised replicates, on each resampled set."""
    values = np.full(weights.shape[0], NAN)
    for b, w in enumerate(weights.astype(np.int64)):
        rows = np.repeat(np.arange(len(maps)), w)
        data = PixelData(maps[rows], masks[rows])
        if data.defined:
            values[b] = spec.compute(data)
    return values


def _pixel_replicates(cell: CellScores, counts: np.ndarray, last: int,
                      levels: int) -> dict[str, np.ndarray]:
    """Replicates of every summarised pixel metric, final evaluation (row `last`) only."""
    loaded = _final_maps(cell, last)
    specs = [m for m in metric_table() if m.summarised and m.level == "pixel"]
    if loaded is None or not specs:
        return {}
    maps, masks = loaded
    B, T = counts.shape[0], cell.n_tasks
    include = ~cell.labels | cell.has_mask
    per_class: dict[str, dict[str, np.ndarray]] = {m.key: {} for m in specs}
    for c in dict.fromkeys(cell.classes):
        idx = np.flatnonzero(cell.classes == c)
        h = pixel_histograms(maps[idx], masks[idx], include[idx], levels)
        normal = counts[:, idx] @ h.normal
        for spec in specs:
            if spec.replicates is not None:
                values = spec.replicates(h, counts[:, idx], normal)
            else:
                kept = idx[include[idx]]
                values = _pixel_fallback(spec, maps[kept], masks[kept].astype(bool),
                                         counts[:, kept])
            per_class[spec.key][c] = values
    out = {}
    for key, values in per_class.items():
        out[key] = np.full((B, T, T), NAN)
        out[key][:, last] = _task_row(values, cell, B)
    return out


def summarize_replicates(R: np.ndarray) -> dict[str, np.ndarray]:
    """ACC, FM and BWT of each replicate of (B, T, T): ``forgetting.summarize`` row-wise.

    Not-yet-seen entries (t < k) are masked; NaN terms are skipped in the means.
    """
    m = np.array(R, dtype=np.float64)
    B, T, _ = m.shape
    upper = np.triu_indices(T, k=1)
    m[:, upper[0], upper[1]] = NAN
    final = m[:, T - 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        acc = np.nanmean(final, axis=1)
        if T == 1:
            return {"acc": acc, "fm": np.full(B, NAN), "bwt": np.full(B, NAN)}
        best = np.nanmax(m[:, : T - 1, : T - 1], axis=1)  # over rows t < T-1 (t < k is NaN)
        fm = np.nanmean(best - final[:, : T - 1], axis=1)
        k = np.arange(T - 1)
        bwt = np.nanmean(final[:, : T - 1] - m[:, k, k], axis=1)
    return {"acc": acc, "fm": fm, "bwt": bwt}


# ---------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class Comparison:
    """Difference a - b of two rows with its 95% interval and the test that judged it."""

    method: str  # "welch" (several seeds each) or "paired bootstrap" (same test images)
    difference: float
    low: float
    high: float
    p_value: float = NAN  # Welch only
    significant: bool | None = None  # None: undefined (e.g. no spread at all)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, difference: float | None = None,
                     confidence: float = CONFIDENCE) -> Comparison:
    """Paired test from replicates of both sides drawn with the *same* counts.

    Significant when the percentile interval of a - b excludes 0. ``difference`` is the exact
    point difference (defaults to the mean replicate difference).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    lo, hi = percentile_interval(d, confidence)
    point = float(_nanmean(d)) if difference is None else float(difference)
    sig = None if not np.isfinite(lo) else bool(not lo <= 0.0 <= hi)
    return Comparison("paired bootstrap", point, lo, hi, NAN, sig)


def paired_seeds(a: Sequence[float], b: Sequence[float], alpha: float = 0.05,
                 confidence: float = CONFIDENCE) -> Comparison:
    """a - b paired by seed (e.g. one trained model scored two ways): Student's t on the
    per-seed differences (scipy's ttest_rel), significant when p < alpha. Differences that are
    all equal have no spread: the interval is that value, significant unless it is 0."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return Comparison("paired t", float(d.mean()) if d.size else NAN, NAN, NAN, NAN, None)
    if np.ptp(d) == 0:
        return Comparison("paired t", float(d[0]), float(d[0]), float(d[0]),
                          1.0 if d[0] == 0 else 0.0, bool(d[0] != 0))
    res = sps.ttest_rel(d, np.zeros_like(d))
    lo, hi = res.confidence_interval(confidence)
    p = float(res.pvalue)
    return Comparison("paired t", float(d.mean()), float(lo), float(hi), p, bool(p < alpha))


def welch(a: Sequence[float], b: Sequence[float], alpha: float = 0.05,
          confidence: float = CONFIDENCE) -> Comparison:
    """Welch's t-test across seeds (unequal variances), significant when p < alpha."""
    x, y = (np.asarray(v, dtype=np.float64) for v in (a, b))
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    diff = float(x.mean() - y.mean()) if x.size and y.size else NAN
    if x.size < 2 or y.size < 2:
        return Comparison("welch", diff, NAN, NAN, NAN, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sps.ttest_ind(x, y, equal_var=False)
        lo, hi = res.confidence_interval(confidence)
    p = float(res.pvalue)
    significant = None if np.isnan(p) else bool(p < alpha)
    return Comparison("welch", diff, float(lo), float(hi), p, significant)


def compare(a_seeds: Sequence[float], b_seeds: Sequence[float], a_reps: np.ndarray | None,
            b_reps: np.ndarray | None, alpha: float = 0.05) -> Comparison | None:
    """The test a comparison of two rows uses: Welch when both have >= 2 seeds, else paired
    bootstrap on the (seed-averaged) replicates; None when neither is possible."""
    na = int(np.isfinite(np.asarray(a_seeds, dtype=float)).sum())
    nb = int(np.isfinite(np.asarray(b_seeds, dtype=float)).sum())
    if na >= 2 and nb >= 2:
        return welch(a_seeds, b_seeds, alpha)
    if a_reps is None or b_reps is None:
        return None
    diff = float(_nanmean(np.asarray(a_seeds, float)) - _nanmean(np.asarray(b_seeds, float)))
    return paired_bootstrap(a_reps, b_reps, diff if np.isfinite(diff) else None,
                            confidence=1.0 - alpha)
