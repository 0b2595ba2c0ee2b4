"""The leaderboard's text as GitHub markdown (pandas + tabulate): its header, first table,
details, scenario sections and footer. Its other tables are in tables.py and its number
formats in formats.py (compare.md's text, compare_text.py, uses the same ones).

Works on the frames of ``data``/``intervals`` only. Scores are shown as their table row says
(``MetricSpec.scale``/``decimals``: points, one decimal), as the mean over seeds with its 95%
intervals: ``[a, b]`` a bootstrap over test images, ``s[a, b]`` a Student-t interval across
seeds (rows with >= 2 seeds). Column headers come from the metric table, so a new summarised
row gets its columns here without an edit.
"""

from __future__ import annotations

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
from nfbench.benchmarks.report.formats import (
    NA,
    cell_value,
    fmt_ci,
    fmt_count,
    fmt_p,
    fmt_pm,
    fmt_row_ci,
    has_interval,
    table,
)
from nfbench.benchmarks.report.tables import (
    ROUTING_HEADER,
    failed_table,
    not_run_table,
    per_class_tables,
    routing_cell,
    routing_table,
    thresholds_table,
    variants_table,
)
from nfbench.benchmarks.report.ties import TIED

__all__ = ["details_tables", "fmt_vs_best", "footer", "header", "leaderboard", "main_table",
           "ranks_section", "scenario_section"]

NO_MASKS = "n/a (no masks)"
VS_BEST = "Δ img ACC vs best"
Column = tuple[str, Callable[[pd.Series], str]]


def _score(spec: MetricSpec, stat: str) -> Callable[[pd.Series], str]:
    """A row's <metric>_<stat> as the table row formats it (pixel: n/a without masks)."""
    def cell(r: pd.Series) -> str:
        if spec.level == "pixel" and r["no_masks"]:
            return NO_MASKS
        return fmt_row_ci(r, f"{spec.key}_{stat}", spec.scale, spec.decimals)
    return cell


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
            text = fmt_row_ci(r, col, 1, None)
            return text + f" ({r['memory_kind']})" if text != NA and len(kinds) > 1 else text
        return cell

    def cost(col: str) -> Callable[[pd.Series], str]:
        return lambda r: fmt_row_ci(r, col, 1, None)

    return [("latency p50 (ms)", cost("latency_ms_p50")),
            ("latency p95 (ms)", cost("latency_ms_p95")),
            (f"mem batch 1 ({unit})", mem("memory_mb_batch1")),
            ("throughput (img/s, batch 32)", cost("throughput_img_s")),
            (f"mem batch 32 ({unit})", mem("memory_mb_batch32")),
            ("train time (s)", cost("train_time_s_total")),
            ("params", lambda r: fmt_count(cell_value(r, "params_total__mean")))]


def _identity_columns() -> list[Column]:
    return [("variant", lambda r: str(r["variant"]) + (" ‡" if r["batch_dependent"] else "")
             + (f" {TIED}" if r.get("tied", False) else "")
             + ("" if r.get("is_flow", True) else " (reference ceiling)")),
            ("strategy", lambda r: r["strategy"] + (" [task-aware]" if r["task_aware"] else "")),
            ("seeds", lambda r: f"{r['seeds']}"
             + (f" (+{r['failed']} failed)" if r["failed"] else ""))]


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
    if below is None or below != below or not np.isfinite(cell_value(r, "vs_best_diff")):
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
    lo, hi = cell_value(r, f"{col}__clo"), cell_value(r, f"{col}__chi")
    if not has_interval(lo, hi):
        return fmt_row_ci(r, col, spec.scale, spec.decimals)
    lo, hi = np.clip([lo, hi], *data.bounds(col))
    return fmt_ci(cell_value(r, f"{col}__mean"), boot=(lo, hi), scale=spec.scale,
                  decimals=spec.decimals)


def _mean_only(spec: MetricSpec, stat: str) -> Callable[[pd.Series], str]:
    def cell(r: pd.Series) -> str:
        if spec.level == "pixel" and r["no_masks"]:
            return NA
        return fmt_pm(cell_value(r, f"{spec.key}_{stat}__mean"), scale=spec.scale,
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
            ("latency p50 (ms)", lambda r: fmt_pm(cell_value(r, "latency_ms_p50__mean"), scale=1,
                                                   decimals=None)),
            (mem_name, lambda r: fmt_pm(cell_value(r, "memory_mb_batch1__mean"), scale=1,
                                        decimals=None)),
            ("params", lambda r: fmt_count(cell_value(r, "params_total__mean")))]


def main_table(agg: pd.DataFrame) -> str:
    """The per-scenario table to read at a glance (``agg`` carries the verdict columns)."""
    return _render(agg, _glance_columns(agg))


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
    if lo == hi:
        return f"Seeds per row: {lo} (column `seeds`)."
    return (f"Seeds per row: {lo} to {hi} (column `seeds`); rows with one seed have the "
            "bootstrap interval only.")


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
