"""The leaderboard's text as GitHub markdown (pandas + tabulate); compare.md's is in
compare_text.py, with the same formatters.

Works on the frames of ``data``/``intervals`` only. Scores are shown as their table row says
(``MetricSpec.scale``/``decimals``: points, one decimal), as the mean over seeds with its 95%
intervals: ``[a, b]`` a bootstrap over test images, ``s[a, b]`` a Student-t interval across
seeds (rows with >= 2 seeds). Column headers come from the metric table, so a new summarised
row gets its columns here without an edit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nfbench.benchmarks.measuring import comparisons as cmp
from nfbench.benchmarks.measuring import statistics as st
from nfbench.benchmarks.measuring.metrics import MetricSpec, metric_spec
from nfbench.benchmarks.measuring.ranking import RankTest
from nfbench.benchmarks.records.record import CellRecord
from nfbench.benchmarks.report import data
from nfbench.benchmarks.report.ties import TIED

__all__ = ["fmt_ci", "fmt_count", "fmt_p", "fmt_pm", "fmt_vs_best", "leaderboard",
           "main_table", "scenario_section", "table"]

NA = "n/a"
NO_MASKS = "n/a (no masks)"
VS_BEST = "Δ img ACC vs best"
Column = tuple[str, Callable[[pd.Series], str]]


# ---------------------------------------------------------------- numbers


def _decimals(x: float) -> int:
    """Decimals for a cost figure: 0 from 100 up, 1 from 10 up, else 2."""
    return 0 if abs(x) >= 100 else 1 if abs(x) >= 10 else 2


def fmt_pm(mean: float, std: float = float("nan"), scale: float = 100.0,
           decimals: int | None = 1) -> str:
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


def has_interval(lo: float | None, hi: float | None) -> bool:
    return lo is not None and hi is not None and bool(np.isfinite(lo) and np.isfinite(hi))


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
        if has_interval(lo, hi):
            text += f" {prefix}[{lo * scale:.{d}f}, {hi * scale:.{d}f}]"
    return text


def fmt_count(x: float) -> str:
    """Parameter count as 1.23M / 45.6k / 789."""
    if not np.isfinite(x):
        return NA
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


def _get(r: pd.Series, col: str) -> float:
    value = r.get(col, np.nan)
    return float("nan") if value is None else float(value)


def _ci(r: pd.Series, col: str, scale: float = 100.0, decimals: int | None = 1) -> str:
    """Formatted mean with its bootstrap and seed intervals of aggregated column ``col``."""
    seed = (_get(r, f"{col}__lo"), _get(r, f"{col}__hi"))
    if data.bounds(col)[1] == np.inf and seed[0] == seed[1]:  # a cost measured once per variant
        seed = (np.nan, np.nan)
    boot = (_get(r, f"{col}__blo"), _get(r, f"{col}__bhi"))
    return fmt_ci(_get(r, f"{col}__mean"), seed, boot, scale, decimals, data.bounds(col))


def _score(spec: MetricSpec, stat: str) -> Callable[[pd.Series], str]:
    """A row's <metric>_<stat> as the table row formats it (pixel: n/a without masks)."""
    def cell(r: pd.Series) -> str:
        if spec.level == "pixel" and r["no_masks"]:
            return NO_MASKS
        return _ci(r, f"{spec.key}_{stat}", spec.scale, spec.decimals)
    return cell


def fmt_p(p: float) -> str:
    """A p-value as "p=0.12", "p=0.003", or "p<0.001" (never a rounded "p=0.00")."""
    if p < 0.001:
        return "p<0.001"
    return f"p={p:.3f}" if p < 0.01 else f"p={p:.2f}"


def fmt_vs_best(r: pd.Series) -> str:
    """"best", "≈ -2.1" (not significantly below the best), "-9.8 (p=0.003)" (significantly
    below; Holm-adjusted p), "? -3.0" (not testable) or "n/a", from
    ``intervals.with_versus_best``'s columns."""
    if r["vs_best_is_best"]:
        return "best"
    if not np.isfinite(r["vs_best_diff"]):
        return NA
    spec = metric_spec(data.PRIMARY)
    diff = f"{r['vs_best_diff'] * spec.scale:+.{spec.decimals}f}"
    below = r["vs_best_significant"]
    if below is None or below != below:
        return f"? {diff}"
    return f"{diff} ({fmt_p(r['vs_best_p'])})" if below else f"≈ {diff}"


def table(df: pd.DataFrame) -> str:
    """GitHub-markdown table (pipes in cells escaped)."""
    df = df.map(lambda v: str(v).replace("|", "\\|").replace("\n", " "))
    return df.to_markdown(index=False, tablefmt="github", disable_numparse=True)


# ---------------------------------------------------------------- the leaderboard table


def _pooled_shown(agg: pd.DataFrame, spec: MetricSpec) -> bool:
    """A pooled row gets a column only where it differs from its per-class metric in some row
    (a multi-class task); with one class per task it is the same number."""
    base = data.pooled_base(spec)
    nan = pd.Series(np.nan, index=agg.index)
    a = agg.get(f"{spec.key}_acc__mean", nan).to_numpy(float)
    b = agg.get(f"{base}_acc__mean", nan).to_numpy(float)
    both = np.isfinite(a) & np.isfinite(b)
    return bool((np.abs(a[both] - b[both]) > 1e-9).any())


def _score_columns(agg: pd.DataFrame) -> list[Column]:
    """ACC and FM of every summarised metric (BWT and the test against the best too for the
    primary one); a pooled metric's ACC beside its per-class one, where they differ."""
    specs = data.summarised()
    pooled = [s for s in specs if s.pooled and _pooled_shown(agg, s)]
    cols: list[Column] = []
    for spec in (s for s in specs if not s.pooled):
        cols.append((f"{spec.short} ACC", _score(spec, "acc")))
        cols += [(f"{p.short} ACC", _score(p, "acc")) for p in pooled
                 if data.pooled_base(p) == spec.key]
        stats = ("fm", "bwt") if spec.key == data.PRIMARY else ("fm",)
        cols += [(VS_BEST, fmt_vs_best)] if spec.key == data.PRIMARY else []
        cols += [(f"{spec.short} {k.upper()}", _score(spec, k)) for k in stats]
    return cols


def _cost_columns(agg: pd.DataFrame) -> list[Column]:
    kinds = sorted({k for ks in agg["memory_kind"].dropna() for k in str(ks).split("/") if k})
    unit = f"MB, {kinds[0]}" if len(kinds) == 1 else "MB"

    def mem(col: str) -> Callable[[pd.Series], str]:
        def cell(r: pd.Series) -> str:
            text = _ci(r, col, 1, None)
            return text + f" ({r['memory_kind']})" if text != NA and len(kinds) > 1 else text
        return cell

    def cost(col: str) -> Callable[[pd.Series], str]:
        return lambda r: _ci(r, col, 1, None)

    return [("latency p50 (ms)", cost("latency_ms_p50")),
            ("latency p95 (ms)", cost("latency_ms_p95")),
            (f"mem batch 1 ({unit})", mem("memory_mb_batch1")),
            ("throughput (img/s, batch 32)", cost("throughput_img_s")),
            (f"mem batch 32 ({unit})", mem("memory_mb_batch32")),
            ("train time (s)", cost("train_time_s_total")),
            ("params", lambda r: fmt_count(_get(r, "params_total__mean")))]


def _identity_columns() -> list[Column]:
    return [("variant", lambda r: str(r["variant"]) + (" ‡" if r["batch_dependent"] else "")
             + (f" {TIED}" if r.get("tied", False) else "")
             + ("" if r.get("is_flow", True) else " (reference ceiling)")),
            ("strategy", lambda r: r["strategy"] + (" [task-aware]" if r["task_aware"] else "")),
            ("seeds", lambda r: f"{r['seeds']}"
             + (f" (+{r['failed']} failed)" if r["failed"] else ""))]


ROUTING_HEADER = "routing acc (normal / anomalous)"


def routing_cell(r: pd.Series) -> str:
    """Final routing accuracy in points, normal / anomalous images (seed mean, with the seed
    interval where there are seeds); n/a for a row that does not route."""
    parts = [_ci(r, data.routing_col(split)) for split in ("normal", "anomalous")]
    return NA if all(p == NA for p in parts) else " / ".join(parts)


def _details_columns(agg: pd.DataFrame) -> list[Column]:
    """Accuracy in full: seeds, every summarised metric with both intervals, the difference
    to the best with its adjusted p."""
    return _identity_columns() + _score_columns(agg) + [(ROUTING_HEADER, routing_cell)]


def details_tables(agg: pd.DataFrame) -> list[str]:
    """The figures the first table leaves out: accuracy in full, then cost in full."""
    cost = _identity_columns()[:2] + _cost_columns(agg)
    return [_render(agg, _details_columns(agg)), _render(agg, cost)]


def _render(agg: pd.DataFrame, cols: list[Column]) -> str:
    rows = [{name: cell(r) for name, cell in cols} for _, r in agg.iterrows()]
    return table(pd.DataFrame(rows, columns=[name for name, _ in cols]))


def verdict_mark(r: pd.Series) -> str:
    """"best", "≈" (not significantly below the best), "below" or "?" (not testable)."""
    if r.get("vs_best_is_best", False):
        return "best"
    below = r.get("vs_best_significant")
    if below is None or below != below or not np.isfinite(_get(r, "vs_best_diff")):
        return "?"
    return "below" if below else "≈"


# A row's marks, each a short text ("" where it has none), joined in the table's `mark` column;
# a new kind of mark (e.g. ties, calibration) adds its function here.
MARKS: list[Callable[[pd.Series], str]] = [verdict_mark]


def marks(r: pd.Series) -> str:
    return " ".join(m for mark in MARKS if (m := mark(r)))


def _primary_acc(r: pd.Series) -> str:
    """Primary ACC with its 95% interval on seeds and test images together (the verdicts'
    unit), else whichever interval the row has."""
    spec = metric_spec(data.PRIMARY)
    col = f"{spec.key}_acc"
    lo, hi = _get(r, f"{col}__clo"), _get(r, f"{col}__chi")
    if not has_interval(lo, hi):
        return _ci(r, col, spec.scale, spec.decimals)
    lo, hi = np.clip([lo, hi], *data.bounds(col))
    return fmt_ci(_get(r, f"{col}__mean"), boot=(lo, hi), scale=spec.scale,
                  decimals=spec.decimals)


def _mean_only(spec: MetricSpec, stat: str) -> Callable[[pd.Series], str]:
    def cell(r: pd.Series) -> str:
        if spec.level == "pixel" and r["no_masks"]:
            return NA
        return fmt_pm(_get(r, f"{spec.key}_{stat}__mean"), scale=spec.scale,
                      decimals=spec.decimals)
    return cell


def _glance_columns(agg: pd.DataFrame) -> list[Column]:
    """model, strategy, image ACC [interval], mark, FM, pixel ACC, AUPRO ACC, latency, memory,
    params: ten columns, one figure each."""
    by_key = {s.key: s for s in data.summarised()}
    primary = by_key[data.PRIMARY]
    pixel = [s for s in data.summarised() if s.level == "pixel" and not s.pooled]
    mem = dict(_cost_columns(agg))
    mem_name = next(n for n in mem if n.startswith("mem batch 1"))
    return [*_identity_columns()[:2],
            (f"{primary.short} ACC [95%]", _primary_acc), ("mark", marks),
            (f"{primary.short} FM", _mean_only(primary, "fm")),
            *[(f"{s.short} ACC", _mean_only(s, "acc")) for s in pixel],
            ("latency p50 (ms)", lambda r: fmt_pm(_get(r, "latency_ms_p50__mean"), scale=1,
                                                   decimals=None)),
            (mem_name, lambda r: fmt_pm(_get(r, "memory_mb_batch1__mean"), scale=1,
                                        decimals=None)),
            ("params", lambda r: fmt_count(_get(r, "params_total__mean")))]


def main_table(agg: pd.DataFrame) -> str:
    """The per-scenario table to read at a glance (``agg`` carries the verdict columns)."""
    return _render(agg, _glance_columns(agg))


# ---------------------------------------------------------------- the other tables


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
    acc = f"{data.PRIMARY}_acc"
    rows = []
    for _, r in routes.iterrows():
        oracle = _oracle_row(agg, r)
        rows.append({"variant": r["variant"], "strategy": r["strategy"], "seeds": r["seeds"],
                     ROUTING_HEADER: routing_cell(r), "img ACC (routed)": _ci(r, acc),
                     "img ACC (oracle)": NA if oracle is None else _ci(oracle, acc),
                     "img FM (oracle)": NA if oracle is None else _ci(oracle, f"{data.PRIMARY}_fm"),
                     "routed - oracle [95%]": gap_cell(r, "routing_gap")})
    return table(pd.DataFrame(rows))


def gap_cell(r: pd.Series, prefix: str) -> str:
    """A row's image ACC minus its twin's (intervals._with_gaps), in points, with its 95%
    interval and the test behind it (Welch across seeds, or a paired bootstrap over the test
    images with one seed)."""
    gap = _get(r, prefix)
    if not np.isfinite(gap):
        return NA
    lo, hi = _get(r, f"{prefix}_lo"), _get(r, f"{prefix}_hi")
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
    acc = f"{data.PRIMARY}_acc"
    out = [{"variant": r["variant"],
            "strategy": r["strategy"] + (" [task-aware]" if r["task_aware"] else ""),
            "seeds": r["seeds"], "img ACC": _ci(r, acc), "img FM": _ci(r, f"{data.PRIMARY}_fm"),
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
    f1 = _ci(r, f"{rule}_f1")
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


# ---------------------------------------------------------------- the leaderboard


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
"pooled" columns, shown only where they differ, pool the task's images into one ROC.
Latency is per image at batch 1, throughput at batch 32, train time summed over tasks; memory
is given at batch 1 and at batch 32 (`cuda_max_allocated`: the GPU allocator's peak;
`cpu_rss_over_backbone`: CPU memory over a backbone-only baseline in a fresh process;
`cpu_peak_rss`, older records: the run's peak RSS over both batch sizes, shown in both).
"""

INTERVALS = (
    "In each scenario's first table, the image ACC interval is the 95% interval on seeds and "
    "test images together (the unit the marks are tested on); the details give the two apart. "
    "Intervals (95%): `[a, b]` is a bootstrap over test images ({n} replicates of the stored "
    "per-sample scores; images resampled with replacement within each class and label; fixed "
    "seed, so the report is reproducible; a multi-seed row averages its seeds' replicates, "
    "drawn on the same images). `s[a, b]` is a Student-t interval across seeds (rows with >= 2 "
    "seeds; clipped to the metric's range). The bootstrap covers ACC of all three metrics and "
    "FM/BWT of image AUROC; pixel intervals use maps binned to {levels} quantile levels per "
    "class, while every point estimate is exact."
)
SIGNIFICANCE = (
    "`mark` (first table): `best` (the best flow row by image ACC), `≈` (not significantly "
    "below it), `below` (significantly below it), `?` (not testable: no per-sample scores); "
    f"`{VS_BEST}` (details): the row's image ACC minus the best's, in points. Procedure: "
    + cmp.PROCEDURE + "; a row is below the best when a task-agnostic flow row is "
    "significantly above it (adjusted p shown), and the rows marked `≈` with the best form a "
    "95% confidence set for it. With one seed per row the spread across seeds is not observable"
    ", so the test then carries test-image noise only."
)
CEILING = (
    "Rows marked (reference ceiling) are not normalizing flows (e.g. a nearest-neighbour "
    "memory bank on the same features): the strongest simple baseline, shown for "
    "scale. Only task-agnostic flow rows can be the best; a ceiling row, and a row given the "
    "oracle task id (`[task-aware]`), is tested against them like any other row."
)
BATCH_DEPENDENT = (
    "‡ This entry's scores depend on the other images in its batch (against the contract's rule "
    "that a score is a function of its own image only), so its figures change with batch "
    "composition and are not strictly comparable."
)


def _seeds_line(agg: pd.DataFrame) -> str:
    run = agg.loc[agg["seeds"] > 0, "seeds"]
    if run.empty or int(run.max()) <= 1:
        return "1 seed: intervals are bootstrap over test images only; seeds were not varied."
    lo, hi = int(run.min()), int(run.max())
    return (f"Seeds per row: {lo if lo == hi else f'{lo} to {hi}'} (column `seeds`); rows "
            "with one seed have the bootstrap interval only.")


def _uniq(cells: pd.DataFrame, col: str) -> str:
    return ", ".join(sorted({str(x) for x in cells[col].dropna()})) if len(cells) else NA


def header(results_dir: Path, records: Sequence[CellRecord], cells: pd.DataFrame,
           agg: pd.DataFrame) -> list[str]:
    """Title, what was read (no clock time: the same results give the same text), and how
    to read the intervals."""
    status = cells["status"] if len(cells) else pd.Series(dtype=object)
    n_ok, n_skip = int((status == "ok").sum()), int((status == "skipped").sum())
    newest = max((r.created for r in records if r.created), default=None)
    lines = ["# nfbench leaderboard", "",
             f"Generated by `nfbench report` (nfbench.benchmarks.report) from `{results_dir}`"
             + (f" (newest cell created {newest})" if newest else "")
             + f": {len(cells)} cells ({n_ok} ok, {len(cells) - n_ok - n_skip} failed, "
             f"{n_skip} not run).", "",
             f"Scenario(s): {_uniq(cells, 'scenario') or NA}. Device(s): "
             f"{_uniq(cells, 'device') or NA} (torch {_uniq(cells, 'torch') or NA}). "
             f"Backbone(s): {_uniq(cells, 'backbone') or NA}.", ""]
    if not records:
        lines += [f"No records found in `{Path(results_dir) / 'cells'}`.", ""]
    if not agg.empty:
        lines += [_seeds_line(agg), "", INTERVALS.format(n=st.N_BOOT, levels=st.LEVELS), "",
                  SIGNIFICANCE, ""]
        lines += [BATCH_DEPENDENT, ""] if agg["batch_dependent"].any() else []
        lines += [CEILING, ""] if not agg["is_flow"].all() else []
    return lines


def _folded(summary: str, body: list[str]) -> list[str]:
    """A collapsed section (GitHub renders <details>; plain markdown shows it in full)."""
    return ["<details>", f"<summary>{summary}</summary>", "", *body, "</details>", ""]


def scenario_section(scenario: str, sub: pd.DataFrame, tasks: list[list[str]],
                     pc: pd.DataFrame, plots: dict[str, str],
                     tie_note: str | None = None) -> list[str]:
    """One scenario: its tasks, the table to read at a glance (with the note on its tied
    entries), per-class tables of the primary metric (one per strategy), plot links ({title:
    path relative to the leaderboard}), then the details folded: every figure with both
    intervals, cost, the other metrics per class and the thresholds."""
    lines = [f"## Scenario `{scenario}`", "",
             f"T = {len(tasks)} tasks: " + " → ".join(", ".join(t) for t in tasks) + ".", ""]
    no_masks = sorted({str(d) for d, n in zip(sub["dataset_name"], sub["no_masks"], strict=True)
                       if n})
    if no_masks:
        lines += [f"Dataset {', '.join(f'`{d}`' for d in no_masks)} has no ground-truth masks, "
                  "so pixel metrics were not measured (pixel columns: n/a).", ""]
    lines += [main_table(sub), ""]
    lines += [tie_note, ""] if tie_note else []
    if routing := routing_table(sub):
        lines += ["### Routing", "", "Rows that route each test image to a task before "
                  "scoring it (task-agnostic), beside the same rows with `--task-aware` (oracle "
                  "routing). Routing accuracy: share of a task's test images routed to it, final "
                  "evaluation, mean over tasks, in points. `routed - oracle`: image ACC lost to "
                  "routing, in points, with its 95% interval: a seed's routed and oracle cells "
                  "train the same model, so the difference is paired by seed (Student's t on "
                  "the per-seed differences; with one seed, a paired bootstrap over the test "
                  "images).", "", routing, ""]
    if variants := variants_table(sub):
        lines += ["### Variants (ablations)", "", "Models also run with changed flags, each "
                  "beside the model's default variant under the same strategy and routing. `vs "
                  "default`: image ACC minus the default's, in points, with its 95% interval, "
                  "paired by seed (Student's t on the per-seed differences; with one seed, a "
                  "paired bootstrap over the test images).", "", variants, ""]
    classes = [c for t in tasks for c in t]
    specs = [s for s in data.summarised() if not s.pooled]
    if tables := per_class_tables(pc, sub, classes, specs[:1]):
        lines += ["### Per class", "", *[t + "\n" for t in tables]]
    if plots:
        lines += ["### Plots", ""]
        lines += [line for title, p in plots.items() for line in (f"![{title}]({p})", "")]
    accuracy, cost = details_tables(sub)
    details = ["Accuracy with both intervals and the difference to the best:", "", accuracy,
               "", "Cost:", "", cost, ""]
    details += [t + "\n" for t in per_class_tables(pc, sub, classes, specs[1:])]
    if thr := thresholds_table(sub):
        details += ["Automatic thresholds: F1 (precision / recall) in points at each automatic "
                    "threshold, final evaluation. " + thr[0], "", thr[1], ""]
    return lines + _folded(f"Details of <code>{scenario}</code>", details)


def ranks_section(tests: dict[str, RankTest | None], plots: dict[str, str]) -> list[str]:
    """Mean ranks over (scenario, class) blocks per strategy and over all strategies, with the
    Friedman test and the Nemenyi critical difference; CD diagrams linked ({name: path})."""
    if not any(tests.values()):
        return []
    lines = ["## Ranks across scenarios and classes", "",
             f"Blocks are (scenario, class) pairs scored by every compared method; within a "
             f"block methods are ranked on {metric_spec(data.PRIMARY).label} of the final "
             "evaluation (1 = best). Friedman test, then Nemenyi's post-hoc test (Demšar 2006): "
             "methods joined by a bar in a diagram, or closer than CD in mean rank, are not "
             "told apart at the 5% level.", ""]
    rows = [{"strategy": name, "blocks": t.blocks, "methods": len(t.mean_ranks),
             "Friedman χ²": f"{t.statistic:.2f}", "p": fmt_p(t.p_value), "CD": f"{t.cd:.2f}",
             "best mean rank": f"{t.mean_ranks.index[0]} ({t.mean_ranks.iloc[0]:.2f})"}
            for name, t in tests.items() if t is not None]
    lines += [table(pd.DataFrame(rows)), ""]
    skipped = [name for name, t in tests.items() if t is None]
    if skipped:
        lines += [f"Not ranked (fewer than 3 methods or 2 complete blocks): "
                  f"{', '.join(skipped)}.", ""]
    lines += [line for name, p in plots.items() for line in (f"![CD diagram, {name}]({p})", "")]
    return lines


def footer(cells: pd.DataFrame, notes: list[str]) -> list[str]:
    """Cells not run and failed, notes, and how to read the report."""
    lines = []
    if not_run := not_run_table(cells):
        lines += ["## Not run", "", "Cells skipped on purpose (not failures):", "", not_run, ""]
    if failed := failed_table(cells):
        lines += ["## Failed cells", "", failed, ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return lines + [HOW_TO_READ]


def leaderboard(head: list[str], sections: list[list[str]], foot: list[str]) -> str:
    return "\n".join([*head, *(line for s in sections for line in s), *foot])
