"""Leaderboard, CSVs and plots from stored cell records (``nfbench report``).

Reads ``<results_dir>/cells/*.json`` with ``record.load_records`` (typed ``CellRecord``s;
unreadable files become notes), groups cells by (variant, scenario, strategy, task_aware)
across seeds and writes ``leaderboard.md``, ``csv/*.csv`` and ``plots/*.png`` under
``out_dir``. The package splits the work:

- ``data``: frames and aggregation from records (pure pandas/numpy);
- ``intervals``: the bootstrap over test images and the tests against the best row;
- ``markdown``: the leaderboard text; ``plots``: the figures (from frames, no file reading);
- ``files``: per-sample scores, maps and images in, CSVs, figures and text out.

Which metrics are summarised and how they are named comes from ``metrics.metric_table()``.
Skipped cells (``status: skipped``) are listed as "not run", never as failures.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nfbench.benchmarks.measuring import ranking
from nfbench.benchmarks.records.record import CellRecord, load_records
from nfbench.benchmarks.report import data, files, intervals, markdown, plots, ties

__all__ = ["cd_diagrams", "frames", "rank_tests", "scenario_plots", "write_report"]


def frames(records: list[CellRecord], results_dir: Path
           ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, dict]]:
    """(cells, per-class, aggregate with intervals and tests, cell replicates)."""
    cells, pc = data.cells_frame(records), data.per_class_frame(records)
    agg = data.aggregate(cells)
    reps, sigs = intervals.cell_replicates(records, files.read_cell_scores(records, results_dir))
    if not agg.empty:
        agg = intervals.bootstrap_groups(records, agg, reps, sigs).copy()
        agg = intervals.with_versus_best(agg, cells, reps, sigs).copy()
        agg = intervals.with_routing_gaps(agg, records, reps, sigs)
        agg = intervals.with_variant_gaps(agg, records, reps, sigs).copy()  # one block: the
        # interval columns were added one by one (pandas' fragmentation warning)
        agg["vs_best"] = [markdown.fmt_vs_best(r) for _, r in agg.iterrows()]
    return cells, pc, agg, reps


def scenario_plots(recs: list[CellRecord], sub: pd.DataFrame, results_dir: Path,
                   plot_dir: Path, suffix: str, ext: str = "png"
                   ) -> tuple[dict[str, Path], list[str]]:
    """All figures of one scenario, saved as ``ext`` (png; pdf for the paper: vector);
    ({title: path} of those made, notes)."""
    if sub.empty or not any(r.ok for r in recs):
        return {}, ["no plots: no successful cells"]
    mats = data.mean_r(recs)
    mats = {lab: mats[lab] for lab in sub["label"] if lab in mats}
    names = ["+".join(t) for t in data.task_names(recs)]
    tied = ties.tie_masks(ties.tied_entries(recs), len(names))
    style = plots.styles(sub)
    figures = {
        ("R-matrix heatmaps (image AUROC)", "r_matrix_image_auroc"):
            lambda: plots.r_heatmaps(mats, names, tied=tied),
        ("ACC vs latency (Pareto front)", "acc_vs_latency"):
            lambda: plots.acc_vs_latency(sub, style),
        ("Forgetting (FM)", "forgetting"): lambda: plots.forgetting_bars(sub, style),
        ("Per-task curves", "per_task"):
            lambda: plots.per_task_curves(mats, style, seeds=data.seed_r(recs)),
        ("Memory", "memory"): lambda: plots.memory_bars(sub, style),
        ("Memory per task", "state_per_task"):
            lambda: plots.state_per_task(data.state_per_task(recs), style,
                                         data.trainable_per_task(recs)),
        ("Routing accuracy over tasks", "routing"):
            lambda: plots.routing_over_tasks(data.routing_per_task(recs), style),
    }
    made, notes = {}, []
    for (title, name), build in figures.items():
        fig = build()
        if fig is None:
            notes.append(f"{title}: skipped (no data)")
        else:
            made[title] = files.save_figure(fig, plot_dir / f"{name}{suffix}.{ext}")
    rows, cols, note = files.anomaly_panel(recs, results_dir)
    if cols:
        made["Anomaly maps"] = files.save_figure(plots.anomaly_maps(rows, cols),
                                                 plot_dir / f"anomaly_maps{suffix}.{ext}")
    return made, notes + ([note] if note else [])


def _scenario_notes(sc: str, sub: pd.DataFrame, recs: list[CellRecord], reps: dict) -> list[str]:
    """Memory notes of the scenario's rows, and rows left without a bootstrap interval."""
    notes = [f"`{sc}`: {r['label']}: memory {r['memory_note']}" for _, r in sub.iterrows()
             if isinstance(r["memory_note"], str) and r["memory_note"]]
    scored = {data.group_key(rec) for rec in recs if rec.cell_id in reps}
    missing = [lab for lab, key, n in zip(sub["label"], data.frame_keys(sub), sub["seeds"],
                                          strict=True) if n and key not in scored]
    if missing:
        notes.append(f"`{sc}`: no bootstrap interval for {', '.join(missing)} (per-sample "
                     "scores missing or unreadable)")
    return notes


def rank_tests(pc: pd.DataFrame) -> dict[str, ranking.RankTest | None]:
    """Friedman/Nemenyi per strategy and over all strategies (``data.rank_blocks``)."""
    return {name: ranking.rank_test(blocks) for name, blocks in data.rank_blocks(pc).items()}


def cd_diagrams(tests: dict[str, ranking.RankTest | None], plot_dir: Path, ext: str = "png"
                ) -> dict[str, Path]:
    """One critical-difference diagram per ranked strategy (and over all), saved."""
    return {name: files.save_figure(plots.cd_diagram(test, name),
                                    plot_dir / f"critical_difference_{files.slug(name)}.{ext}")
            for name, test in tests.items() if test is not None}


def _ranks(pc: pd.DataFrame, out_dir: Path) -> list[str]:
    """The ranks section with its CD diagrams saved under plots/."""
    tests = rank_tests(pc)
    links = {name: p.relative_to(out_dir).as_posix()
             for name, p in cd_diagrams(tests, out_dir / "plots").items()}
    return markdown.ranks_section(tests, links)


def write_report(results_dir: Path, out_dir: Path) -> Path:
    """Write leaderboard.md, csv/ and plots/ for all records in ``results_dir``; return the
    leaderboard's path."""
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    files.clear_plots(out_dir / "plots", plots.PLOT_NAMES)  # stale plots of an earlier report
    records, notes = load_records(results_dir)
    cells, pc, agg, reps = frames(records, results_dir)
    files.write_csv(cells, out_dir / "csv" / "summary.csv")
    files.write_csv(pc, out_dir / "csv" / "per_class.csv")
    files.write_csv(data.r_matrices_frame(records), out_dir / "csv" / "r_matrices.csv")
    if not agg.empty:
        files.write_csv(agg, out_dir / "csv" / "leaderboard.csv")
    tied = ties.tied_entries(records)
    files.write_csv(tied, out_dir / "csv" / "ties.csv")
    scenarios = data.scenario_order(records, agg)
    sections = []
    for sc in scenarios:
        sub = agg[agg["scenario"] == sc].reset_index(drop=True)
        tied_sc = tied[tied["scenario"] == sc]
        sub["tied"] = sub["label"].isin(tied_sc["label"])
        recs = [r for r in records if r.scenario == sc]
        notes += _scenario_notes(sc, sub, recs, reps)
        suffix = "" if len(scenarios) == 1 else f"_{files.slug(sc)}"
        made, plot_notes = scenario_plots(recs, sub, results_dir, out_dir / "plots", suffix)
        notes += [f"`{sc}`: {n}" for n in plot_notes]
        links = {title: p.relative_to(out_dir).as_posix() for title, p in made.items()}
        pc_sc = pc[pc["scenario"] == sc] if len(pc) else pc
        sections.append(markdown.scenario_section(sc, sub, data.task_names(recs), pc_sc, links,
                                                  ties.tie_note(tied_sc)))
    sections.append(_ranks(pc, out_dir))
    text = markdown.leaderboard(markdown.header(results_dir, records, cells, agg), sections,
                                markdown.footer(cells, notes))
    return files.write_text(text, out_dir / "leaderboard.md")
