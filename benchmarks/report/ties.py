"""Tied image scores in the report: which entries the evaluation flagged (measuring/ties.py).

A flagged entry is a class of a seen task with more than ``TIE_SHARE_LIMIT`` of its test images
on one image score: its AUROC is a coin flip on those ties, so a drop there may be a score that
saturated rather than a density that forgot. The leaderboard marks such rows with ``TIED`` and
lists the entries under the table; the R-matrix plot hatches such cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from nfbench.benchmarks.measuring.ties import TIE_SHARE_LIMIT
from nfbench.benchmarks.records.record import CellRecord

__all__ = ["TIED", "TIE_COLS", "tie_masks", "tie_note", "tied_entries"]

TIED = "≡"  # the leaderboard's mark of a row with tied entries
TIE_COLS = ["scenario", "label", "seed", "after_task", "task", "class", "share", "value"]


def tied_entries(records: Sequence[CellRecord]) -> pd.DataFrame:
    """Every tie flag of the ok records, one row each (columns ``TIE_COLS``)."""
    rows = [{"scenario": rec.scenario, "label": rec.label, "seed": rec.seed,
             **{k: flag[k] for k in TIE_COLS[3:]}}
            for rec in records if rec.ok for flag in rec.ties]
    return pd.DataFrame(rows, columns=TIE_COLS)


def tie_masks(entries: pd.DataFrame, n_tasks: int) -> dict[str, np.ndarray]:
    """Per group label, (T, T) True where R[t, k] has a tied class in some seed."""
    masks: dict[str, np.ndarray] = {}
    for (label, t, k), _ in entries.groupby(["label", "after_task", "task"]):
        if t < n_tasks and k < n_tasks:
            masks.setdefault(label, np.zeros((n_tasks, n_tasks), dtype=bool))[t, k] = True
    return masks


def _tasks(after: pd.Series) -> str:
    """1-based task numbers: "3" or "2-6" (contiguous) or "2, 4"."""
    t = sorted({int(a) + 1 for a in after})
    if len(t) > 2 and t == list(range(t[0], t[-1] + 1)):
        return f"{t[0]}-{t[-1]}"
    return ", ".join(map(str, t))


def tie_note(entries: pd.DataFrame) -> str | None:
    """The paragraph under a scenario's table: per marked row, each tied class with the tasks
    after which it tied, its largest share and the score most tied on; None without ties."""
    if entries.empty:
        return None
    parts = []
    for label, rows in entries.groupby("label", sort=False):
        classes = []
        for name, c in rows.groupby("class", sort=False):
            top = c.loc[c["share"].idxmax()]
            classes.append(f"{name} (after task {_tasks(c['after_task'])}, up to "
                           f"{top['share']:.0%} on {top['value']:.4g}, "
                           f"{c['seed'].nunique()} seed(s))")
        parts.append(f"{label}: {', '.join(classes)}")
    return (f"{TIED} Tied image scores: more than {TIE_SHARE_LIMIT:.0%} of a class's test images "
            "share one image score, so its AUROC is a coin flip on those ties and a drop may be "
            "a saturated score rather than a forgotten density (hatched in the R-matrix plot). "
            + "; ".join(parts) + ".")
