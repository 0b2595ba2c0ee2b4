"""Which rows of a table are significantly below its best (DESIGN.md "Verdicts").

The claim a leaderboard prints, "this row is significantly below the best", must hold its
error rate for the whole table, with the best chosen from the same data. So no best row is
picked first and then tested against: every pair of rows is tested, the p-values of the whole
table are adjusted together with Holm's step-down (``statsmodels.stats.multitest``), and a row
is "below the best" when some eligible row is significantly above it. If every row were truly
equal, any such mark would be wrong; Holm keeps the chance of one or more at alpha for any
dependence between the tests, so the family-wise error holds whichever row came out on top.
The rows never marked form a 95% confidence set for the best.

The unit of one pair's test carries both kinds of noise a figure has:

- **training (seeds)**: the variance of each row's seed mean, s^2 / n (Student-t, n - 1 degrees
  of freedom; zero with one seed: then training noise is not observable, and the test says so
  by carrying test-image noise only);
- **test images**: the variance of the difference of the two seed means over a bootstrap of the
  test images, both rows recomputed on the *same* resampled images (paired: an image that is
  hard for one row is usually hard for the other).

The variances add (the two levels of a hierarchical bootstrap: seeds, then images within a
seed), and the difference is judged by Student's t with Welch-Satterthwaite degrees of freedom
(the image part counted as exact), so two or three seeds are not read as a large sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

__all__ = ["ALPHA", "METHOD", "PROCEDURE", "Row", "Verdicts", "pair_tests", "row_intervals",
           "verdicts"]

ALPHA = 0.05
METHOD = "holm"  # statsmodels' name for the step-down adjustment used
PROCEDURE = ("every pair of rows tested on seeds and test images together (Welch-Satterthwaite "
             "t over the across-seed variance plus a paired bootstrap over test images), "
             "Holm-adjusted over all pairs of the table (family-wise error 5%, the choice of "
             "the best included)")
NAN = float("nan")


@dataclass(frozen=True)
class Row:
    """One table row's figure: its per-seed values (n,) and, where its per-sample scores were
    read, per-seed bootstrap replicates over test images (n, B) drawn with the image counts
    every row of the table shares (None: the row cannot be tested)."""

    seeds: np.ndarray
    replicates: np.ndarray | None = None

    @property
    def mean(self) -> float:
        x = np.asarray(self.seeds, dtype=np.float64)
        x = x[np.isfinite(x)]
        return float(x.mean()) if x.size else NAN


@dataclass(frozen=True)
class Verdicts:
    """A table's verdicts. ``best``: the row with the highest mean among the eligible ones
    (None: no row has a figure); ``below[i]``: row i is significantly below some eligible row
    (None: not testable); ``p_adjusted[i]``: the smallest Holm-adjusted p of a pair in which an
    eligible row is above row i (NaN: none); ``difference[i]``: row i's mean minus the best's."""

    best: int | None
    below: list[bool | None]
    p_adjusted: np.ndarray
    difference: np.ndarray


def _seed_parts(rows: Sequence[Row]) -> tuple[np.ndarray, float]:
    """(variance of each row's seed mean, degrees of freedom of the pooled estimate).

    Two or three seeds say little about one row's training noise, so each row takes the larger
    of its own across-seed variance and the table's pooled one (rows with one seed: the pooled
    one), with the pooled estimate's degrees of freedom. No row with two seeds: zeros, 0 df.
    """
    n = np.zeros(len(rows))
    own = np.full(len(rows), NAN)
    for i, row in enumerate(rows):
        x = np.asarray(row.seeds, dtype=np.float64)
        x = x[np.isfinite(x)]
        n[i] = x.size
        if x.size >= 2:
            own[i] = float(x.var(ddof=1))
    df = float(np.sum(np.where(n >= 2, n - 1, 0)))
    if df == 0:
        return np.zeros(len(rows)), 0.0
    pooled = float(np.nansum((n - 1) * own) / df)
    return np.fmax(own, pooled) / np.maximum(n, 1), df


def _image_covariance(rows: Sequence[Row]) -> np.ndarray:
    """(rows, rows) covariance over test-image replicates of the rows' seed means.

    A row's seeds were scored on the same images, so the covariance *between* its seeds is the
    part of its variance the test images cause; what a seed adds on its own (the noise of its
    training on those images) is training noise, already in the spread across seeds. So a row
    with several seeds keeps only the between-seed part on the diagonal (it would otherwise be
    counted twice); a one-seed row keeps its whole bootstrap variance.
    """
    reps = [np.atleast_2d(np.asarray(r.replicates, dtype=np.float64)) for r in rows]
    if len({r.shape[1] for r in reps}) > 1:
        raise ValueError("test-image replicates of one table must share one draw of counts")
    keep = np.all([np.isfinite(r).all(axis=0) for r in reps], axis=0)
    if keep.sum() < 2:
        return np.zeros((len(rows), len(rows)))
    reps = [r[:, keep] for r in reps]
    cov = np.atleast_2d(np.cov(np.stack([r.mean(axis=0) for r in reps])))
    for i, r in enumerate(reps):
        n = r.shape[0]
        if n >= 2:  # mean of the off-diagonal entries of the seeds' covariance
            own = float(np.var(r, axis=1, ddof=1).sum())
            cov[i, i] = max((n * n * cov[i, i] - own) / (n * (n - 1)), 0.0)
    return cov


def _welch_df(var: np.ndarray, seed: np.ndarray, seed_df: float) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of ``var`` = image part (exact) + ``seed`` part
    (estimated with ``seed_df``); infinite where there is no seed part."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(seed > 0, var**2 / (seed**2 / max(seed_df, 1.0)), np.inf)


def pair_tests(rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray]:
    """(differences, p-values), each (k, k): two-sided tests of mean(i) = mean(j) on seeds and
    test images together, for rows that all carry replicates from one draw of image counts."""
    means = np.array([r.mean for r in rows], dtype=np.float64)
    seed_var, seed_df = _seed_parts(rows)
    cov = _image_covariance(rows)
    d = np.diag(cov)
    seed = seed_var[:, None] + seed_var[None, :]
    var = np.clip(d[:, None] + d[None, :] - 2.0 * cov, 0.0, None) + seed
    df = _welch_df(var, seed, seed_df)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = means[:, None] - means[None, :]
        t = np.abs(diff) / np.sqrt(var)
        p = np.where(var > 0, 2.0 * sps.t.sf(t, df), np.where(diff == 0, 1.0, 0.0))
    return diff, np.where(np.isfinite(diff), p, NAN)


def verdicts(rows: Sequence[Row], eligible: Sequence[bool] | None = None,
             alpha: float = ALPHA) -> Verdicts:
    """Which rows are significantly below the best, family-wise error ``alpha`` for the table.

    ``eligible`` rows may be the best and may put others below them (e.g. the flows, not a
    reference ceiling); every row is judged. Holm's adjustment runs over every pair of
    testable rows with an eligible member.
    """
    k = len(rows)
    ok = np.ones(k, bool) if eligible is None else np.asarray(eligible, bool)
    means = np.array([r.mean for r in rows], dtype=np.float64)
    has = np.isfinite(means)
    pick = ok & has if (ok & has).any() else has
    if not pick.any():
        return Verdicts(None, [None] * k, np.full(k, NAN), np.full(k, NAN))
    best = int(np.flatnonzero(pick)[np.argmax(means[pick])])
    idx = np.flatnonzero(has & np.array([r.replicates is not None for r in rows]))
    below: list[bool | None] = [None] * k
    smallest = np.full(k, NAN)
    if idx.size:
        diff, p = pair_tests([rows[i] for i in idx])
        # pair (a, b) with a above b; tested when a may put others below
        above, under = np.nonzero((diff > 0) & ok[idx][:, None])
        i, j = np.triu_indices(idx.size, k=1)
        family = np.isfinite(p[i, j]) & (ok[idx][i] | ok[idx][j])
        p_adj = np.full((idx.size, idx.size), NAN)
        if family.any():
            q = multipletests(p[i, j][family], alpha=alpha, method=METHOD)[1]
            p_adj[i[family], j[family]] = p_adj[j[family], i[family]] = q
        for a, b in zip(above, under, strict=True):
            smallest[idx[b]] = np.fmin(smallest[idx[b]], p_adj[a, b])
        for row in idx:
            below[row] = bool(smallest[row] < alpha)
    return Verdicts(best, below, smallest, means - means[best])


def row_intervals(rows: Sequence[Row], confidence: float = 1.0 - ALPHA
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per row: the interval of its mean on the same unit as the tests (seeds and
    test images together; NaN where the row has no replicates or no figure)."""
    k = len(rows)
    low, high = np.full(k, NAN), np.full(k, NAN)
    idx = [i for i, r in enumerate(rows) if r.replicates is not None and np.isfinite(r.mean)]
    if not idx:
        return low, high
    sub = [rows[i] for i in idx]
    seed_var, seed_df = _seed_parts(sub)
    var = np.diag(_image_covariance(sub)) + seed_var
    half = sps.t.ppf(0.5 + confidence / 2, _welch_df(var, seed_var, seed_df)) * np.sqrt(var)
    means = np.array([r.mean for r in sub])
    low[idx], high[idx] = means - half, means + half
    return low, high
