"""compare.md's data: which figures a native model and its anomalib reference are compared
on, read from one cell record, and the status line of one side (the text is
compare_text.py, the intervals intervals.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nfbench.benchmarks.records.record import CellRecord
from nfbench.benchmarks.report.data import number, summarised

__all__ = ["COMPARED_COSTS", "compare_rows", "record_metrics", "reference_name", "side_status"]

NAN = float("nan")


def reference_name(model: str) -> str:
    """The anomalib reference entry of a native model."""
    return f"anomalib.{model}"


COMPARED_COSTS: tuple[tuple[str, str], ...] = (
    ("train_s_per_epoch", "train s/epoch"),
    ("latency_ms_p50", "latency p50 (ms, batch 1)"),
    ("memory_mb_batch1", "memory (MB, batch 1)"),
    ("memory_mb_batch32", "memory (MB, batch 32)"),
    ("params_trainable", "trainable params"),
)


def compare_rows() -> list[tuple[str, str, bool]]:
    """(key, label, accuracy?) of each compared figure: the ACC of every summarised
    (per-class) metric of the table, then the costs."""
    return ([(s.key, s.label, True) for s in summarised() if not s.pooled]
            + [(key, label, False) for key, label in COMPARED_COSTS])


def record_metrics(rec: CellRecord) -> dict[str, float]:
    """The compared numbers of one finished cell (NaN where the record lacks them)."""
    cost = rec.cost
    epochs = rec.config.get("epochs") or 0
    times = cost.train_time_s
    per_epoch = sum(times) / (epochs * len(times)) if times and epochs else NAN
    memory = {k: number(getattr(cost, k)) for k in ("memory_mb_batch1", "memory_mb_batch32")}
    return {
        **{s.key: rec.summary_value(s.key, "acc") for s in summarised() if not s.pooled},
        "train_s_per_epoch": per_epoch,
        "latency_ms_p50": number(cost.latency_ms_p50),
        # schema 1: one peak over both batch sizes
        **{k: number(cost.peak_memory_mb) if np.isnan(v) else v for k, v in memory.items()},
        "params_trainable": float(max(cost.params_trainable)) if cost.params_trainable else NAN,
    }


def side_status(records: Sequence[CellRecord], registered: bool) -> str:
    """"ok", "ok (2 of 3 seeds; failed: ...)", "failed: ...", "not run" or "not registered"
    for one side (one model name) of a comparison; ‡ marks batch-dependent scores."""
    if not registered:
        return "not registered"
    if not records:
        return "not run"
    bad = [r for r in records if not r.ok]
    message = next((r.error.message for r in bad if r.error and r.error.message), "")
    failed = f"failed: {message.splitlines()[0][:80]}" if message else "failed"
    mark = " ‡" if any(r.batch_dependent_scores for r in records) else ""
    if not bad:
        return "ok" + mark
    if len(bad) == len(records):
        return failed
    return f"ok{mark} ({len(records) - len(bad)} of {len(records)} seeds; {failed})"
