"""Leaderboard, CSVs and plots from stored cell records (``nfbench report``).

Reads ``<results_dir>/cells/*.json`` (one record per cell, DESIGN.md "Outputs"),
groups cells by (variant, scenario, strategy, task_aware) across seeds and writes
``leaderboard.md``, ``csv/*.csv`` and ``plots/*.png`` under ``out_dir``. The per-cell
``summary`` block is the source of truth for ACC/FM/BWT; it is recomputed from R only
where a record lacks it. Scores are shown in points (x100) as "mean ± sample std".
"""

from __future__ import annotations

import json
import re
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from nfbench.benchmarks import plots
from nfbench.benchmarks.forgetting import summarize

__all__ = [
    "aggregate", "cells_frame", "fmt_pm", "load_records", "per_class_frame",
    "r_matrices_frame", "r_array", "write_report",
]

GROUP_KEYS = ["variant", "scenario", "strategy", "task_aware"]
SUMMARY_METRICS = ("image_auroc", "pixel_auroc", "pixel_aupro")
METRIC_NAMES = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "pixel_aupro": "AUPRO"}
COST_KEYS = ("latency_ms_p50", "latency_ms_p95", "throughput_img_s", "peak_memory_mb",
             "feature_time_s", "params_total")
TEXT_COLS = ["cell_id", "status", "model", "label", "seed", "backbone", "device", "torch",
             "memory_kind", "error_type", "error_message", "error_task", "error_step", "created",
             *GROUP_KEYS]
NA = "n/a"


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
        row["memory_kind"] = cost.get("memory_kind")
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


def aggregate(cells: pd.DataFrame) -> pd.DataFrame:
    """Per group: ``<col>__mean``/``__std``/``__n`` over ok seeds, plus seeds, failed, label, memory_kind.

    Every group that has any cell appears (groups with only failed cells have NaN numbers).
    std is the sample std (ddof=1), NaN with fewer than two finite values.
    """
    if cells.empty:
        return pd.DataFrame()
    ok = cells[cells["status"] == "ok"]
    num = [c for c in cells.columns if c not in TEXT_COLS]
    g = ok.groupby(GROUP_KEYS, dropna=False)
    agg = g[num].agg(["mean", "std", "count"])
    agg.columns = [f"{c}__{'n' if s == 'count' else s}" for c, s in agg.columns]
    agg["memory_kind"] = g["memory_kind"].agg(lambda s: "/".join(sorted({str(x) for x in s.dropna()})))
    agg["seeds"] = g.size()
    groups = cells.groupby(GROUP_KEYS, dropna=False)
    out = agg.reindex(groups.size().index)
    out["seeds"] = out["seeds"].fillna(0).astype(int)
    out["failed"] = groups["status"].agg(lambda s: int((s != "ok").sum()))
    out = out.reset_index()
    out["label"] = [_label(str(v), str(s), bool(a)) for v, s, a in
                    zip(out["variant"], out["strategy"], out["task_aware"], strict=True)]
    key = [(sc, str(v), _strategy_rank(str(s)), bool(a)) for sc, v, s, a in
           zip(out["scenario"], out["variant"], out["strategy"], out["task_aware"], strict=True)]
    return out.iloc[sorted(range(len(out)), key=lambda i: key[i])].reset_index(drop=True)


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


def _table(df: pd.DataFrame) -> str:
    """GitHub-markdown table (pipes in cells escaped)."""
    df = df.map(lambda v: str(v).replace("|", "\\|").replace("\n", " "))
    return df.to_markdown(index=False, tablefmt="github", disable_numparse=True)


def _main_table(agg: pd.DataFrame) -> str:
    """The per-scenario leaderboard table."""
    kinds = sorted({k for ks in agg["memory_kind"].dropna() for k in str(ks).split("/") if k})
    mem_head = f"peak mem (MB, {kinds[0]})" if len(kinds) == 1 else "peak mem (MB)"
    rows = []
    for _, r in agg.iterrows():
        mem = _pm(r, "peak_memory_mb", 1, None)
        if mem != NA and len(kinds) > 1:
            mem += f" ({r['memory_kind']})"
        rows.append({
            "variant": r["variant"], "strategy": r["strategy"] + (" [task-aware]" if r["task_aware"] else ""),
            "seeds": f"{r['seeds']}" + (f" (+{r['failed']} failed)" if r["failed"] else ""),
            "img AUROC ACC": _pm(r, "image_auroc_acc"), "img AUROC FM": _pm(r, "image_auroc_fm"),
            "img AUROC BWT": _pm(r, "image_auroc_bwt"),
            "pix AUROC ACC": _pm(r, "pixel_auroc_acc"), "pix AUROC FM": _pm(r, "pixel_auroc_fm"),
            "AUPRO ACC": _pm(r, "pixel_aupro_acc"), "AUPRO FM": _pm(r, "pixel_aupro_fm"),
            "latency p50 (ms)": _pm(r, "latency_ms_p50", 1, None),
            "latency p95 (ms)": _pm(r, "latency_ms_p95", 1, None),
            "throughput (img/s)": _pm(r, "throughput_img_s", 1, None), mem_head: mem,
            "train time (s)": _pm(r, "train_time_s_total", 1, None),
            "params": _fmt_count(r.get("params_total__mean", np.nan)),
        })
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


def _thresholds_table(agg: pd.DataFrame) -> str | None:
    """F1 (precision / recall) per automatic threshold rule, next to the oracle F1-max."""
    cols = [c[:-6] for c in agg.columns if c.startswith("thr_") and c.endswith("__mean")]
    rules = list(dict.fromkeys(re.sub(r"_(f1|precision|recall)$", "", c) for c in cols))
    keep = agg[agg[[f"{c}__mean" for c in cols]].notna().any(axis=1)] if cols else agg.iloc[:0]
    if keep.empty:
        return None
    rows = []
    for _, r in keep.iterrows():
        row = {"variant / strategy": r["label"]}
        for rule in rules:
            name = rule[4:]
            if f"{rule}_f1__mean" in r:
                row[f"{name} F1 (P / R)"] = (f"{_pm(r, f'{rule}_f1')} ({fmt_pm(r[f'{rule}_precision__mean'])}"
                                             f" / {fmt_pm(r[f'{rule}_recall__mean'])})")
            else:
                row[name] = _pm(r, rule)
        rows.append(row)
    return _table(pd.DataFrame(rows))


def _failed_table(cells: pd.DataFrame) -> str | None:
    """Failed cells with error type, message, task and step."""
    bad = cells[cells["status"] != "ok"]
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
Scores are in points (x100), shown as mean ± sample std over seeds (no std with one seed);
"n/a" means undefined or not measured. The `joint` strategy trains once on all classes (the
upper bound), so it has no FM/BWT ("n/a"). Evaluation is task-agnostic (no class or task id
reaches the model) unless a strategy is marked [task-aware] (oracle class id given).
Latency is per image at batch 1, throughput at batch 32, train time summed over tasks.
"""


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
    if not agg.empty:
        agg.to_csv(out_dir / "csv" / "leaderboard.csv", index=False)

    n_ok = int((cells["status"] == "ok").sum()) if len(cells) else 0

    def uniq(col: str) -> str:
        return ", ".join(sorted({str(x) for x in cells[col].dropna()})) if len(cells) else NA

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# nfbench leaderboard", "",
             f"Generated by `nfbench report` (nfbench.benchmarks.report) on {now} from `{results_dir}`: "
             f"{len(cells)} cells ({n_ok} ok, {len(cells) - n_ok} failed).", "",
             f"Scenario(s): {uniq('scenario') or NA}. Device(s): {uniq('device') or NA} "
             f"(torch {uniq('torch') or NA}). Backbone(s): {uniq('backbone') or NA}.", ""]
    if not records:
        lines += [f"No records found in `{results_dir / 'cells'}`.", ""]
    scenarios = list(dict.fromkeys(agg["scenario"])) if not agg.empty else []
    for sc in scenarios:
        sub = agg[agg["scenario"] == sc].reset_index(drop=True)
        recs = [r for r in records if r.get("scenario") == sc]
        tasks = next((r["tasks"] for r in recs if r.get("tasks")), [])
        classes = [c for t in tasks for c in t]
        lines += [f"## Scenario `{sc}`", "",
                  f"T = {len(tasks)} tasks: " + " → ".join(", ".join(t) for t in tasks) + ".", "",
                  _main_table(sub), ""]
        tables = _per_class_tables(pc[pc["scenario"] == sc] if len(pc) else pc, sub, classes)
        if tables:
            lines += ["### Per class", "", *[t + "\n" for t in tables]]
        thr = _thresholds_table(sub)
        if thr:
            lines += ["### Automatic thresholds", "",
                      "F1 (precision / recall) in points at each automatic threshold, final evaluation.", "",
                      thr, ""]
        suffix = "" if len(scenarios) == 1 else f"_{slug(sc)}"
        made, plot_notes = plots.write_plots(recs, sub, results_dir, out_dir / "plots", suffix)
        notes += [f"`{sc}`: {n}" for n in plot_notes]
        if made:
            lines += ["### Plots", ""]
            for title, p in made.items():
                lines += [f"![{title}]({p.relative_to(out_dir).as_posix()})", ""]
    failed = _failed_table(cells) if len(cells) else None
    if failed:
        lines += ["## Failed cells", "", failed, ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    lines += [HOW_TO_READ]
    path = out_dir / "leaderboard.md"
    path.write_text("\n".join(lines))
    return path
