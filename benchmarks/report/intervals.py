"""Intervals and tests of the report: the bootstrap over test images and each row against
its scenario's best (DESIGN.md "Uncertainty"; the numerics are ``statistics.py``).

Works on typed records, the per-sample scores ``files.read_cell_scores`` loaded and the
frames of ``data``; nothing here reads a file or formats a number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from nfbench.benchmarks.measuring import statistics as st
from nfbench.benchmarks.records.record import CellRecord
from nfbench.benchmarks.report import compare_data
from nfbench.benchmarks.report.data import (
    PRIMARY,
    boot_cols,
    frame_keys,
    group_key,
    is_false,
    nanmean,
)

__all__ = ["bootstrap_groups", "cell_replicates", "compare_tables", "versus_best",
           "with_versus_best"]

NAN = float("nan")


# ---------------------------------------------------------------- test-image bootstrap


def cell_replicates(records: Sequence[CellRecord], scores: Mapping[str, st.CellScores],
                    n_boot: int = st.N_BOOT, seed: int = st.BOOT_SEED
                    ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, tuple]]:
    """Bootstrap replicates of every ok cell with scores, and its test-set signature.

    Returns ({cell_id: {"<metric>_<acc|fm|bwt>": (n_boot,)}}, {cell_id: signature}). Cells on
    one test set share one draw of counts (fixed seed): rows are paired, and a re-run of the
    report gives the same text. Datasets without masks get no pixel replicates.
    """
    counts: dict[tuple, np.ndarray] = {}
    reps: dict[str, dict[str, np.ndarray]] = {}
    sigs: dict[str, tuple] = {}
    for rec in records:
        cell = scores.get(rec.cell_id) if rec.ok else None
        if cell is None:
            continue
        if cell.signature not in counts:
            counts[cell.signature] = st.stratified_counts(cell.strata, n_boot, seed)
        pixel = not is_false(rec.dataset.get("has_masks"))
        reps[rec.cell_id] = {
            f"{m}_{k}": v
            for m, R in st.bootstrap_cell(cell, counts[cell.signature], pixel=pixel).items()
            for k, v in st.summarize_replicates(R).items() if np.isfinite(v).any()}
        sigs[rec.cell_id] = cell.signature
    return reps, sigs


def _group_replicates(records: Sequence[CellRecord], reps: dict, sigs: dict
                      ) -> tuple[dict[tuple, dict[str, np.ndarray]], dict[tuple, tuple]]:
    """Per group, its seeds' replicates averaged (groups whose seeds share one test set)."""
    by_group: dict[tuple, list[str]] = {}
    for rec in records:
        if rec.cell_id in reps:
            by_group.setdefault(group_key(rec), []).append(rec.cell_id)
    group_reps: dict[tuple, dict[str, np.ndarray]] = {}
    group_sig: dict[tuple, tuple] = {}
    for key, ids in by_group.items():
        if len({sigs[i] for i in ids}) != 1:
            continue
        cols = dict.fromkeys(c for i in ids for c in reps[i])
        group_reps[key] = {c: nanmean(np.stack([reps[i][c] for i in ids if c in reps[i]]),
                                       axis=0) for c in cols}
        group_sig[key] = sigs[ids[0]]
    return group_reps, group_sig


def bootstrap_groups(records: Sequence[CellRecord], agg: pd.DataFrame, reps: dict, sigs: dict
                     ) -> tuple[pd.DataFrame, dict[tuple, dict[str, np.ndarray]],
                                dict[tuple, tuple]]:
    """Add ``<col>__blo``/``__bhi`` (95% bootstrap interval over test images) to ``agg``.

    A multi-seed row is the seed mean, so its replicate is the mean of its seeds' replicates
    drawn with the same test-image counts (averaged, not pooled): the interval is the
    test-set uncertainty of the number shown, with the seeds held fixed. A row whose seeds
    were scored on different test sets gets no bootstrap interval. Also returns each row's
    averaged replicates and signature, for the paired tests.
    """
    group_reps, group_sig = _group_replicates(records, reps, sigs)
    keys = frame_keys(agg)
    cols: dict[str, list[float]] = {}
    for col in boot_cols():
        ci = [st.percentile_interval(group_reps[k][col]) if col in group_reps.get(k, {})
              else (np.nan, np.nan) for k in keys]
        cols[f"{col}__blo"], cols[f"{col}__bhi"] = [c[0] for c in ci], [c[1] for c in ci]
    boot = pd.DataFrame(cols, index=agg.index)
    out = pd.concat([agg.drop(columns=list(cols), errors="ignore"), boot], axis=1)
    return out, group_reps, group_sig


def versus_best(agg: pd.DataFrame, cells: pd.DataFrame, group_reps: dict, group_sig: dict,
                col: str = f"{PRIMARY}_acc") -> tuple[int | None, list[st.Comparison | None]]:
    """Each row of one scenario against its best FLOW row by mean ``col`` (best index, tests);
    non-flow rows (the reference ceiling) are compared with it too but never are the best, so
    the flow ranking stays readable. With no flow row, the best of all rows.

    Welch's t-test across seeds where both rows have >= 2 seeds; otherwise the paired
    bootstrap of the difference on the same resampled test images (both rows' replicates from
    one draw of counts). None where neither is possible (no scores, other test sets).
    """
    means = agg.get(f"{col}__mean", pd.Series(np.nan, index=agg.index)).to_numpy(float)
    if not np.isfinite(means).any():
        return None, [None] * len(agg)
    flows = agg["is_flow"].to_numpy(bool) if "is_flow" in agg else np.ones(len(agg), bool)
    candidates = np.where(flows & np.isfinite(means), means, np.nan)
    best = int(np.nanargmax(candidates if np.isfinite(candidates).any() else means))
    ok = cells[cells["status"] == "ok"]
    values = ok[col] if col in ok else pd.Series(np.nan, index=ok.index)
    seeds: dict[tuple, list[float]] = {}
    for k, v in zip(frame_keys(ok), values, strict=True):
        seeds.setdefault(k, []).append(float(v))
    keys = frame_keys(agg)
    kb = keys[best]
    out: list[st.Comparison | None] = []
    for i, k in enumerate(keys):
        if i == best or not np.isfinite(means[i]):
            out.append(None)
            continue
        paired = group_sig.get(k) is not None and group_sig.get(k) == group_sig.get(kb)
        a = group_reps.get(k, {}).get(col) if paired else None
        b = group_reps.get(kb, {}).get(col) if paired else None
        out.append(st.compare(seeds.get(k, []), seeds.get(kb, []), a, b))
    return best, out


VS_BEST_COLS = ("vs_best_diff", "vs_best_lo", "vs_best_hi", "vs_best_p")


def with_versus_best(agg: pd.DataFrame, cells: pd.DataFrame, group_reps: dict,
                     group_sig: dict) -> pd.DataFrame:
    """``agg`` plus each row's test against its scenario's best row: vs_best_is_best, _diff,
    _lo, _hi, _p, _method and _significant (None: undefined, or no test possible)."""
    agg = agg.assign(vs_best_is_best=False, **dict.fromkeys(VS_BEST_COLS, np.nan),
                     vs_best_method="", vs_best_significant=None)
    agg["vs_best_significant"] = agg["vs_best_significant"].astype(object)
    for sc in dict.fromkeys(agg["scenario"]):
        idx = agg.index[agg["scenario"] == sc]
        best, tests = versus_best(agg.loc[idx], cells, group_reps, group_sig)
        for j, (i, c) in enumerate(zip(idx, tests, strict=True)):
            agg.loc[i, "vs_best_is_best"] = j == best
            if c is not None:
                agg.loc[i, list(VS_BEST_COLS)] = (c.difference, c.low, c.high, c.p_value)
                agg.at[i, "vs_best_method"] = c.method
                agg.at[i, "vs_best_significant"] = c.significant
    return agg


# ---------------------------------------------------------------- native vs reference


def _side_replicates(records: list[CellRecord], reps: dict, sigs: dict, key: str
                     ) -> tuple[np.ndarray | None, tuple | None]:
    """Seed-averaged bootstrap replicates of one side (None unless all seeds share a test set)."""
    ids = [r.cell_id for r in records if r.cell_id in reps]
    arrays = [reps[i][key] for i in ids if key in reps[i]]
    if not arrays or len(arrays) != len(records) or len({sigs[i] for i in ids}) != 1:
        return None, None
    return np.mean(np.stack(arrays), axis=0), sigs[ids[0]]


def _side(side: str, seeds: list[float], replicates: np.ndarray | None) -> dict:
    """A side's seed mean and 95% interval: across seeds where it has several, else the
    bootstrap over test images where it has replicates. Seeds that all carry one value share
    a single measurement (cost is measured once per variant), so they get no interval."""
    finite = [v for v in seeds if not np.isnan(v)]
    lo, hi = st.seed_interval(seeds) if len(set(finite)) > 1 else (NAN, NAN)
    kind = "seeds" if not np.isnan(lo) else ""
    if not kind and replicates is not None:
        lo, hi = st.percentile_interval(replicates)
        kind = "bootstrap" if not np.isnan(lo) else ""
    return {side: float(np.mean(finite)) if finite else NAN, f"{side}_lo": lo,
            f"{side}_hi": hi, f"{side}_interval": kind}


def _gap(test: st.Comparison | None) -> dict:
    return {"gap_test": test.method if test else "",
            "gap_lo": test.low if test else NAN, "gap_hi": test.high if test else NAN,
            "gap_p": test.p_value if test else NAN,
            "gap_significant": test.significant if test else None}


def _metric_row(model: str, row: tuple[str, str, bool], ok: dict[str, list[CellRecord]],
                values: dict[str, list[dict]], reps: dict, sigs: dict) -> dict:
    """One compared figure of one model: both sides with intervals, ratio and the gap test
    (accuracy rows only: native - reference, Welch or paired bootstrap)."""
    key, label, accuracy = row
    seeds = {side: [v[key] for v in vals] for side, vals in values.items()}
    side_reps = {side: _side_replicates(recs, reps, sigs, f"{key}_acc") if accuracy
                 else (None, None) for side, recs in ok.items()}
    out: dict = {"model": model, "metric": label, "key": key}
    for side in ok:
        out.update(_side(side, seeds[side], side_reps[side][0]))
    native, reference = out["native"], out["reference"]
    out["native/reference"] = native / reference if reference != 0 else NAN
    test = None
    if accuracy:
        (a, sa), (b, sb) = side_reps["native"], side_reps["reference"]
        paired = sa is not None and sa == sb
        test = st.compare(seeds["native"], seeds["reference"], a if paired else None,
                          b if paired else None)
    return {**out, **_gap(test)}


def compare_tables(records: Sequence[CellRecord], models: Sequence[str], registered: set[str],
                   scores: Mapping[str, st.CellScores] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(status per model, long table: model, metric, key, native, reference, ratio, intervals).

    ``records`` may hold several seeds per model. native/reference are seed means; ``*_lo`` /
    ``*_hi`` their 95% interval (``*_interval`` says which: "seeds" or "bootstrap"); for the
    accuracy rows, ``gap_test`` / ``gap_lo`` / ``gap_hi`` / ``gap_p`` / ``gap_significant``
    judge native - reference. The bootstrap needs ``scores`` (``files.read_cell_scores``).
    """
    by_model: dict[str, list[CellRecord]] = {}
    for r in records:
        by_model.setdefault(r.model, []).append(r)
    reps, sigs = cell_replicates(records, scores) if scores else ({}, {})
    status_rows, metric_rows = [], []
    for model in models:
        sides = {"native": model, "reference": compare_data.reference_name(model)}
        status = {side: compare_data.side_status(by_model.get(name, []), name in registered)
                  for side, name in sides.items()}
        status_rows.append({"model": model, **status})
        ok = {side: [r for r in by_model.get(name, []) if r.ok]
              if status[side].startswith("ok") else [] for side, name in sides.items()}
        values = {side: [compare_data.record_metrics(r) for r in recs] for side, recs in ok.items()}
        metric_rows += [_metric_row(model, row, ok, values, reps, sigs)
                        for row in compare_data.compare_rows()]
    return pd.DataFrame(status_rows), pd.DataFrame(metric_rows)
