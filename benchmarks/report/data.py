"""The report's data: frames, aggregation and intervals from typed cell records.

Pure pandas/numpy over ``CellRecord`` objects (and, for the bootstrap, the per-sample scores
``files.read_cell_scores`` loaded): no file is read or written here and nothing is formatted.
Which metrics are summarised, and how they are named, comes from ``metrics.metric_table()`` at
call time, so a new summarised row reaches every frame without an edit here.

Columns of the aggregate (one row per variant/scenario/strategy/task-aware group):
``<col>__mean``/``__std``/``__n`` over ok seeds, ``__lo``/``__hi`` the 95% Student-t interval
across seeds, ``__blo``/``__bhi`` the 95% bootstrap interval over test images.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nfbench.benchmarks.measuring import metrics
from nfbench.benchmarks.measuring import statistics as st
from nfbench.benchmarks.measuring.forgetting import summarize
from nfbench.benchmarks.measuring.metrics import MetricSpec
from nfbench.benchmarks.measuring.routing import SPLITS, final_accuracy
from nfbench.benchmarks.records.record import CellRecord
from nfbench.benchmarks.running.strategies import available_strategies, strategy_of_label

__all__ = [
    "ALL_STRATEGIES", "GROUP_KEYS", "PRIMARY", "STATS", "MapColumn", "MapRow", "aggregate",
    "boot_cols", "bounds",
    "cells_frame", "color_range", "frame_keys", "group_key", "interval", "is_false",
    "is_model_mechanism",
    "map_cells", "mean_r", "nanmean", "number", "per_class_frame", "pick_samples",
    "pooled_base", "r_matrices_frame", "rank_blocks", "routing_per_task", "scenario_order",
    "seed_r", "strategy_kind", "summarised", "task_names", "trainable_per_task",
]

GROUP_KEYS = ["variant", "scenario", "strategy", "task_aware"]
PRIMARY = "image_auroc"  # the metric rows are ranked and tested by (its ACC)
STATS = ("acc", "fm", "bwt")
COST_KEYS = ("latency_ms_p50", "latency_ms_q25", "latency_ms_q75", "latency_ms_p95",
             "latency_samples", "throughput_img_s", "memory_mb_batch1", "memory_mb_batch32",
             "peak_memory_mb", "feature_time_s", "params_total")
TEXT_COLS = ["cell_id", "status", "model", "label", "seed", "backbone", "device", "torch",
             "memory_kind", "memory_note", "error_type", "error_message", "error_task",
             "error_step", "created", "skip_reason", "dataset_name", "has_masks",
             "batch_dependent", "is_flow", "calibration", *GROUP_KEYS]
# the group-level text columns `aggregate` carries (joined over seeds)
JOINED_COLS = ("memory_kind", "memory_note", "dataset_name", "calibration")
THRESHOLD_KEYS = ("f1", "precision", "recall", "false_alarm_rate")
NAN = float("nan")


# ---------------------------------------------------------------- the metric table


def summarised() -> list[MetricSpec]:
    """The table's summarised rows (ACC/FM/BWT in every record), read at call time."""
    return [spec for spec in metrics.metric_table() if spec.summarised]


def pooled_base(spec: MetricSpec) -> str | None:
    """The per-class metric a pooled row pools (same level and function), or None."""
    return next((s.key for s in metrics.metric_table() if not s.pooled and s.level == spec.level
                 and s.compute is spec.compute), None)


def boot_cols() -> list[str]:
    """Aggregate columns the test-image bootstrap can fill (pooled rows have no replicate)."""
    return [f"{s.key}_{k}" for s in summarised() if not s.pooled for k in STATS]


def bounds(col: str) -> tuple[float, float]:
    """Range of a column's values: scores in [0, 1], FM/BWT in [-1, 1], costs >= 0."""
    if col.endswith("_acc") or col.startswith("thr_"):
        return 0.0, 1.0
    if col.endswith(("_fm", "_bwt")):
        return -1.0, 1.0
    return 0.0, np.inf


def nanmean(a: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """nanmean without the all-NaN RuntimeWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def number(value: float | int | None) -> float:
    """A record's optional figure as a float (NaN where it is missing)."""
    return NAN if value is None else float(value)


def group_key(rec: CellRecord) -> tuple[str, str, str, bool]:
    """(variant, scenario, strategy, task_aware): the group a record's seeds form."""
    return (rec.variant, rec.scenario, rec.strategy, rec.task_aware)


def frame_keys(df: pd.DataFrame) -> list[tuple[str, str, str, bool]]:
    """group_key of every row of a cells or aggregate frame."""
    return [(str(v), str(sc), str(s), bool(a)) for v, sc, s, a in
            zip(df["variant"], df["scenario"], df["strategy"], df["task_aware"], strict=True)]


# ---------------------------------------------------------------- one row per cell


def _summary(rec: CellRecord, metric: str) -> dict[str, float]:
    """ACC/FM/BWT of one metric: the record's summary, else (older records) from its R."""
    if not rec.summary.get(metric) and rec.ok and (R := rec.r_matrix(metric)) is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return summarize(R)
    return {k: rec.summary_value(metric, k) for k in STATS}


def _identity_cols(rec: CellRecord) -> dict:
    row = {"cell_id": rec.cell_id, "status": rec.status, "model": rec.model,
           "variant": rec.variant, "scenario": rec.scenario, "strategy": rec.strategy,
           "seed": rec.seed, "task_aware": rec.task_aware, "label": rec.label}
    row.update(backbone=rec.backbone.get("name"), n_tasks=len(rec.tasks),
               device=rec.environment.get("device"), torch=rec.environment.get("torch"))
    return row


def _score_cols(rec: CellRecord) -> dict[str, float]:
    """<metric>_<acc|fm|bwt> of every summarised metric (and any other the record has);
    a single-phase strategy (joint) trains once, so it has no FM/BWT."""
    row = {}
    single = strategy_of_label(rec.strategy).single_phase
    for m in dict.fromkeys([*(s.key for s in summarised()), *rec.summary]):
        s = _summary(rec, m)
        for k in STATS:
            row[f"{m}_{k}"] = NAN if single and k != "acc" else number(s.get(k))
    return row


def _threshold_cols(rec: CellRecord) -> dict[str, float]:
    """thr_<rule>_<f1|precision|recall|false_alarm_rate>: what each rule (and the oracle)
    reports."""
    return {f"thr_{rule}_{k}": number(v[k]) for rule, v in (rec.thresholds or {}).items()
            for k in THRESHOLD_KEYS if k in v}


def _cost_cols(rec: CellRecord) -> dict:
    cost = rec.cost
    row: dict = {k: number(getattr(cost, k)) for k in COST_KEYS}
    for k in ("memory_mb_batch1", "memory_mb_batch32"):  # schema 1: one peak for both
        if not np.isfinite(row[k]):
            row[k] = row["peak_memory_mb"]
    row.update(memory_kind=cost.memory_kind, memory_note=cost.memory_note)
    return row


def _calibration(rec: CellRecord) -> str | None:
    cal = rec.threshold_calibration or {}
    if cal.get("source") and isinstance(cal.get("images"), int | float):
        return f"{cal['source']} ({int(cal['images'])} images)"
    return cal.get("source")


def _context_cols(rec: CellRecord) -> dict:
    train, trainable = rec.cost.train_time_s, rec.cost.params_trainable
    return {
        "dataset_name": rec.dataset.get("name"), "has_masks": rec.dataset.get("has_masks"),
        "batch_dependent": rec.batch_dependent_scores, "calibration": _calibration(rec),
        "is_flow": rec.is_flow,
        "skip_reason": rec.skip_reason,
        "train_time_s_total": float(np.nansum([number(v) for v in train])) if train else NAN,
        "params_trainable_last": number(trainable[-1]) if trainable else NAN,
        "wall_time_s": number(rec.wall_time_s),
    }


def _error_cols(rec: CellRecord) -> dict:
    err = rec.error
    return {"error_type": err.type if err else None, "error_message": err.message if err else None,
            "error_task": err.task if err else None, "error_step": err.step if err else None,
            "created": rec.created or None}


def routing_col(split: str) -> str:
    """The cells/aggregate column of the final routing accuracy on `split` images."""
    return f"routing_{split}_acc"


def _routing_cols(rec: CellRecord) -> dict[str, float]:
    """Final-evaluation routing accuracy (mean over tasks) on normal and on anomalous test
    images; NaN (n/a) where the model does not route or the evaluation was task-aware."""
    return {routing_col(split): final_accuracy(rec.routing, split) for split in SPLITS}


def cells_frame(records: Sequence[CellRecord]) -> pd.DataFrame:
    """One row per cell: identity, summary (acc/fm/bwt per metric), thresholds, cost, error,
    routing accuracy."""
    rows = [{**_identity_cols(rec), **_score_cols(rec), **_threshold_cols(rec),
             **_cost_cols(rec), **_context_cols(rec), **_error_cols(rec), **_routing_cols(rec)}
            for rec in records]
    df = pd.DataFrame(rows, columns=None if rows else [*TEXT_COLS, "n_tasks"])
    num = [c for c in df.columns if c not in TEXT_COLS]
    df[num] = df[num].apply(pd.to_numeric, errors="coerce").astype(float)
    return df


def per_class_frame(records: Sequence[CellRecord]) -> pd.DataFrame:
    """One row per (cell, class) of the final evaluation, one column per metric."""
    rows = [{"cell_id": rec.cell_id, **{k: getattr(rec, k) for k in GROUP_KEYS},
             "seed": rec.seed, "status": rec.status, "class_name": cls,
             **{m: number(v) for m, v in vals.items()}}
            for rec in records for cls, vals in (rec.per_class or {}).items()]
    empty = ["cell_id", *GROUP_KEYS, "seed", "status", "class_name"]
    return pd.DataFrame(rows, columns=None if rows else empty)


ALL_STRATEGIES = "all strategies"


def rank_blocks(pc: pd.DataFrame, metric: str = PRIMARY) -> dict[str, pd.DataFrame]:
    """Blocks x methods score matrices for the ranks (``measuring.ranking``): per strategy
    (own mechanisms together as "own"), blocks = (scenario, class) and methods = variants;
    then over all strategies, methods = "variant / strategy". Seed means of the final
    evaluation's per-class figure; a block lacking a method is kept (NaN) for the test to
    drop."""
    ok = pc[pc["status"] == "ok"] if len(pc) else pc
    if ok.empty or metric not in ok.columns:
        return {}
    ok = ok.assign(kind=[strategy_kind(str(s)) + (" [task-aware]" if a else "")
                         for s, a in zip(ok["strategy"], ok["task_aware"], strict=True)])
    ok = ok.assign(method=ok["variant"].astype(str) + " / " + ok["kind"])
    out = {}
    for kind in sorted(dict.fromkeys(ok["kind"]), key=lambda k: _strategy_rank(k.split()[0])):
        part = ok[ok["kind"] == kind]
        out[kind] = part.pivot_table(index=["scenario", "class_name"], columns="variant",
                                     values=metric, aggfunc="mean")
    out[ALL_STRATEGIES] = ok.pivot_table(index=["scenario", "class_name"], columns="method",
                                         values=metric, aggfunc="mean")
    return out


def r_matrices_frame(records: Sequence[CellRecord]) -> pd.DataFrame:
    """Long form of every R matrix: cell_id, metric, t, k, value (NaN where not evaluated)."""
    rows = [(rec.cell_id, m, t, k, v) for rec in records for m in rec.R
            if (R := rec.r_matrix(m)) is not None for (t, k), v in np.ndenumerate(R)]
    return pd.DataFrame(rows, columns=["cell_id", "metric", "t", "k", "value"])


# ---------------------------------------------------------------- aggregation over seeds


def _seed_lo(s: pd.Series) -> float:
    """Lower end of the 95% Student-t interval across seeds (NaN with one seed)."""
    return st.seed_interval(s.to_numpy(float))[0] if s.notna().sum() > 1 else np.nan


def _seed_hi(s: pd.Series) -> float:
    """Upper end of the 95% Student-t interval across seeds (NaN with one seed)."""
    return st.seed_interval(s.to_numpy(float))[1] if s.notna().sum() > 1 else np.nan


def _joined(s: pd.Series) -> str:
    """Distinct non-empty values of a text column, "/"-joined."""
    return "/".join(sorted({str(x) for x in s.dropna() if str(x)}))


def is_false(v: object) -> bool:
    """True only for an explicit False (a record without the field is not "no masks")."""
    return isinstance(v, bool | np.bool_) and not v


def strategy_kind(strategy: str) -> str:
    """The registered strategy behind a record's label: a model's own mechanism (named after
    its model in records) is one kind, whichever model it belongs to."""
    return strategy_of_label(strategy).name


def is_model_mechanism(strategy: str) -> bool:
    """Whether a record's strategy label is a model's own mechanism."""
    return strategy_of_label(strategy).model_mechanism


def strategy_order() -> list[str]:
    """The registered strategies in their own sort order (tables, legends, markers)."""
    return sorted(available_strategies(), key=lambda s: strategy_of_label(s).sort_rank)


def _strategy_rank(s: str) -> tuple[int, str]:
    """Sort key: by each strategy's own rank (finetune, replay, model mechanisms, joint)."""
    return (strategy_of_label(s).sort_rank, s)


def _numbers(ok: pd.DataFrame, num: list[str]) -> pd.DataFrame:
    """mean/std/n and the seed interval (clipped to the column's range) per group."""
    agg = ok.groupby(GROUP_KEYS, dropna=False)[num].agg(["mean", "std", "count", _seed_lo,
                                                         _seed_hi])
    names = {"count": "n", "_seed_lo": "lo", "_seed_hi": "hi"}
    agg.columns = [f"{c}__{names.get(s, s)}" for c, s in agg.columns]
    # a t-interval over few seeds can leave the metric's range (AUROC > 1)
    low, high = np.array([bounds(c) for c in num], dtype=float).T if num else ([], [])
    for end in ("lo", "hi"):
        cols = [f"{c}__{end}" for c in num]
        agg[cols] = np.clip(agg[cols].to_numpy(float), low, high)
    return agg.copy()  # one block again, before the text columns


def _texts(agg: pd.DataFrame, ok: pd.DataFrame) -> pd.DataFrame:
    g = ok.groupby(GROUP_KEYS, dropna=False)
    for col in JOINED_COLS:
        agg[col] = g[col].agg(_joined)
    agg["no_masks"] = g["has_masks"].agg(lambda s: len(s) > 0 and all(is_false(v) for v in s))
    agg["batch_dependent"] = g["batch_dependent"].agg(lambda s: bool(s.fillna(False).any()))
    agg["is_flow"] = g["is_flow"].agg(lambda s: bool(s.fillna(True).all()))
    agg["seeds"] = g.size()
    return agg


def _ordered(out: pd.DataFrame) -> pd.DataFrame:
    """Rows by scenario, variant, strategy rank, task-aware."""
    key = [(sc, v, _strategy_rank(s), a) for v, sc, s, a in frame_keys(out)]
    return out.iloc[sorted(range(len(out)), key=lambda i: key[i])].reset_index(drop=True)


def aggregate(cells: pd.DataFrame) -> pd.DataFrame:
    """Per group: ``<col>__mean``/``__std``/``__n``/``__lo``/``__hi`` over ok seeds, plus
    seeds, failed, label and the joined text columns (memory kind, dataset, calibration).

    ``__lo``/``__hi`` is the 95% Student-t interval across seeds (NaN with one seed), clipped
    to the column's range (scores [0, 1], FM/BWT [-1, 1], costs >= 0). Every group that has a
    run cell appears (groups with only failed cells have NaN numbers); skipped cells form no
    group. std is the sample std (ddof=1).
    """
    cells = cells[cells["status"] != "skipped"] if len(cells) else cells
    if cells.empty:
        return pd.DataFrame()
    ok = cells[cells["status"] == "ok"]
    agg = _texts(_numbers(ok, [c for c in cells.columns if c not in TEXT_COLS]), ok)
    groups = cells.groupby(GROUP_KEYS, dropna=False)
    out = agg.reindex(groups.size().index)
    out["seeds"] = out["seeds"].fillna(0).astype(int)
    out["no_masks"] = out["no_masks"].fillna(False).astype(bool)
    out["batch_dependent"] = out["batch_dependent"].fillna(False).astype(bool)
    out["is_flow"] = out["is_flow"].fillna(True).astype(bool)
    out["failed"] = groups["status"].agg(lambda s: int((s != "ok").sum()))
    out["label"] = groups["label"].first()  # the records' own label (CellRecord.label)
    return _ordered(out.reset_index())


def interval(agg: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, lo, hi) of an aggregated column for error bars: the 95% interval on seeds and
    test images together where the verdicts computed one (``__clo``/``__chi``), else across
    seeds, else the bootstrap over test images, else NaN."""
    def get(suffix: str) -> np.ndarray:
        return agg.get(f"{col}__{suffix}", pd.Series(np.nan, index=agg.index)).to_numpy(float)

    lo, hi = get("lo"), get("hi")
    seeds = np.isfinite(lo) & np.isfinite(hi)
    lo, hi = np.where(seeds, lo, get("blo")), np.where(seeds, hi, get("bhi"))
    both = np.isfinite(get("clo")) & np.isfinite(get("chi"))
    low, high = bounds(col)
    return (get("mean"), np.where(both, np.clip(get("clo"), low, high), lo),
            np.where(both, np.clip(get("chi"), low, high), hi))


# ---------------------------------------------------------------- figures' data


@dataclass
class MapColumn:
    """One cell's final anomaly maps of the figure's samples (None: not in this cell)."""

    title: str
    maps: list[np.ndarray | None]
    lo: float
    hi: float


@dataclass
class MapRow:
    """One sample of the figure: its label, input image and ground-truth mask (None where
    there is none: the figure says so instead of drawing an all-black mask)."""

    label: str
    image: np.ndarray | None
    mask: np.ndarray | None


def mean_r(records: Sequence[CellRecord], metric: str = PRIMARY) -> dict[str, np.ndarray]:
    """Seed-mean R matrix (points) per group label over ok records (NaN where never
    evaluated); seeds whose matrix has another shape than the group's first are left out."""
    return {lab: nanmean(np.stack([m for m in ms if m.shape == ms[0].shape]), axis=0)
            for lab, ms in seed_r(records, metric).items()}


def seed_r(records: Sequence[CellRecord], metric: str = PRIMARY) -> dict[str, list[np.ndarray]]:
    """Per group label, one R matrix (points) per ok seed, for intervals across seeds."""
    stacks: dict[str, list[np.ndarray]] = {}
    for rec in records:
        R = rec.r_matrix(metric) if rec.ok else None
        if R is not None:
            stacks.setdefault(rec.label, []).append(R * 100)
    return stacks


def state_per_task(records: Sequence[CellRecord]) -> dict[str, np.ndarray]:
    """Per group label, the model's state (parameters + buffers, MB) after each training
    phase, seed mean: flat for a flow, growing for a memory bank or a class table."""
    stacks: dict[str, list[list[float]]] = {}
    for rec in records:
        if rec.ok and rec.cost.state_mb:
            stacks.setdefault(rec.label, []).append(rec.cost.state_mb)
    return {lab: np.mean([s for s in rows if len(s) == len(rows[0])], axis=0)
            for lab, rows in stacks.items()}


def trainable_per_task(records: Sequence[CellRecord]) -> dict[str, np.ndarray]:
    """Per group label, the parameters each training phase trained (seed mean): a flow that
    isolates tasks trains its base and first pieces, then one task's pieces each time."""
    stacks: dict[str, list[list[int]]] = {}
    for rec in records:
        if rec.ok and rec.cost.params_trainable:
            stacks.setdefault(rec.label, []).append(rec.cost.params_trainable)
    return {lab: np.mean([s for s in rows if len(s) == len(rows[0])], axis=0)
            for lab, rows in stacks.items()}


def routing_per_task(records: Sequence[CellRecord]) -> dict[str, dict[str, np.ndarray]]:
    """{split: {group label: routing accuracy after each phase}}: the mean over the tasks
    learned so far, seed mean; only groups whose model routed."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for split in SPLITS:
        stacks: dict[str, list[np.ndarray]] = {}
        for rec in records:
            rows = (rec.routing or {}).get(split) if rec.ok else None
            if rows:
                acc = np.array([[NAN if v is None else v for v in row] for row in rows], float)
                stacks.setdefault(rec.label, []).append(nanmean(acc, axis=1))
        out[split] = {lab: nanmean(np.stack([c for c in cs if len(c) == len(cs[0])]), axis=0)
                      for lab, cs in stacks.items()}
    return out


def task_names(records: Sequence[CellRecord]) -> list[list[str]]:
    """The scenario's tasks (class names per task), from the first record that has them."""
    return next((rec.tasks for rec in records if rec.tasks), [])


def map_cells(records: Sequence[CellRecord]) -> dict[str, CellRecord]:
    """One cell per variant for the anomaly-map figure: its joint cell if there is one, else
    finetune, replay, then other strategies; lowest seed first."""
    def rank(label: str) -> tuple[bool, int]:  # single-phase first, then by the strategy's rank
        strategy = strategy_of_label(label)
        return not strategy.single_phase, strategy.sort_rank

    ok = sorted((r for r in records if r.ok and r.scores),
                key=lambda r: (r.variant, rank(r.strategy), r.strategy, r.task_aware, r.seed))
    chosen: dict[str, CellRecord] = {}
    for rec in ok:
        chosen.setdefault(rec.variant, rec)
    return chosen


def final_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of a scores table that belong to the final evaluation."""
    return rows[rows["after_task"] == rows["after_task"].max()]


def pick_samples(rows: pd.DataFrame, n: int) -> pd.DataFrame:
    """Deterministic anomalous test samples of the final evaluation, spread over classes
    (those with a ground-truth mask first)."""
    anom = final_rows(rows)
    anom = anom[anom["label"].astype(bool)]
    no_mask = ~anom["has_mask"].astype(bool) if "has_mask" in anom else False
    anom = anom.assign(_no_mask=no_mask).sort_values(
        ["_no_mask", "task", "class_name", "path"], kind="stable").drop(columns="_no_mask")
    classes = sorted(anom["class_name"].unique())
    if not classes:
        return anom
    idx = sorted({int(round(i)) for i in np.linspace(0, len(classes) - 1, min(n, len(classes)))})
    first = anom.drop_duplicates("class_name")
    by_class = dict(zip(first["class_name"], first.index, strict=True))
    picked = [by_class[classes[i]] for i in idx]
    rest = [i for i in anom.index if i not in picked][: n - len(picked)]
    return anom.loc[picked + rest]


def color_range(maps: np.ndarray) -> tuple[float, float]:
    """A cell's colour range for its maps: their 1st..99.9th percentile (on a subsample)."""
    sub = maps[:: max(1, len(maps) // 64)].astype(np.float32)
    lo, hi = np.nanpercentile(sub, [1, 99.9]) if np.isfinite(sub).any() else (0.0, 1.0)
    return float(lo), float(hi) if hi > lo else float(lo) + 1e-6


def scenario_order(records: Sequence[CellRecord], agg: pd.DataFrame) -> list[str]:
    """The scenarios of the aggregate in the order they were first run: a grid's main
    scenario before the ones added to its results later."""
    first_run = dict.fromkeys(r.scenario for r in sorted(records, key=lambda r: r.created))
    return [sc for sc in first_run if not agg.empty and (agg["scenario"] == sc).any()]
