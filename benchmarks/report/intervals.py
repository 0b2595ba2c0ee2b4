"""Intervals and tests of the report: the bootstrap over test images and each row against
its scenario's best (DESIGN.md "Uncertainty", "Verdicts"; the numerics are
``statistics.py`` and ``comparisons.py``).

Works on typed records, the per-sample scores ``files.read_cell_scores`` loaded and the
frames of ``data``; nothing here reads a file or formats a number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from nfbench.benchmarks.measuring import comparisons as cmp
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

__all__ = ["bootstrap_groups", "cell_replicates", "compare_tables", "with_routing_gaps",
           "with_variant_gaps", "with_versus_best"]

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
                      ) -> dict[tuple, dict[str, np.ndarray]]:
    """Per group, its seeds' replicates averaged (groups whose seeds share one test set)."""
    by_group: dict[tuple, list[str]] = {}
    for rec in records:
        if rec.cell_id in reps:
            by_group.setdefault(group_key(rec), []).append(rec.cell_id)
    group_reps: dict[tuple, dict[str, np.ndarray]] = {}
    for key, ids in by_group.items():
        if len({sigs[i] for i in ids}) != 1:
            continue
        cols = dict.fromkeys(c for i in ids for c in reps[i])
        group_reps[key] = {c: nanmean(np.stack([reps[i][c] for i in ids if c in reps[i]]),
                                       axis=0) for c in cols}
    return group_reps


def bootstrap_groups(records: Sequence[CellRecord], agg: pd.DataFrame, reps: dict, sigs: dict
                     ) -> pd.DataFrame:
    """Add ``<col>__blo``/``__bhi`` (95% bootstrap interval over test images) to ``agg``.

    A multi-seed row is the seed mean, so its replicate is the mean of its seeds' replicates
    drawn with the same test-image counts (averaged, not pooled): the interval is the
    test-set uncertainty of the number shown, with the seeds held fixed. A row whose seeds
    were scored on different test sets gets no bootstrap interval.
    """
    group_reps = _group_replicates(records, reps, sigs)
    keys = frame_keys(agg)
    cols: dict[str, list[float]] = {}
    for col in boot_cols():
        ci = [st.percentile_interval(group_reps[k][col]) if col in group_reps.get(k, {})
              else (np.nan, np.nan) for k in keys]
        cols[f"{col}__blo"], cols[f"{col}__bhi"] = [c[0] for c in ci], [c[1] for c in ci]
    boot = pd.DataFrame(cols, index=agg.index)
    out = pd.concat([agg.drop(columns=list(cols), errors="ignore"), boot], axis=1)
    return out


def _table_rows(agg: pd.DataFrame, cells: pd.DataFrame, reps: dict, sigs: dict, col: str
                ) -> list[cmp.Row]:
    """One ``comparisons.Row`` per aggregate row: its ok seeds' ``col`` and, where every seed
    has replicates on the table's common test set, their test-image replicates."""
    ok = cells[cells["status"] == "ok"]
    values = ok[col] if col in ok else pd.Series(np.nan, index=ok.index)
    by_key: dict[tuple, list[tuple[float, str]]] = {}
    for k, v, cid in zip(frame_keys(ok), values, ok["cell_id"], strict=True):
        by_key.setdefault(k, []).append((float(v), str(cid)))
    keys = frame_keys(agg)
    found = [sigs[c] for k in keys for _, c in by_key.get(k, []) if c in sigs]
    common = max(set(found), key=found.count) if found else None
    rows = []
    for k in keys:
        items = by_key.get(k, [])
        ids = [c for _, c in items]
        scored = bool(ids) and all(col in reps.get(c, {}) and sigs.get(c) == common for c in ids)
        rows.append(cmp.Row(np.array([v for v, _ in items], dtype=float),
                            np.stack([reps[c][col] for c in ids]) if scored else None))
    return rows


VS_BEST_COLS = ("vs_best_diff", "vs_best_p")


def with_versus_best(agg: pd.DataFrame, cells: pd.DataFrame, reps: dict, sigs: dict,
                     col: str = f"{PRIMARY}_acc") -> pd.DataFrame:
    """``agg`` plus, per scenario, the verdicts of ``comparisons.verdicts`` on ``col``:
    vs_best_is_best, vs_best_diff (row - best), vs_best_p (smallest Holm-adjusted p of a flow
    above the row), vs_best_significant (significantly below the best; None: not testable),
    and ``<col>__clo``/``__chi``: the row's 95% interval on seeds and test images together.

    Only task-agnostic flow rows may be the best or put others below them (a reference
    ceiling, or a row given the oracle task id with --task-aware, is judged but never is the
    best: the ranking compares flows under the protocol's own, task-agnostic test); with no
    such row, every row.
    """
    agg = agg.assign(vs_best_is_best=False, **dict.fromkeys(VS_BEST_COLS, np.nan),
                     vs_best_significant=None, **{f"{col}__clo": np.nan, f"{col}__chi": np.nan})
    agg["vs_best_significant"] = agg["vs_best_significant"].astype(object)
    for sc in dict.fromkeys(agg["scenario"]):
        idx = agg.index[agg["scenario"] == sc]
        part = agg.loc[idx]
        rows = _table_rows(part, cells, reps, sigs, col)
        eligible = ~part["task_aware"].to_numpy(bool)
        if "is_flow" in part:
            eligible &= part["is_flow"].to_numpy(bool)
        v = cmp.verdicts(rows, eligible=eligible if eligible.any() else None)
        agg.loc[idx, f"{col}__clo"], agg.loc[idx, f"{col}__chi"] = cmp.row_intervals(rows)
        agg.loc[idx, "vs_best_diff"], agg.loc[idx, "vs_best_p"] = v.difference, v.p_adjusted
        agg.loc[idx, "vs_best_is_best"] = [j == v.best for j in range(len(idx))]
        for i, below in zip(idx, v.below, strict=True):
            agg.at[i, "vs_best_significant"] = below
    return agg


# ---------------------------------------------------------------- a row against its twin

GroupKey = tuple[str, str, str, bool]  # variant, scenario, strategy, task-aware


def _pair_test(mine: list[CellRecord], theirs: list[CellRecord], reps: dict, sigs: dict,
               by_seed: bool) -> st.Comparison | None:
    """`by_seed`: the two sides are one trained model per seed scored two ways, so the
    difference is paired by seed (Student's t on the per-seed differences, >= 2 seeds).
    Otherwise, or with one seed, the compare tables' test: Welch across seeds where both
    have >= 2, else a paired bootstrap over the test images both scored."""
    mine_acc, theirs_acc = ({r.seed: r.summary_value(PRIMARY, "acc") for r in side}
                            for side in (mine, theirs))
    common = sorted(set(mine_acc) & set(theirs_acc))
    if by_seed and len(common) >= 2:
        return st.paired_seeds([mine_acc[s] for s in common], [theirs_acc[s] for s in common])
    key = f"{PRIMARY}_acc"
    (a, sa), (b, sb) = (_side_replicates(side, reps, sigs, key) for side in (mine, theirs))
    paired = sa is not None and sa == sb
    return st.compare(list(mine_acc.values()), list(theirs_acc.values()),
                      a if paired else None, b if paired else None)


def _with_gaps(agg: pd.DataFrame, records: Sequence[CellRecord], reps: dict, sigs: dict,
               prefix: str, twin: Callable[[pd.Series], GroupKey | None],
               by_seed: bool = False) -> pd.DataFrame:
    """Columns `<prefix>`, `_lo`, `_hi`, `_test`: each row's image ACC minus its twin group's
    (`twin(row)`; None: no twin), with the 95% interval of `_pair_test`."""
    groups: dict[GroupKey, list[CellRecord]] = {}
    for r in records:
        if r.ok:
            groups.setdefault((r.variant, r.scenario, r.strategy, bool(r.task_aware)),
                              []).append(r)
    cols = {prefix: [NAN] * len(agg), f"{prefix}_lo": [NAN] * len(agg),
            f"{prefix}_hi": [NAN] * len(agg), f"{prefix}_test": [""] * len(agg)}
    for i, (_, row) in enumerate(agg.iterrows()):
        other = twin(row)
        mine = groups.get((row["variant"], row["scenario"], row["strategy"],
                           bool(row["task_aware"])))
        theirs = groups.get(other) if other else None
        if not mine or not theirs:
            continue
        test = _pair_test(mine, theirs, reps, sigs, by_seed)
        if test is not None:
            cols[prefix][i], cols[f"{prefix}_lo"][i] = test.difference, test.low
            cols[f"{prefix}_hi"][i], cols[f"{prefix}_test"][i] = test.high, test.method
    return agg.assign(**cols)


def with_routing_gaps(agg: pd.DataFrame, records: Sequence[CellRecord], reps: dict, sigs: dict
                      ) -> pd.DataFrame:
    """`routing_gap*`: each task-agnostic row minus its oracle-routing (--task-aware) twin,
    what routing costs; paired by seed (a seed's two cells train the same model)."""
    return _with_gaps(agg, records, reps, sigs, "routing_gap", lambda r: None if r["task_aware"]
                      else (r["variant"], r["scenario"], r["strategy"], True), by_seed=True)


def with_variant_gaps(agg: pd.DataFrame, records: Sequence[CellRecord], reps: dict, sigs: dict
                      ) -> pd.DataFrame:
    """`variant_gap*`: each variant with changed flags (an ablation) minus the model's
    default variant on the same scenario, strategy and routing, paired by seed (a seed fixes
    the initialisation and the data order on both sides); `model`: each row's model."""
    model_of = {r.variant: r.model for r in records}
    agg = agg.assign(model=[model_of.get(v, v) for v in agg["variant"]])

    def default(r: pd.Series) -> GroupKey | None:
        return (None if r["model"] == r["variant"]
                else (r["model"], r["scenario"], r["strategy"], bool(r["task_aware"])))

    return _with_gaps(agg, records, reps, sigs, "variant_gap", default, by_seed=True)


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
