"""Continual-learning summaries of an accuracy matrix R (pure functions).

R is a T x T array with R[t, k] = score on task k after training task t (0-based
here; DESIGN.md numbers tasks 1..T). NaN marks "not evaluated". Following
Avalanche, these functions take a literal matrix and never read trainer state, so
the same numbers can be recomputed from stored results.

With tasks 1..T (DESIGN.md):
    ACC = mean_{k<=T} R[T,k]
    FM  = mean_{k<T} ( max_{k<=t<T} R[t,k] - R[T,k] )
    BWT = mean_{k<T} ( R[T,k] - R[k,k] )
Entries with t < k (task not yet seen) are masked and enter none of these. NaN
terms (a metric undefined for one task, or rows never evaluated as with the
`joint` strategy that trains once) are skipped in the means; a mean over no
finite term is NaN.
"""

from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "backward_transfer", "forgetting", "summarize"]

NAN = float("nan")


def _check(R: np.ndarray) -> np.ndarray:
    """Square float copy with the not-yet-seen entries (t < k) masked to NaN."""
    m = np.array(R, dtype=np.float64)  # copy: never modify the caller's matrix
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"R must be a non-empty square T x T matrix, got shape {m.shape}")
    m[np.triu_indices(m.shape[0], k=1)] = NAN
    return m


def _mean(x: np.ndarray) -> float:
    """Mean of the finite entries; NaN (without a RuntimeWarning) when there are none."""
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else NAN


def _max(x: np.ndarray) -> float:
    """Max of the non-NaN entries; NaN (without a RuntimeWarning) when there are none."""
    x = x[~np.isnan(x)]
    return float(x.max()) if x.size else NAN


def accuracy(R: np.ndarray) -> float:
    """ACC: mean score over all tasks after the last task (the final row)."""
    m = _check(R)
    return _mean(m[-1])


def forgetting(R: np.ndarray) -> float:
    """FM: mean drop from each old task's best earlier score to its final score.

    The max runs over rows t in [k, T-1) (0-based), i.e. before the last task, so
    a task that improved during the last task gives a negative term. NaN when
    T == 1 or no earlier row was evaluated.
    """
    m = _check(R)
    T = m.shape[0]
    drops = np.array([_max(m[k : T - 1, k]) - m[T - 1, k] for k in range(T - 1)])
    return _mean(drops)


def backward_transfer(R: np.ndarray) -> float:
    """BWT: mean change of each old task from just after learning it to the end.

    Negative means forgetting, positive means later tasks helped. NaN when T == 1
    or no diagonal entry of an old task was evaluated.
    """
    m = _check(R)
    T = m.shape[0]
    k = np.arange(T - 1)
    return _mean(m[T - 1, k] - m[k, k])


def summarize(R: np.ndarray) -> dict[str, float]:
    """All three summaries of one matrix: {"acc", "fm", "bwt"}."""
    return {"acc": accuracy(R), "fm": forgetting(R), "bwt": backward_transfer(R)}
