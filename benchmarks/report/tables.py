"""The leaderboard's tables beside its first one: routing against oracle routing, ablations
against the default variant, per class, thresholds, the cells that did not run or failed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from nfbench.benchmarks.measuring.metrics import MetricSpec
from nfbench.benchmarks.report import data
from nfbench.benchmarks.report.formats import NA, cell_value, fmt_pm, fmt_row_ci, table

__all__ = ["ROUTING_HEADER", "failed_table", "gap_cell", "not_run_table", "per_class_tables",
           "routing_cell", "routing_table", "thresholds_table", "variants_table"]

ROUTING_HEADER = "routing acc (normal / anomalous)"


def routing_cell(r: pd.Series) -> str:
    """Final routing accuracy in points, normal / anomalous images (seed mean, with the seed
    interval where there are seeds); n/a for a row that does not route."""
    parts = [fmt_row_ci(r, data.routing_col(split)) for split in ("normal", "anomalous")]
    return NA if all(p == NA for p in parts) else " / ".join(parts)





def _oracle_row(agg: pd.DataFrame, r: pd.Series) -> pd.Series | None:
    """The same variant, scenario and strategy evaluated with --task-aware, if it ran."""
    same = agg[(agg["variant"] == r["variant"]) & (agg["scenario"] == r["scenario"])
               & (agg["strategy"] == r["strategy"]) & agg["task_aware"].astype(bool)]
    return same.iloc[0] if len(same) else None


def routing_table(agg: pd.DataFrame) -> str | None:
    """Every task-agnostic row that routes under its own mechanism (or was run beside its
    oracle twin), beside its oracle-routing (task-aware) row: the gap in image ACC
    (intervals.with_routing_gaps) is what routing costs. None when no such row."""
    cols = [data.routing_col(s) + "__mean" for s in ("normal", "anomalous")]
    present = [c for c in cols if c in agg]
    if not present:
        return None
    routes = agg[np.isfinite(agg[present].to_numpy(float)).any(axis=1)
                 & ~agg["task_aware"].astype(bool)]
    # a model's own mechanism, or a row run beside its oracle twin (a mechanism that acts
    # under every strategy runs as finetune); other routing rows keep their details column
    mine = [data.is_model_mechanism(s) or _oracle_row(agg, r) is not None
            for s, (_, r) in zip(routes["strategy"], routes.iterrows(), strict=True)]
    routes = routes[mine]
    if routes.empty:
        return None
    acc, fm = f"{data.PRIMARY}_acc", f"{data.PRIMARY}_fm"
    rows = []
    for _, r in routes.iterrows():
        oracle = _oracle_row(agg, r)
        rows.append({"variant": r["variant"], "strategy": r["strategy"], "seeds": r["seeds"],
                     ROUTING_HEADER: routing_cell(r), "img ACC (routed)": fmt_row_ci(r, acc),
                     "img ACC (oracle)": NA if oracle is None else fmt_row_ci(oracle, acc),
                     "img FM (oracle)": NA if oracle is None else fmt_row_ci(oracle, fm),
                     "routed - oracle [95%]": gap_cell(r, "routing_gap")})
    return table(pd.DataFrame(rows))


def gap_cell(r: pd.Series, prefix: str) -> str:
    """A row's image ACC minus its twin's (intervals._with_gaps), in points, with its 95%
    interval and the test behind it (Welch across seeds, or a paired bootstrap over the test
    images with one seed)."""
    gap = cell_value(r, prefix)
    if not np.isfinite(gap):
        return NA
    lo, hi = cell_value(r, f"{prefix}_lo"), cell_value(r, f"{prefix}_hi")
    kind = {"welch": "seeds", "paired t": "paired seeds"}.get(r.get(f"{prefix}_test"), "images")
    return f"{fmt_pm(gap)} [{lo * 100:.1f}, {hi * 100:.1f}] ({kind})"


def variants_table(agg: pd.DataFrame) -> str | None:
    """Models run with changed flags (ablations) beside their default variant, for each
    strategy and routing an ablation ran under: image ACC, FM, routing accuracy and the
    difference to the default. None when no model has a variant."""
    if "variant_gap" not in agg:
        return None
    changed = agg[np.isfinite(agg["variant_gap"].to_numpy(float))]
    if changed.empty:
        return None
    ablated = set(zip(changed["model"], changed["strategy"], changed["task_aware"], strict=True))
    keep = [key in ablated for key in zip(agg["model"], agg["strategy"], agg["task_aware"],
                                          strict=True)]
    rows = agg[keep].sort_values(["model", "task_aware", "strategy", "variant"], kind="stable")
    acc, fm = f"{data.PRIMARY}_acc", f"{data.PRIMARY}_fm"
    out = [{"variant": r["variant"],
            "strategy": r["strategy"] + (" [task-aware]" if r["task_aware"] else ""),
            "seeds": r["seeds"], "img ACC": fmt_row_ci(r, acc), "img FM": fmt_row_ci(r, fm),
            ROUTING_HEADER: routing_cell(r), "vs default [95%]": gap_cell(r, "variant_gap")}
           for _, r in rows.iterrows()]
    return table(pd.DataFrame(out))


def per_class_tables(pc: pd.DataFrame, agg: pd.DataFrame, classes: list[str],
                     specs: Sequence[MetricSpec]) -> list[str]:
    """Per metric of ``specs`` and per strategy, one table: rows = classes (task order),
    columns = variants (one per model, so a table stays about ten columns wide)."""
    pc = pc[pc["status"] == "ok"] if len(pc) else pc
    if pc.empty:
        return []
    pc = pc.merge(agg[[*data.GROUP_KEYS, "label"]], on=data.GROUP_KEYS, how="left")
    present = set(pc["class_name"])
    classes = [c for c in classes if c in present] + sorted(present - set(classes))
    out = []
    for spec in specs:
        if spec.key not in pc.columns or pc[spec.key].isna().all():
            continue
        kind = [data.strategy_kind(s) + (" [task-aware]" if a else "")
                for s, a in zip(pc["strategy"], pc["task_aware"], strict=True)]
        order = [data.strategy_kind(s) + (" [task-aware]" if a else "")
                 for s, a in zip(agg["strategy"], agg["task_aware"], strict=True)]
        for name in dict.fromkeys(order):
            part = pc[[k == name for k in kind]]
            variants = [v for v in dict.fromkeys(agg["variant"]) if v in set(part["variant"])]
            piv = part.pivot_table(index="class_name", columns="variant", values=spec.key,
                                   aggfunc="mean", dropna=False)
            piv = piv.reindex(index=classes, columns=variants).map(spec.format)
            out.append(f"**{spec.label}, {name}** (final evaluation, mean over seeds)\n\n"
                       + table(piv.reset_index().rename(columns={"class_name": "class"})))
    return out


CALIBRATION = ("Thresholds are calibrated only on normal images the learner holds after the "
               "last task (current task + replay buffer; joint: all classes), never on test "
               "images: on a calibration split held out of their training images (training "
               "never sees it; `--calibration-split`, 0: on the training images themselves). "
               "FA: the fraction of normal test images each rule flags (its false-alarm rate; "
               "percentile_99 aims at 1, NFA < 1 bounds false detections per image, not "
               "images).")


def _rule_cell(r: pd.Series, rule: str) -> tuple[str, str]:
    """(header, text) of one threshold rule: F1 with its interval across seeds, and
    (precision / recall; false-alarm rate) where the rule reports them (the oracle reports F1
    only)."""
    name = rule[4:]
    f1 = fmt_row_ci(r, f"{rule}_f1")
    if f"{rule}_precision__mean" not in r:
        return f"{name} F1", f1
    p, rc = fmt_pm(r[f"{rule}_precision__mean"]), fmt_pm(r[f"{rule}_recall__mean"])
    if f"{rule}_false_alarm_rate__mean" not in r:  # records from before it was measured
        return f"{name} F1 (P / R)", f"{f1} ({p} / {rc})"
    fa = fmt_pm(r[f"{rule}_false_alarm_rate__mean"])
    return f"{name} F1 (P / R; FA)", f"{f1} ({p} / {rc}; {fa})"


def thresholds_table(agg: pd.DataFrame) -> tuple[str, str] | None:
    """(sentence on calibration, table): F1 (precision / recall) per automatic threshold rule,
    next to the oracle F1-max; F1 with its interval across seeds where there are several.

    The calibration set is named once when every row shares it, else in a column."""
    cols = [c[:-6] for c in agg.columns if c.startswith("thr_") and c.endswith("__mean")]
    keys = "|".join(data.THRESHOLD_KEYS)
    rules = list(dict.fromkeys(re.sub(rf"_({keys})$", "", c) for c in cols))
    keep = agg[agg[[f"{c}__mean" for c in cols]].notna().any(axis=1)] if cols else agg.iloc[:0]
    if keep.empty:
        return None
    cal = [c if isinstance(c, str) and c else NA for c in keep["calibration"]]
    uniform = len(set(cal)) == 1
    rows = []
    for (_, r), c in zip(keep.iterrows(), cal, strict=True):
        row = {"variant / strategy": r["label"]} | ({} if uniform else {"calibrated on": c})
        rows.append(row | dict(_rule_cell(r, rule) for rule in rules))
    sentence = CALIBRATION + (f" Every row: {cal[0]}." if uniform and cal[0] != NA else "")
    return sentence, table(pd.DataFrame(rows))


def not_run_table(cells: pd.DataFrame) -> str | None:
    """Cells skipped on purpose (e.g. a strategy that repeats another), with the reason."""
    skipped = cells[cells["status"] == "skipped"] if len(cells) else cells
    if skipped.empty:
        return None
    rows = [{"variant": r["variant"], "scenario": r["scenario"], "strategy": r["strategy"],
             "seed": r["seed"], "reason": str(r["skip_reason"] or NA)}
            for _, r in skipped.iterrows()]
    return table(pd.DataFrame(rows))


def _int(v: object) -> str:
    return NA if v is None or (isinstance(v, float) and np.isnan(v)) else str(int(v))


def failed_table(cells: pd.DataFrame) -> str | None:
    """Failed cells with error type, message, task and step."""
    bad = cells[~cells["status"].isin(["ok", "skipped"])] if len(cells) else cells
    if bad.empty:
        return None
    rows = [{"cell": r["cell_id"], "variant": r["variant"], "scenario": r["scenario"],
             "strategy": r["strategy"], "seed": r["seed"], "status": r["status"],
             "error": r["error_type"] or NA, "message": str(r["error_message"] or "")[:300],
             "task": _int(r["error_task"]), "step": _int(r["error_step"])}
            for _, r in bad.iterrows()]
    return table(pd.DataFrame(rows))
