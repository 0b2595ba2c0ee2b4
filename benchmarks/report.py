"""Leaderboard, CSVs and plots from stored cell records (``nfbench report``).

Reads ``<results_dir>/cells/*.json`` (one record per cell, DESIGN.md "Outputs"),
groups cells by (variant, scenario, strategy, task_aware) across seeds and writes
``leaderboard.md``, ``csv/*.csv`` and ``plots/*.png`` under ``out_dir``. The per-cell
``summary`` block is the source of truth for ACC/FM/BWT; it is recomputed from R only
where a record lacks it. Scores are shown in points (x100) as the mean over seeds with its
95% intervals (``statistics.py``): ``[a, b]`` a bootstrap over test images from the stored
per-sample scores, ``s[a, b]`` a Student-t interval across seeds (rows with >= 2 seeds).
Every row is tested against the scenario's best image ACC, so differences inside the noise
are marked as such. Skipped cells (``status: skipped``) are listed as "not run", never as
failures.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from nfbench.benchmarks import plots
from nfbench.benchmarks import statistics as st
from nfbench.benchmarks.forgetting import summarize

__all__ = [
    "aggregate", "bootstrap_groups", "cell_replicates", "cells_frame", "fmt_ci", "fmt_pm",
    "load_records", "per_class_frame", "r_matrices_frame", "r_array", "versus_best",
    "write_report",
]

GROUP_KEYS = ["variant", "scenario", "strategy", "task_aware"]
SUMMARY_METRICS = ("image_auroc", "pixel_auroc", "pixel_aupro")
METRIC_NAMES = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "pixel_aupro": "AUPRO"}
COST_KEYS = ("latency_ms_p50", "latency_ms_p95", "throughput_img_s", "memory_mb_batch1",
             "memory_mb_batch32", "peak_memory_mb", "feature_time_s", "params_total")
TEXT_COLS = ["cell_id", "status", "model", "label", "seed", "backbone", "device", "torch",
             "memory_kind", "memory_note", "error_type", "error_message", "error_task",
             "error_step", "created", "skip_reason", "dataset_name", "has_masks",
             "batch_dependent", "calibration", *GROUP_KEYS]
# the group-level text columns `aggregate` carries (joined over seeds)
JOINED_COLS = ("memory_kind", "memory_note", "dataset_name", "calibration")
NA = "n/a"
NO_MASKS = "n/a (no masks)"
POOLED = "image_auroc_pooled"


def _f(x: object) -> float:
    """Float, or NaN for None / non-numbers."""
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def r_array(rec: dict, metric: str) -> np.ndarray | None:
    """The record's T x T matrix for ``metric`` as floats (null -> NaN), or None."""
    rows = (rec.get("R") or {}).get(metric)
    if not rows:
        return None
    return np.array([[_f(v) for v in row] for row in rows], dtype=np.float64)


def _label(variant: str, strategy: str, task_aware: bool) -> str:
    """Display label of a group: "variant / strategy" (+ task-aware mark)."""
    return f"{variant} / {strategy}" + (" [task-aware]" if task_aware else "")


def _strategy_rank(s: str) -> tuple[int, str]:
    """Sort key: finetune, replay, model-specific strategies, joint last."""
    return ({"finetune": 0, "replay": 1, "joint": 9}.get(s, 5), s)


def slug(text: str) -> str:
    """File-name-safe form of a scenario name."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "scenario"


def load_records(results_dir: Path) -> tuple[list[dict], list[str]]:
    """All readable records in ``results_dir/cells`` (sorted by name) and notes on bad files."""
    records, notes = [], []
    for p in sorted((Path(results_dir) / "cells").glob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            notes.append(f"skipped unreadable record `{p.name}`: {e}")
            continue
        rec.setdefault("cell_id", p.stem)
        records.append(rec)
    return records, notes


def cells_frame(records: list[dict]) -> pd.DataFrame:
    """One row per cell: identity, summary (acc/fm/bwt per metric), thresholds, cost, error."""
    rows = []
    for rec in records:
        env, cost, err = rec.get("environment") or {}, rec.get("cost") or {}, rec.get("error") or {}
        row: dict = {k: rec.get(k) for k in ("cell_id", "status", "model", "variant", "scenario",
                                              "strategy", "seed")}
        row["task_aware"] = bool(rec.get("task_aware", False))
        row["label"] = _label(str(row["variant"]), str(row["strategy"]), row["task_aware"])
        row["backbone"] = (rec.get("backbone") or {}).get("name")
        row["n_tasks"] = len(rec.get("tasks") or [])
        row["device"], row["torch"] = env.get("device"), env.get("torch")
        summary = rec.get("summary") or {}
        for m in dict.fromkeys([*SUMMARY_METRICS, *summary]):
            s = summary.get(m)
            if not s and rec.get("status") == "ok" and (R := r_array(rec, m)) is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    s = summarize(R)
            for k in ("acc", "fm", "bwt"):
                v = _f((s or {}).get(k))
                row[f"{m}_{k}"] = float("nan") if rec.get("strategy") == "joint" and k != "acc" else v
        for rule, v in (rec.get("thresholds") or {}).items():
            if isinstance(v, dict):
                for k in ("f1", "precision", "recall"):
                    row[f"thr_{rule}_{k}"] = _f(v.get(k))
            else:
                row[f"thr_{rule}"] = _f(v)
        for k in COST_KEYS:
            row[k] = _f(cost.get(k))
        for k in ("memory_mb_batch1", "memory_mb_batch32"):  # older records: one peak for both
            if not np.isfinite(row[k]):
                row[k] = row["peak_memory_mb"]
        row["memory_kind"], row["memory_note"] = cost.get("memory_kind"), cost.get("memory_note")
        dataset, cal = rec.get("dataset") or {}, rec.get("threshold_calibration") or {}
        row["dataset_name"], row["has_masks"] = dataset.get("name"), dataset.get("has_masks")
        row["batch_dependent"] = bool(rec.get("batch_dependent_scores", False))
        row["calibration"] = (f"{cal['source']} ({int(cal['images'])} images)" if cal.get("source")
                              and isinstance(cal.get("images"), int | float) else cal.get("source"))
        row["skip_reason"] = rec.get("skip_reason")
        tt = [_f(v) for v in cost.get("train_time_s") or []]
        row["train_time_s_total"] = float(np.nansum(tt)) if tt else float("nan")
        pt = [_f(v) for v in cost.get("params_trainable") or []]
        row["params_trainable_last"] = pt[-1] if pt else float("nan")
        row["wall_time_s"] = _f(rec.get("wall_time_s"))
        row.update(error_type=err.get("type"), error_message=err.get("message"),
                   error_task=err.get("task"), error_step=err.get("step"), created=rec.get("created"))
        rows.append(row)
    df = pd.DataFrame(rows, columns=None if rows else [*TEXT_COLS, "n_tasks"])
    num = [c for c in df.columns if c not in TEXT_COLS]
    df[num] = df[num].apply(pd.to_numeric, errors="coerce").astype(float)
    return df


def per_class_frame(records: list[dict]) -> pd.DataFrame:
    """One row per (cell, class) of the final evaluation, one column per metric."""
    rows = [{"cell_id": rec.get("cell_id"), **{k: rec.get(k) for k in GROUP_KEYS}, "seed": rec.get("seed"),
             "status": rec.get("status"), "class_name": cls, **{m: _f(v) for m, v in (vals or {}).items()}}
            for rec in records for cls, vals in (rec.get("per_class") or {}).items()]
    return pd.DataFrame(rows, columns=None if rows else ["cell_id", *GROUP_KEYS, "seed", "status", "class_name"])


def r_matrices_frame(records: list[dict]) -> pd.DataFrame:
    """Long form of every R matrix: cell_id, metric, t, k, value (NaN where not evaluated)."""
    rows = [(rec.get("cell_id"), m, t, k, v)
            for rec in records for m in (rec.get("R") or {})
            if (R := r_array(rec, m)) is not None
            for (t, k), v in np.ndenumerate(R)]
    return pd.DataFrame(rows, columns=["cell_id", "metric", "t", "k", "value"])


def _seed_lo(s: pd.Series) -> float:
    """Lower end of the 95% Student-t interval across seeds (NaN with one seed)."""
    return st.seed_interval(s.to_numpy(float))[0] if s.notna().sum() > 1 else np.nan


def _seed_hi(s: pd.Series) -> float:
    """Upper end of the 95% Student-t interval across seeds (NaN with one seed)."""
    return st.seed_interval(s.to_numpy(float))[1] if s.notna().sum() > 1 else np.nan


def _joined(s: pd.Series) -> str:
    """Distinct non-empty values of a text column, "/"-joined."""
    return "/".join(sorted({str(x) for x in s.dropna() if str(x)}))


def _is_false(v: object) -> bool:
    """True only for an explicit False (a record without the field is not "no masks")."""
    return isinstance(v, bool | np.bool_) and not v


def aggregate(cells: pd.DataFrame) -> pd.DataFrame:
    """Per group: ``<col>__mean``/``__std``/``__n``/``__lo``/``__hi`` over ok seeds, plus
    seeds, failed, label and the joined text columns (memory kind, dataset, calibration).

    ``__lo``/``__hi`` is the 95% Student-t interval across seeds (NaN with one seed), clipped
    to the column's range (scores [0, 1], FM/BWT [-1, 1], costs >= 0). Every
    group that has a run cell appears (groups with only failed cells have NaN numbers);
    skipped cells form no group. std is the sample std (ddof=1).
    """
    cells = cells[cells["status"] != "skipped"] if len(cells) else cells
    if cells.empty:
        return pd.DataFrame()
    ok = cells[cells["status"] == "ok"]
    num = [c for c in cells.columns if c not in TEXT_COLS]
    g = ok.groupby(GROUP_KEYS, dropna=False)
    agg = g[num].agg(["mean", "std", "count", _seed_lo, _seed_hi])
    names = {"count": "n", "_seed_lo": "lo", "_seed_hi": "hi"}
    agg.columns = [f"{c}__{names.get(s, s)}" for c, s in agg.columns]
    # a t-interval over few seeds can leave the metric's range (AUROC > 1)
    low, high = np.array([_bounds(c) for c in num], dtype=float).T if num else ([], [])
    for end in ("lo", "hi"):
        cols = [f"{c}__{end}" for c in num]
        agg[cols] = np.clip(agg[cols].to_numpy(float), low, high)
    agg = agg.copy()  # one block again, before the text columns
    for col in JOINED_COLS:
        agg[col] = g[col].agg(_joined)
    agg["no_masks"] = g["has_masks"].agg(lambda s: len(s) > 0 and all(_is_false(v) for v in s))
    agg["batch_dependent"] = g["batch_dependent"].agg(lambda s: bool(s.fillna(False).any()))
    agg["seeds"] = g.size()
    groups = cells.groupby(GROUP_KEYS, dropna=False)
    out = agg.reindex(groups.size().index)
    out["seeds"] = out["seeds"].fillna(0).astype(int)
    out["no_masks"] = out["no_masks"].fillna(False).astype(bool)
    out["batch_dependent"] = out["batch_dependent"].fillna(False).astype(bool)
    out["failed"] = groups["status"].agg(lambda s: int((s != "ok").sum()))
    out = out.reset_index()
    out["label"] = [_label(str(v), str(s), bool(a)) for v, s, a in
                    zip(out["variant"], out["strategy"], out["task_aware"], strict=True)]
    key = [(sc, str(v), _strategy_rank(str(s)), bool(a)) for sc, v, s, a in
           zip(out["scenario"], out["variant"], out["strategy"], out["task_aware"], strict=True)]
    return out.iloc[sorted(range(len(out)), key=lambda i: key[i])].reset_index(drop=True)


BOOT_COLS = tuple(f"{m}_{k}" for m in SUMMARY_METRICS for k in ("acc", "fm", "bwt"))


def _key(r: dict | pd.Series) -> tuple[str, str, str, bool]:
    """Group key (variant, scenario, strategy, task_aware) of a record or an aggregate row."""
    return (str(r.get("variant")), str(r.get("scenario")), str(r.get("strategy")),
            bool(r.get("task_aware", False)))


def cell_replicates(records: list[dict], results_dir: Path, n_boot: int = st.N_BOOT,
                    seed: int = st.BOOT_SEED) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Bootstrap replicates of every ok cell with readable scores, and its test-set signature.

    Returns ({cell_id: {"<metric>_<acc|fm|bwt>": (n_boot,)}}, {cell_id: signature}). Cells on
    one test set share one draw of counts (fixed seed): rows are paired, and a re-run of the
    report gives the same text. Datasets without masks get no pixel replicates.
    """
    counts: dict[tuple, np.ndarray] = {}
    reps: dict[str, dict[str, np.ndarray]] = {}
    sigs: dict[str, tuple] = {}
    for rec in records:
        if rec.get("status") != "ok":
            continue
        cell = st.load_cell_scores(results_dir, rec)
        if cell is None:
            continue
        if cell.signature not in counts:
            counts[cell.signature] = st.stratified_counts(cell.strata, n_boot, seed)
        pixel = not _is_false((rec.get("dataset") or {}).get("has_masks"))
        out = {}
        for m, R in st.bootstrap_cell(cell, counts[cell.signature], pixel=pixel).items():
            for k, v in st.summarize_replicates(R).items():
                if np.isfinite(v).any():
                    out[f"{m}_{k}"] = v
        reps[str(rec["cell_id"])], sigs[str(rec["cell_id"])] = out, cell.signature
    return reps, sigs


def _seed_average(replicates: list[np.ndarray]) -> np.ndarray:
    """Replicate-wise mean over seeds (NaN-skipping, no all-NaN warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack(replicates), axis=0)


def bootstrap_groups(records: list[dict], agg: pd.DataFrame, reps: dict, sigs: dict
                     ) -> tuple[pd.DataFrame, dict[tuple, dict[str, np.ndarray]], dict[tuple, tuple]]:
    """Add ``<col>__blo``/``__bhi`` (95% bootstrap interval over test images) to ``agg``.

    A multi-seed row is the seed mean, so its replicate is the mean of its seeds' replicates
    drawn with the same test-image counts (averaged, not pooled): the interval is the
    test-set uncertainty of the number shown, with the seeds held fixed. A row whose seeds
    were scored on different test sets gets no bootstrap interval. Also returns each row's
    averaged replicates and signature, for the paired tests.
    """
    by_group: dict[tuple, list[str]] = {}
    for rec in records:
        if str(rec.get("cell_id")) in reps:
            by_group.setdefault(_key(rec), []).append(str(rec["cell_id"]))
    group_reps: dict[tuple, dict[str, np.ndarray]] = {}
    group_sig: dict[tuple, tuple] = {}
    for key, ids in by_group.items():
        if len({sigs[i] for i in ids}) != 1:
            continue
        cols = dict.fromkeys(c for i in ids for c in reps[i])
        group_reps[key] = {c: _seed_average([reps[i][c] for i in ids if c in reps[i]]) for c in cols}
        group_sig[key] = sigs[ids[0]]
    keys = [_key(r) for _, r in agg.iterrows()]
    cols: dict[str, list[float]] = {}
    for col in BOOT_COLS:
        ci = [st.percentile_interval(group_reps[k][col]) if col in group_reps.get(k, {})
              else (np.nan, np.nan) for k in keys]
        cols[f"{col}__blo"], cols[f"{col}__bhi"] = [c[0] for c in ci], [c[1] for c in ci]
    boot = pd.DataFrame(cols, index=agg.index)
    return pd.concat([agg.drop(columns=list(cols), errors="ignore"), boot], axis=1), group_reps, group_sig


def versus_best(agg: pd.DataFrame, cells: pd.DataFrame, group_reps: dict, group_sig: dict,
                col: str = "image_auroc_acc") -> tuple[int | None, list[st.Comparison | None]]:
    """Each row of one scenario against its best row by mean ``col``: (best index, tests).

    Welch's t-test across seeds where both rows have >= 2 seeds; otherwise the paired
    bootstrap of the difference on the same resampled test images (both rows' replicates from
    one draw of counts). None where neither is possible (no scores, other test sets).
    """
    means = agg.get(f"{col}__mean", pd.Series(np.nan, index=agg.index)).to_numpy(float)
    if not np.isfinite(means).any():
        return None, [None] * len(agg)
    best = int(np.nanargmax(means))
    seeds: dict[tuple, list[float]] = {}
    for _, c in cells[cells["status"] == "ok"].iterrows():
        seeds.setdefault(_key(c), []).append(_f(c.get(col)))
    keys = [_key(r) for _, r in agg.iterrows()]
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


def _fmt_vs_best(c: st.Comparison | None, is_best: bool) -> str:
    """"best", "≈ -2.1 [-6.0, +1.5]" (not significant), "-9.8 [-14.2, -5.0]", or "n/a"."""
    if is_best:
        return "best"
    if c is None or not np.isfinite(c.difference):
        return NA
    mark = {False: "≈ ", True: "", None: "? "}[c.significant]
    if c.method == "welch":
        p = "p<0.001" if c.p_value < 0.001 else f"p={c.p_value:.2f}"
        return f"{mark}{c.difference * 100:+.1f} (Welch {p})"
    return f"{mark}{c.difference * 100:+.1f} [{c.low * 100:+.1f}, {c.high * 100:+.1f}]"


def _decimals(x: float) -> int:
    """Decimals for a cost figure: 0 from 100 up, 1 from 10 up, else 2."""
    return 0 if abs(x) >= 100 else 1 if abs(x) >= 10 else 2


def fmt_pm(mean: float, std: float = float("nan"), scale: float = 100.0, decimals: int | None = 1) -> str:
    """"93.1 ± 0.4" (mean, std times ``scale``); std omitted when NaN; "n/a" when mean is NaN.

    ``decimals=None`` picks 0/1/2 decimals from the magnitude (cost figures).
    """
    if mean is None or not np.isfinite(mean):
        return NA
    m = mean * scale
    d = _decimals(m) if decimals is None else decimals
    text = f"{m:.{d}f}"
    if std is not None and np.isfinite(std):
        text += f" ± {std * scale:.{d}f}"
    return text


def _fmt_count(x: float) -> str:
    """Parameter count as 1.23M / 45.6k / 789."""
    if not np.isfinite(x):
        return NA
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


def _pm(r: pd.Series, col: str, scale: float = 100.0, decimals: int | None = 1) -> str:
    """Formatted mean ± std of aggregated column ``col`` in row ``r``."""
    return fmt_pm(r.get(f"{col}__mean", np.nan), r.get(f"{col}__std", np.nan), scale, decimals)


def fmt_ci(mean: float, seed: tuple[float, float] = (np.nan, np.nan),
           boot: tuple[float, float] = (np.nan, np.nan), scale: float = 100.0,
           decimals: int | None = 1, bounds: tuple[float, float] = (-np.inf, np.inf)) -> str:
    """"81.3 [78.0, 84.5] s[76.0, 86.6]": mean, bootstrap interval over test images, interval
    across seeds (each interval omitted where undefined); "n/a" when the mean is NaN.

    The seed interval is clipped to ``bounds`` (a t-interval over 2 seeds can pass 100 points
    of AUROC). ``decimals=None`` picks 0/1/2 decimals from the magnitude (cost figures).
    """
    if mean is None or not np.isfinite(mean):
        return NA
    m = mean * scale
    d = _decimals(m) if decimals is None else decimals
    text = f"{m:.{d}f}"
    seed = tuple(np.clip(np.asarray(seed, dtype=float), *bounds))
    for prefix, (lo, hi) in (("", boot), ("s", seed)):
        if lo is not None and hi is not None and np.isfinite(lo) and np.isfinite(hi):
            text += f" {prefix}[{lo * scale:.{d}f}, {hi * scale:.{d}f}]"
    return text


def _bounds(col: str) -> tuple[float, float]:
    """Range of a column's values: scores in [0, 1], FM/BWT in [-1, 1], costs >= 0."""
    if col.endswith("_acc") or col.startswith("thr_"):
        return 0.0, 1.0
    if col.endswith(("_fm", "_bwt")):
        return -1.0, 1.0
    return 0.0, np.inf


def _ci(r: pd.Series, col: str, scale: float = 100.0, decimals: int | None = 1) -> str:
    """Formatted mean with its bootstrap and seed intervals of aggregated column ``col``."""
    def get(suffix: str) -> float:
        return _f(r.get(f"{col}__{suffix}", np.nan))
    seed = (get("lo"), get("hi"))
    if _bounds(col)[1] == np.inf and seed[0] == seed[1]:  # a cost measured once per variant
        seed = (np.nan, np.nan)
    return fmt_ci(get("mean"), seed, (get("blo"), get("bhi")), scale, decimals, _bounds(col))


def _table(df: pd.DataFrame) -> str:
    """GitHub-markdown table (pipes in cells escaped)."""
    df = df.map(lambda v: str(v).replace("|", "\\|").replace("\n", " "))
    return df.to_markdown(index=False, tablefmt="github", disable_numparse=True)


def _show_pooled(agg: pd.DataFrame) -> bool:
    """Pooled image AUROC gets a column only where it differs from image AUROC in some row
    (a multi-class task); with one class per task it is the same number."""
    a = agg.get(f"{POOLED}_acc__mean", pd.Series(np.nan, index=agg.index)).to_numpy(float)
    b = agg.get("image_auroc_acc__mean", pd.Series(np.nan, index=agg.index)).to_numpy(float)
    both = np.isfinite(a) & np.isfinite(b)
    return bool((np.abs(a[both] - b[both]) > 1e-9).any())


def _main_table(agg: pd.DataFrame) -> str:
    """The per-scenario leaderboard table (``agg`` carries the ``vs_best`` column)."""
    kinds = sorted({k for ks in agg["memory_kind"].dropna() for k in str(ks).split("/") if k})
    unit = f"MB, {kinds[0]}" if len(kinds) == 1 else "MB"
    pooled = _show_pooled(agg)
    rows = []
    for _, r in agg.iterrows():
        def mem(col: str, r: pd.Series = r) -> str:
            text = _ci(r, col, 1, None)
            return text + f" ({r['memory_kind']})" if text != NA and len(kinds) > 1 else text

        def pix(col: str, r: pd.Series = r) -> str:
            return NO_MASKS if r["no_masks"] else _ci(r, col)

        row = {
            "variant": str(r["variant"]) + (" ‡" if r["batch_dependent"] else ""),
            "strategy": r["strategy"] + (" [task-aware]" if r["task_aware"] else ""),
            "seeds": f"{r['seeds']}" + (f" (+{r['failed']} failed)" if r["failed"] else ""),
            "img AUROC ACC": _ci(r, "image_auroc_acc"),
        }
        if pooled:
            row["img AUROC ACC (pooled)"] = _ci(r, f"{POOLED}_acc")
        row.update({
            "Δ img ACC vs best": r.get("vs_best", NA),
            "img AUROC FM": _ci(r, "image_auroc_fm"), "img AUROC BWT": _ci(r, "image_auroc_bwt"),
            "pix AUROC ACC": pix("pixel_auroc_acc"), "pix AUROC FM": pix("pixel_auroc_fm"),
            "AUPRO ACC": pix("pixel_aupro_acc"), "AUPRO FM": pix("pixel_aupro_fm"),
            "latency p50 (ms)": _ci(r, "latency_ms_p50", 1, None),
            "latency p95 (ms)": _ci(r, "latency_ms_p95", 1, None),
            f"mem batch 1 ({unit})": mem("memory_mb_batch1"),
            "throughput (img/s, batch 32)": _ci(r, "throughput_img_s", 1, None),
            f"mem batch 32 ({unit})": mem("memory_mb_batch32"),
            "train time (s)": _ci(r, "train_time_s_total", 1, None),
            "params": _fmt_count(r.get("params_total__mean", np.nan)),
        })
        rows.append(row)
    return _table(pd.DataFrame(rows))


def _per_class_tables(pc: pd.DataFrame, agg: pd.DataFrame, classes: list[str]) -> list[str]:
    """One table per metric: rows = classes (task order), columns = variant / strategy."""
    pc = pc[pc["status"] == "ok"]
    if pc.empty:
        return []
    pc = pc.assign(label=[_label(str(v), str(s), bool(a)) for v, s, a in
                          zip(pc["variant"], pc["strategy"], pc["task_aware"], strict=True)])
    order = [lab for lab in agg["label"] if lab in set(pc["label"])]
    classes = [c for c in classes if c in set(pc["class_name"])] + sorted(set(pc["class_name"]) - set(classes))
    out = []
    for m in SUMMARY_METRICS:
        if m not in pc.columns or pc[m].isna().all():
            continue
        piv = pc.pivot_table(index="class_name", columns="label", values=m, aggfunc="mean", dropna=False)
        piv = piv.reindex(index=classes, columns=order).map(lambda v: fmt_pm(v))
        out.append(f"**{METRIC_NAMES[m]}** (final evaluation, mean over seeds)\n\n"
                   + _table(piv.reset_index().rename(columns={"class_name": "class"})))
    return out


CALIBRATION = ("Thresholds are calibrated only on the normal training images the learner holds "
               "after the last task (current task + replay buffer; joint: all classes), never on "
               "test images.")


def _thresholds_table(agg: pd.DataFrame) -> tuple[str, str] | None:
    """(sentence on calibration, table): F1 (precision / recall) per automatic threshold rule,
    next to the oracle F1-max; F1 with its interval across seeds where there are several.

    The calibration set is named once when every row shares it, else in a column."""
    cols = [c[:-6] for c in agg.columns if c.startswith("thr_") and c.endswith("__mean")]
    rules = list(dict.fromkeys(re.sub(r"_(f1|precision|recall)$", "", c) for c in cols))
    keep = agg[agg[[f"{c}__mean" for c in cols]].notna().any(axis=1)] if cols else agg.iloc[:0]
    if keep.empty:
        return None
    cal = [str(c) if isinstance(c, str) and c else NA for c in keep.get("calibration", [NA] * len(keep))]
    uniform = len(set(cal)) == 1
    rows = []
    for (_, r), c in zip(keep.iterrows(), cal, strict=True):
        row = {"variant / strategy": r["label"]}
        if not uniform:
            row["calibrated on"] = c
        for rule in rules:
            name = rule[4:]
            if f"{rule}_f1__mean" in r:
                row[f"{name} F1 (P / R)"] = (f"{_ci(r, f'{rule}_f1')} ({fmt_pm(r[f'{rule}_precision__mean'])}"
                                             f" / {fmt_pm(r[f'{rule}_recall__mean'])})")
            else:
                row[name] = _ci(r, rule)
        rows.append(row)
    sentence = CALIBRATION
    if uniform and cal[0] != NA:
        sentence += f" Every row: {cal[0]}."
    return sentence, _table(pd.DataFrame(rows))


def _not_run_table(cells: pd.DataFrame) -> str | None:
    """Cells skipped on purpose (e.g. a strategy that repeats another), with the reason."""
    skipped = cells[cells["status"] == "skipped"]
    if skipped.empty:
        return None
    rows = [{"variant": r["variant"], "scenario": r["scenario"], "strategy": r["strategy"],
             "seed": r["seed"], "reason": str(r.get("skip_reason") or NA)}
            for _, r in skipped.iterrows()]
    return _table(pd.DataFrame(rows))


def _failed_table(cells: pd.DataFrame) -> str | None:
    """Failed cells with error type, message, task and step."""
    bad = cells[~cells["status"].isin(["ok", "skipped"])]
    if bad.empty:
        return None
    def _i(v: object) -> str:
        return NA if v is None or (isinstance(v, float) and np.isnan(v)) else str(int(v))
    rows = [{"cell": r["cell_id"], "variant": r["variant"], "scenario": r["scenario"], "strategy": r["strategy"],
             "seed": r["seed"], "status": r["status"], "error": r["error_type"] or NA,
             "message": str(r["error_message"] or "")[:300], "task": _i(r["error_task"]), "step": _i(r["error_step"])}
            for _, r in bad.iterrows()]
    return _table(pd.DataFrame(rows))


HOW_TO_READ = """\
## How to read

R[t, k] is a score on the test set of task k after training task t (T tasks). **ACC** is the
mean of the final row (all tasks after the last one). **FM** (forgetting) is the mean over old
tasks of the drop from their best earlier score to the final score (lower is better). **BWT**
(backward transfer) is the mean over old tasks of final score minus the score just after
learning the task (negative = forgetting). Entries for tasks not yet seen enter none of these.
Scores are in points (x100), shown as the mean over seeds with 95% intervals (see the top of
the report: `[a, b]` over test images, `s[a, b]` across seeds); "n/a" means undefined or not
measured. The `joint` strategy trains once on all classes (the
upper bound), so it has no FM/BWT ("n/a"). Evaluation is task-agnostic (no class or task id
reaches the model) unless a strategy is marked [task-aware] (oracle class id given).
A task with several classes scores the mean of its per-class figures (the MVTec convention);
"(pooled)" columns, shown only where they differ, pool the task's images into one ROC.
Latency is per image at batch 1, throughput at batch 32, train time summed over tasks; memory
is given at batch 1 and at batch 32 (`cuda_max_allocated`: the GPU allocator's peak;
`cpu_rss_over_backbone`: CPU memory over a backbone-only baseline in a fresh process;
`cpu_peak_rss`, older records: the run's peak RSS over both batch sizes, shown in both).
"""

INTERVALS = (
    "Intervals (95%): `[a, b]` is a bootstrap over test images ({n} replicates of the stored "
    "per-sample scores; images resampled with replacement within each class and label; fixed "
    "seed, so the report is reproducible; a multi-seed row averages its seeds' replicates, "
    "drawn on the same images). `s[a, b]` is a Student-t interval across seeds (rows with >= 2 "
    "seeds; clipped to the metric's range). The bootstrap covers ACC of all three metrics and FM/BWT of image AUROC; pixel "
    "intervals use maps binned to {levels} quantile levels per class, while every point "
    "estimate is exact."
)
SIGNIFICANCE = (
    "`Δ img ACC vs best`: the row's image ACC minus that of the scenario's best row, in points. "
    "`≈` marks a difference that is not significant at the 5% level, i.e. inside the noise: "
    "where both rows have >= 2 seeds, Welch's t-test across seeds (p shown); otherwise a paired "
    "bootstrap, both rows recomputed on the same resampled test images, whose 95% interval of "
    "the difference (shown) contains 0. Unmarked rows are significantly below the best; `?` "
    "means the test was undefined; n/a means no per-sample scores to test with."
)
BATCH_DEPENDENT = (
    "‡ This entry's scores depend on the other images in its batch (against the contract's rule "
    "that a score is a function of its own image only), so its figures change with batch "
    "composition and are not strictly comparable."
)


def write_report(results_dir: Path, out_dir: Path) -> Path:
    """Write leaderboard.md, csv/ and plots/ for all records in ``results_dir``; return the leaderboard path."""
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    (out_dir / "csv").mkdir(parents=True, exist_ok=True)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    for old in (out_dir / "plots").glob("*.png"):  # stale plots of an earlier report
        if old.name.startswith(plots.PLOT_NAMES):
            old.unlink()
    records, notes = load_records(results_dir)
    cells, pc, rlong = cells_frame(records), per_class_frame(records), r_matrices_frame(records)
    cells.to_csv(out_dir / "csv" / "summary.csv", index=False)
    pc.to_csv(out_dir / "csv" / "per_class.csv", index=False)
    rlong.to_csv(out_dir / "csv" / "r_matrices.csv", index=False)
    agg = aggregate(cells)
    reps, sigs = cell_replicates(records, results_dir)
    scenarios = list(dict.fromkeys(agg["scenario"])) if not agg.empty else []
    if not agg.empty:
        agg, group_reps, group_sig = bootstrap_groups(records, agg, reps, sigs)
        agg = agg.assign(vs_best=NA, vs_best_diff=np.nan, vs_best_lo=np.nan, vs_best_hi=np.nan,
                         vs_best_p=np.nan, vs_best_method="")
        for sc in scenarios:
            idx = agg.index[agg["scenario"] == sc]
            best, tests = versus_best(agg.loc[idx], cells, group_reps, group_sig)
            for j, (i, c) in enumerate(zip(idx, tests, strict=True)):
                agg.loc[i, "vs_best"] = _fmt_vs_best(c, j == best)
                if c is not None:
                    agg.loc[i, ["vs_best_diff", "vs_best_lo", "vs_best_hi", "vs_best_p"]] = (
                        c.difference, c.low, c.high, c.p_value)
                    agg.loc[i, "vs_best_method"] = c.method
        agg.to_csv(out_dir / "csv" / "leaderboard.csv", index=False)

    status = cells["status"] if len(cells) else pd.Series(dtype=object)
    n_ok, n_skip = int((status == "ok").sum()), int((status == "skipped").sum())

    def uniq(col: str) -> str:
        return ", ".join(sorted({str(x) for x in cells[col].dropna()})) if len(cells) else NA

    # no clock time: the same results give the same text
    newest = max((str(r.get("created")) for r in records if r.get("created")), default=None)
    lines = ["# nfbench leaderboard", "",
             f"Generated by `nfbench report` (nfbench.benchmarks.report) from `{results_dir}`"
             + (f" (newest cell created {newest})" if newest else "")
             + f": {len(cells)} cells ({n_ok} ok, "
             f"{len(cells) - n_ok - n_skip} failed, {n_skip} not run).", "",
             f"Scenario(s): {uniq('scenario') or NA}. Device(s): {uniq('device') or NA} "
             f"(torch {uniq('torch') or NA}). Backbone(s): {uniq('backbone') or NA}.", ""]
    if not records:
        lines += [f"No records found in `{results_dir / 'cells'}`.", ""]
    if not agg.empty:
        run = agg.loc[agg["seeds"] > 0, "seeds"]
        if run.empty or int(run.max()) <= 1:
            lines += ["1 seed: intervals are bootstrap over test images only; seeds were not varied.",
                      ""]
        else:
            lo, hi = int(run.min()), int(run.max())
            lines += [f"Seeds per row: {lo if lo == hi else f'{lo} to {hi}'} (column `seeds`); rows "
                      "with one seed have the bootstrap interval only.", ""]
        lines += [INTERVALS.format(n=st.N_BOOT, levels=st.LEVELS), "", SIGNIFICANCE, ""]
        if agg["batch_dependent"].any():
            lines += [BATCH_DEPENDENT, ""]
    for sc in scenarios:
        sub = agg[agg["scenario"] == sc].reset_index(drop=True)
        recs = [r for r in records if r.get("scenario") == sc]
        tasks = next((r["tasks"] for r in recs if r.get("tasks")), [])
        classes = [c for t in tasks for c in t]
        lines += [f"## Scenario `{sc}`", "",
                  f"T = {len(tasks)} tasks: " + " → ".join(", ".join(t) for t in tasks) + ".", ""]
        no_masks = sorted({str(d) for d, n in zip(sub["dataset_name"], sub["no_masks"], strict=True)
                           if n})
        if no_masks:
            lines += [f"Dataset {', '.join(f'`{d}`' for d in no_masks)} has no ground-truth masks, "
                      "so pixel metrics were not measured (pixel columns: n/a (no masks)).", ""]
        lines += [_main_table(sub), ""]
        notes += [f"`{sc}`: {r['label']}: memory {r['memory_note']}" for _, r in sub.iterrows()
                  if isinstance(r.get("memory_note"), str) and r["memory_note"]]
        scored = {_key(rec) for rec in recs if str(rec.get("cell_id")) in reps}
        missing = [r["label"] for _, r in sub.iterrows() if r["seeds"] and _key(r) not in scored]
        if missing:
            notes.append(f"`{sc}`: no bootstrap interval for {', '.join(missing)} (per-sample scores "
                         "missing or unreadable)")
        tables = _per_class_tables(pc[pc["scenario"] == sc] if len(pc) else pc, sub, classes)
        if tables:
            lines += ["### Per class", "", *[t + "\n" for t in tables]]
        thr = _thresholds_table(sub)
        if thr:
            lines += ["### Automatic thresholds", "",
                      "F1 (precision / recall) in points at each automatic threshold, final evaluation. "
                      + thr[0], "", thr[1], ""]
        suffix = "" if len(scenarios) == 1 else f"_{slug(sc)}"
        made, plot_notes = plots.write_plots(recs, sub, results_dir, out_dir / "plots", suffix)
        notes += [f"`{sc}`: {n}" for n in plot_notes]
        if made:
            lines += ["### Plots", ""]
            for title, p in made.items():
                lines += [f"![{title}]({p.relative_to(out_dir).as_posix()})", ""]
    not_run = _not_run_table(cells) if len(cells) else None
    if not_run:
        lines += ["## Not run", "", "Cells skipped on purpose (not failures):", "", not_run, ""]
    failed = _failed_table(cells) if len(cells) else None
    if failed:
        lines += ["## Failed cells", "", failed, ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    lines += [HOW_TO_READ]
    path = out_dir / "leaderboard.md"
    path.write_text("\n".join(lines))
    return path
