"""Ranks across the whole grid (DESIGN.md "Verdicts"; Demšar 2006): mean ranks over blocks,
the Friedman test, and the Nemenyi post-hoc test with its critical difference.

A block is one (scenario, class) on which every compared method was scored; within a block
the methods are ranked (1 = best, ties share the mean rank). The Friedman test
(``scipy.stats.friedmanchisquare``) asks whether the mean ranks differ at all; the Nemenyi
test (``scikit_posthocs.posthoc_nemenyi_friedman``) compares every pair, and two methods whose
mean ranks differ by less than the critical difference CD = q_alpha sqrt(k (k + 1) / (6 N))
(q_alpha: the studentized range quantile over sqrt 2) are not told apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scikit_posthocs as skp
from scipy import stats as sps

__all__ = ["RankTest", "critical_difference", "rank_test"]

ALPHA = 0.05


@dataclass(frozen=True)
class RankTest:
    """Mean ranks (1 = best, ascending) over ``blocks`` blocks, the Friedman test, the
    Nemenyi p-values (method x method) and the critical difference at ``alpha``."""

    mean_ranks: pd.Series
    blocks: int
    statistic: float
    p_value: float
    posthoc: pd.DataFrame
    cd: float
    alpha: float = ALPHA


def critical_difference(k: int, n: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of mean ranks for k methods over n blocks."""
    q = sps.studentized_range.ppf(1.0 - alpha, k, np.inf) / np.sqrt(2.0)
    return float(q * np.sqrt(k * (k + 1) / (6.0 * n)))


def rank_test(scores: pd.DataFrame, alpha: float = ALPHA) -> RankTest | None:
    """Friedman and Nemenyi on ``scores`` (blocks x methods, higher is better).

    Blocks missing any method are left out (a rank needs every method scored). None with
    fewer than 3 methods or 2 complete blocks: the Friedman test is not defined there.
    """
    complete = scores.dropna(axis=0, how="any")
    k, n = complete.shape[1], complete.shape[0]
    if k < 3 or n < 2:
        return None
    ranks = complete.rank(axis=1, ascending=False)
    mean = ranks.mean(axis=0).sort_values()
    columns = [complete[c].to_numpy(float) for c in complete.columns]
    if np.ptp(complete.to_numpy(float), axis=1).max() == 0:  # every block a full tie
        stat, p = 0.0, 1.0
    else:
        stat, p = sps.friedmanchisquare(*columns)
    post = skp.posthoc_nemenyi_friedman(complete.to_numpy(float))
    post.index = post.columns = list(complete.columns)
    return RankTest(mean, n, float(stat), float(p), post, critical_difference(k, n, alpha), alpha)
