"""write_report on small results of real CellRecords: numbers, intervals, significance, failures,
files; the metric table as the one source of columns; plots checked by what they draw."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer
from report_records import CLASSES, SCENARIO, make_results
from report_records import identity as _identity
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

import nfbench.benchmarks.report as report_module
from nfbench.benchmarks.measuring import metrics
from nfbench.benchmarks.measuring.statistics import stratified_counts
from nfbench.benchmarks.records.record import (
    CellRecord,
    Cost,
    cell_path,
    load_records,
    read_record,
    write_record,
)
from nfbench.benchmarks.report import data, files, markdown, plots, write_report
from nfbench.benchmarks.report.formats import fmt_ci, fmt_pm
from nfbench.benchmarks.report.ties import TIED, tie_masks, tied_entries

PLOTS = ["r_matrix_image_auroc.png", "acc_vs_latency.png", "forgetting.png", "per_task.png",
         "memory.png", "anomaly_maps.png"]
CSVS = ["summary.csv", "per_class.csv", "r_matrices.csv"]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Two seeds of fastflow/finetune, one ccnf/joint, one failed cflow/finetune."""
    return make_results(tmp_path)


def _edit(results: Path, name_part: str, **fields: object) -> None:
    """Set attributes on every stored record whose file name contains ``name_part``."""
    for p in (results / "cells").glob("*.json"):
        if name_part in p.name:
            rec = read_record(p)
            for k, v in fields.items():
                setattr(rec, k, v)
            write_record(p, rec)


def _row(md: str, *cells: str) -> list[str]:
    """Cells of the first markdown table row that starts with the given cells."""
    for line in md.splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if parts[: len(cells)] == list(cells):
            return parts
    raise AssertionError(f"no row {cells} in leaderboard:\n{md}")


def _table_row(md: str, *cells: str, column: str | None = None) -> dict[str, str]:
    """The first markdown table row starting with ``cells`` (in a table with ``column``, when
    given), as {header: cell}."""
    header: list[str] = []
    lines = md.splitlines()
    for i, line in enumerate(lines):
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if i + 1 < len(lines) and lines[i + 1].startswith("|--"):
            header = parts
        elif parts[: len(cells)] == list(cells) and header and (column is None
                                                                  or column in header):
            return dict(zip(header, parts, strict=True))
    raise AssertionError(f"no row {cells} in:\n{md}")


def _boot_acc(results: Path, cell_ids: list[str], n_boot: int = 1000) -> np.ndarray:
    """Seed-averaged bootstrap ACC replicates, recomputed here one replicate at a time: images
    drawn per (class, label), per-class AUROC by counting pairs (checked against sklearn on the
    first replicate; the vectorised rank form is tested in test_statistics), mean over tasks."""

    def auc(y: np.ndarray, s: np.ndarray) -> float:
        pos, neg = s[y == 1][:, None], s[y == 0][None, :]
        return float(np.mean((pos > neg) + 0.5 * (pos == neg)))

    frames = [pd.read_csv(results / "scores" / f"{c}.csv") for c in cell_ids]
    last = [f[f["after_task"] == f["after_task"].max()].sort_values("row") for f in frames]
    counts = stratified_counts(list(zip(last[0]["class_name"], last[0]["label"].astype(bool),
                                        strict=True)), n_boot, 0)
    names = last[0]["class_name"].to_numpy()
    out = np.zeros((len(cell_ids), n_boot))
    for j, f in enumerate(last):
        y, s = f["label"].to_numpy(), f["image_score"].to_numpy()
        for b in range(n_boot):
            idx = np.repeat(np.arange(len(f)), counts[b].astype(int))
            per = [(y[idx][names[idx] == c], s[idx][names[idx] == c]) for c in CLASSES]
            out[j, b] = np.mean([auc(*p) for p in per])
            if b == 0:
                assert out[j, b] == pytest.approx(np.mean([roc_auc_score(*p) for p in per]))
    return out.mean(axis=0)


def _ci_text(reps: np.ndarray) -> str:
    lo, hi = np.percentile(reps, [2.5, 97.5]) * 100
    return f"[{lo:.1f}, {hi:.1f}]"


def _seed_ci(values: list[float]) -> tuple[float, float]:
    half = sps.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
    return np.mean(values) - half, np.mean(values) + half


def test_write_report_full(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    path = write_report(results, out)
    assert path == out / "leaderboard.md"
    md = path.read_text()

    glance = _table_row(md, "fastflow", "finetune")  # the first table: ten columns
    assert list(glance) == ["variant", "strategy", "img AUROC ACC [95%]", "mark", "img AUROC FM",
                            "pix AUROC ACC", "AUPRO ACC", "latency p50 (ms)",
                            "mem batch 1 (MB, cpu_rss_over_backbone)", "params"]
    assert glance["mark"] == "≈" and glance["img AUROC FM"] == "3.5"
    assert _table_row(md, "ccnf", "joint")["mark"] == "best"
    ff = _table_row(md, "fastflow", "finetune", column="seeds")  # details: accuracy in full
    ff_ids = [f"fastflow__synthetic-2x1__finetune__s{s}__deadbeef" for s in (0, 1)]
    ff_reps = _boot_acc(results, ff_ids)
    lo, hi = _seed_ci([0.90, 0.93])
    seed_ci = f"s[{lo * 100:.1f}, {min(hi, 1) * 100:.1f}]"  # clipped at 100
    assert ff["seeds"] == "2"
    assert ff["img AUROC ACC"] == f"91.5 {_ci_text(ff_reps)} {seed_ci}"
    lo, hi = _seed_ci([0.05, 0.02])
    assert ff["img AUROC FM"].startswith("3.5 [")
    assert ff["img AUROC FM"].endswith(f"s[{lo * 100:.1f}, {hi * 100:.1f}]")
    assert ff["pix AUROC ACC"].startswith("89.5 [")  # mean of 0.88 and 0.91, bootstrap from maps
    cost = _table_row(md, "fastflow", "finetune", column="latency p95 (ms)")
    assert cost["latency p50 (ms)"].startswith("3.20 s[")  # cost: seed interval only
    assert cost["train time (s)"] == "4.00"  # identical seeds: no interval for a cost
    assert cost["params"] == "123.5k"
    assert cost["mem batch 1 (MB, cpu_rss_over_backbone)"].startswith("40.5 s[")
    assert cost["mem batch 32 (MB, cpu_rss_over_backbone)"].startswith("850 s[")

    cc = _table_row(md, "ccnf", "joint", column="seeds")
    cc_reps = _boot_acc(results, ["ccnf__synthetic-2x1__joint__s0__deadbeef"])
    assert cc["seeds"] == "1" and cc["img AUROC ACC"] == f"95.0 {_ci_text(cc_reps)}"  # no s[...]
    assert cc["img AUROC FM"] == cc["img AUROC BWT"] == "n/a"  # joint: no FM / BWT
    assert cc["Δ img ACC vs best"] == "best"
    # fastflow (2 seeds) vs ccnf (1 seed): the spread of 2 seeds has 1 degree of freedom, so
    # 3.5 points are not significant on seeds and images together
    assert ff["Δ img ACC vs best"] == "≈ -3.5"
    assert _table_row(md, "cflow", "finetune", column="seeds")["seeds"] == "0 (+1 failed)"
    assert "Seeds per row: 1 to 2" in md and "Holm-adjusted over all pairs" in md
    assert "`s[a, b]` is a Student-t interval across seeds" in md
    assert "img AUROC pooled ACC" not in md  # one class per task: same number
    assert "(newest cell created 2026-11-23T12:00:00+00:00)" in md  # the records' `created`

    # per-class table, thresholds (the oracle reports F1 only), failure, how-to-read, plots
    # per-class tables: one per strategy, columns = variants; image AUROC first
    grass = _table_row(md, "grass", column="fastflow")  # finetune comes first
    assert grass["fastflow"] == f"{np.mean([0.91, 0.94]) * 100:.1f}"  # seed mean
    assert _table_row(md, "grass", column="ccnf")["ccnf"] == "96.0"  # the joint table
    assert "**image AUROC, finetune**" in md and "**image AUROC, joint**" in md
    thr = _table_row(md, "ccnf / joint")
    assert thr["percentile_99 F1 (P / R; FA)"] == "80.0 (90.0 / 70.0; 25.0)"  # FA: normals flagged
    assert thr["oracle_f1max F1"] == "90.0"
    assert _row(md, "fastflow / finetune")[1] == "80.0 s[80.0, 80.0] (90.0 / 70.0; 25.0)"  # 2 seeds
    assert "on a calibration split held out of their training images" in md
    failed = _row(md, "cflow__synthetic-2x1__finetune__s0__deadbeef")
    assert "Diverged" in failed and "loss is nan" in failed and failed[-2:] == ["1", "130"]
    assert "## How to read" in md and "synthetic:2x1" in md and "cpu" in md
    for name in PLOTS:
        assert f"(plots/{name})" in md and (out / "plots" / name).is_file(), name
    for name in CSVS:
        assert (out / "csv" / name).stat().st_size > 0, name

    summary = pd.read_csv(out / "csv" / "summary.csv")
    assert len(summary) == 4 and set(summary["status"]) == {"ok", "failed"}
    assert summary.loc[summary["variant"] == "ccnf", "image_auroc_fm"].isna().all()
    rm = pd.read_csv(out / "csv" / "r_matrices.csv")
    assert list(rm.columns) == ["cell_id", "metric", "t", "k", "value"]
    assert len(rm) == 3 * 4 * 4  # 3 ok cells x 4 metrics x 2x2
    assert len(pd.read_csv(out / "csv" / "per_class.csv")) == 3 * 2


def test_only_failed_cells(results: Path, tmp_path: Path) -> None:
    for p in (results / "cells").glob("*.json"):
        if read_record(p).ok:
            p.unlink()
    md = write_report(results, tmp_path / "r").read_text()
    assert "Diverged" in md and "no plots" in md
    assert (tmp_path / "r" / "csv" / "summary.csv").stat().st_size > 0


def test_unreadable_record_is_a_note(results: Path, tmp_path: Path) -> None:
    (results / "cells" / "broken.json").write_text("{not json")
    (results / "cells" / "future.json").write_text(json.dumps({"schema_version": 99}))
    md = write_report(results, tmp_path / "r").read_text()
    notes = md.split("## Notes")[1].split("## How to read")[0]
    assert "broken.json" in notes and "future.json" in notes and "schema 99" in notes
    assert "4 cells (3 ok, 1 failed, 0 not run)" in md


def test_schema_1_record_memory_peak(results: Path, tmp_path: Path) -> None:
    """A schema-1 record (one peak RSS, no batch sizes) shows its peak at batch 1 and 32."""
    p = next((results / "cells").glob("ccnf*.json"))
    old = json.loads(p.read_text())
    old["schema_version"] = 1
    old["cost"].update(memory_mb_batch1=None, memory_mb_batch32=None, peak_memory_mb=900.0,
                       memory_kind="cpu_peak_rss")
    p.write_text(json.dumps(old))
    md = write_report(results, tmp_path / "r").read_text()
    cc = _table_row(md, "ccnf", "joint", column="mem batch 32 (MB)")
    assert cc["mem batch 1 (MB)"] == cc["mem batch 32 (MB)"] == "900 (cpu_peak_rss (schema 1))"


def test_single_cell_missing_maps(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    write_report(results, out)
    assert (out / "plots" / "anomaly_maps.png").exists()  # removed below as stale
    for p in (results / "cells").glob("*.json"):
        if "ccnf" not in p.name:
            p.unlink()
    for p in (results / "scores").glob("*.npz"):
        p.unlink()
    md = write_report(results, out).read_text()
    cc = _table_row(md, "ccnf", "joint", column="seeds")
    assert cc["img AUROC ACC"].startswith("95.0 [")  # image bootstrap from the CSV alone
    assert cc["pix AUROC ACC"] == "93.0"  # no maps: no pixel interval, the exact point stays
    assert cc["Δ img ACC vs best"] == "best"
    assert "1 seed: intervals are bootstrap over test images only; seeds were not varied." in md
    assert "anomaly-map figure skipped" in md
    assert not (out / "plots" / "anomaly_maps.png").exists()
    assert (out / "plots" / "r_matrix_image_auroc.png").is_file()


def test_fmt_pm() -> None:
    assert fmt_pm(0.931, 0.004) == "93.1 ± 0.4"
    assert fmt_pm(0.931) == "93.1"
    assert fmt_pm(float("nan"), 0.1) == "n/a"
    assert fmt_pm(412.3, 5.0, 1, None) == "412 ± 5"


def test_new_record_fields(results: Path, tmp_path: Path) -> None:
    _edit(results, "__", dataset={"name": "plain", "has_masks": False})
    pooled = {"acc": 0.9, "fm": None, "bwt": None}
    ccnf = read_record(next((results / "cells").glob("ccnf*.json")))
    _edit(results, "ccnf", batch_dependent_scores=True,
          threshold_calibration={"source": "all classes", "images": 80},
          cost=Cost(memory_mb_batch1=12.5, memory_mb_batch32=40.0,
                    memory_kind="cuda_max_allocated"),
          summary={**ccnf.summary, "image_auroc_pooled": pooled})
    _edit(results, "fastflow", threshold_calibration={"source": "current task", "images": 40},
          thresholds={"percentile_99": {"f1": 0.8, "precision": 0.9, "recall": 0.7}})
    skipped = CellRecord.skipped("hgad__synthetic-2x1__hgad__s0__deadbeef",
                                 "hgad's own strategy trains exactly as finetune",
                                 **_identity("hgad", "hgad", 0))
    write_record(cell_path(results, skipped.cell_id), skipped)
    md = write_report(results, tmp_path / "r").read_text()

    assert "5 cells (3 ok, 1 failed, 1 not run)" in md
    assert _table_row(md, "hgad", SCENARIO, "hgad", "0")["reason"] == skipped.skip_reason
    assert "hgad" not in md.split("## Not run")[0]  # no leaderboard row, not a failure
    assert "hgad" not in md.split("## Failed cells")[1]
    assert _table_row(md, "ccnf ‡", "joint")["pix AUROC ACC"] == "n/a"  # the first table
    cc = _table_row(md, "ccnf ‡", "joint", column="seeds")
    assert cc["pix AUROC ACC"] == cc["AUPRO ACC"] == "n/a (no masks)"
    assert "Dataset `plain` has no ground-truth masks, so pixel metrics were not measured" in md
    assert "‡ This entry's scores depend on the other images in its batch" in md
    assert cc["img AUROC pooled ACC"] == "90.0"  # differs from 95.0 in this row: shown
    ff = _table_row(md, "fastflow", "finetune", column="seeds")
    assert ff["img AUROC pooled ACC"].startswith("91.5")
    # memory kinds differ between rows: each value names its kind
    cc = _table_row(md, "ccnf ‡", "joint", column="latency p95 (ms)")
    assert cc["mem batch 1 (MB)"] == "12.5 (cuda_max_allocated)"
    assert cc["mem batch 32 (MB)"] == "40.0 (cuda_max_allocated)"
    ff_cost = _table_row(md, "fastflow", "finetune", column="latency p95 (ms)")
    assert ff_cost["mem batch 32 (MB)"].endswith("(cpu_rss_over_backbone)")
    # calibration differs per row: named in a column of the threshold table
    assert _table_row(md, "ccnf / joint")["calibrated on"] == "all classes (80 images)"
    assert _table_row(md, "fastflow / finetune")["calibrated on"] == "current task (40 images)"
    # a record from before false alarms were measured: n/a, the others keep theirs
    assert _table_row(md, "fastflow / finetune")["percentile_99 F1 (P / R; FA)"].endswith(
        "(90.0 / 70.0; n/a)")
    assert _table_row(md, "ccnf / joint")["percentile_99 F1 (P / R; FA)"].endswith("; 25.0)")


def test_a_new_summarised_metric_is_one_table_row(results: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering a summarised metric row gives it leaderboard columns, a per-class
    table and a forgetting panel, with no edit to the report."""
    row = metrics.MetricSpec("image_recall_at_1", "image recall@1", "img R@1", "image",
                             metrics.image_ap, summarised=True)
    monkeypatch.setattr(metrics.METRICS, "_entries", dict(metrics.METRICS._entries))
    metrics.register_metric(row)
    for seed, (acc, fm) in enumerate(((0.60, 0.10), (0.70, 0.20))):
        p = cell_path(results, f"fastflow__synthetic-2x1__finetune__s{seed}__deadbeef")
        rec = read_record(p)
        rec.summary[row.key] = {"acc": acc, "fm": fm, "bwt": -fm}
        rec.per_class = {c: {**v, row.key: acc} for c, v in rec.per_class.items()}
        write_record(p, rec)
    out = tmp_path / "r"
    md = write_report(results, out).read_text()
    ff = _table_row(md, "fastflow", "finetune", column="seeds")
    lo, hi = _seed_ci([0.60, 0.70])
    # a seed interval, and a bootstrap interval from the stored scores (no edit needed)
    assert ff["img R@1 ACC"].startswith("65.0 [")
    assert ff["img R@1 ACC"].endswith(f" s[{lo * 100:.1f}, {min(hi, 1) * 100:.1f}]")
    assert ff["img R@1 FM"].startswith("15.0 [") and " s[" in ff["img R@1 FM"]
    assert "**image recall@1, finetune** (final evaluation, mean over seeds)" in md
    recs = [r for r in load_records(results)[0] if r.ok]
    agg = data.aggregate(data.cells_frame(recs))
    fig = plots.forgetting_bars(agg)
    assert [ax.get_title() for ax in fig.axes] == [
        "FM, image AUROC", "FM, pixel AUROC", "FM, AUPRO", "FM, image recall@1"]
    plt.close(fig)


def test_report_is_deterministic(results: Path, tmp_path: Path) -> None:
    a = write_report(results, tmp_path / "a").read_text()
    b = write_report(results, tmp_path / "b").read_text()
    assert a == b and "[" in _table_row(a, "ccnf", "joint", column="seeds")["img AUROC ACC"]


def test_fmt_ci() -> None:
    assert fmt_ci(0.813, (0.76, 0.866), (0.78, 0.845)) == "81.3 [78.0, 84.5] s[76.0, 86.6]"
    assert fmt_ci(0.813, boot=(0.78, 0.845)) == "81.3 [78.0, 84.5]"
    assert fmt_ci(0.9, (0.5, 1.3), bounds=(0.0, 1.0)) == "90.0 s[50.0, 100.0]"
    assert fmt_ci(float("nan"), boot=(0.1, 0.2)) == "n/a"
    assert fmt_ci(412.3, (400.0, 425.0), scale=1, decimals=None) == "412 s[400, 425]"


# ---------------------------------------------------------------- plots: what is drawn


@pytest.fixture
def close_figures():
    yield
    plt.close("all")


def _agg() -> pd.DataFrame:
    """Two groups: A with a seed interval (and a bootstrap one), B with a bootstrap one only."""
    nan = float("nan")
    return pd.DataFrame({
        "label": ["A / finetune", "B / joint"], "variant": ["A", "B"],
        "strategy": ["finetune", "joint"], "task_aware": False, "is_flow": True,
        "memory_kind": ["cpu_rss_over_backbone"] * 2,
        "image_auroc_acc__mean": [0.80, 0.70], "image_auroc_acc__lo": [0.74, nan],
        "image_auroc_acc__hi": [0.86, nan], "image_auroc_acc__blo": [0.75, 0.61],
        "image_auroc_acc__bhi": [0.84, 0.77],
        "latency_ms_p50__mean": [10.0, 20.0], "latency_ms_p50__lo": [9.0, nan],
        "latency_ms_p50__hi": [12.0, nan],
        "image_auroc_fm__mean": [0.05, 0.10], "image_auroc_fm__lo": [nan, nan],
        "image_auroc_fm__hi": [nan, nan], "image_auroc_fm__blo": [0.01, 0.02],
        "image_auroc_fm__bhi": [0.12, 0.30],
    })


def test_acc_vs_latency_error_bars_are_the_intervals(close_figures: None) -> None:
    ax = plots.acc_vs_latency(_agg()).axes[0]
    bars = [c for c in ax.containers if c.has_yerr]
    assert len(bars) == 2
    # each container's bar lines: (x-error collection, y-error collection)
    (seg_a,), (seg_b,) = (c.lines[2][-1].get_segments() for c in bars)
    np.testing.assert_allclose(seg_a[:, 1], [74.0, 86.0])  # across seeds preferred
    np.testing.assert_allclose(seg_b[:, 1], [61.0, 77.0])  # bootstrap where one seed
    (x_a,) = bars[0].lines[2][0].get_segments()
    np.testing.assert_allclose(x_a[:, 0], [9.0, 12.0])  # latency across seeds
    assert ax.get_ylabel() == "image AUROC ACC (points, 95% interval)"  # label from the table
    models, strategies = ax.get_figure().legends  # one colour per model, a marker per strategy
    assert [t.get_text() for t in models.get_texts()] == ["A", "B"]
    assert [t.get_text() for t in strategies.get_texts()] == [
        "finetune", "joint", "Pareto front (flows, continual)"]
    front = next(ln for ln in ax.lines if ln.get_label() == "Pareto front")
    assert list(front.get_xdata()) == [10.0] and list(front.get_ydata()) == [80.0]  # B: joint


def test_pareto_front_runs_over_the_flows_continual_rows(close_figures: None) -> None:
    """A ceiling row or a joint row, however fast and good, is not on the front."""
    agg = pd.concat([_agg(), _agg().iloc[:1].assign(
        label="C / finetune", variant="C", is_flow=False, image_auroc_acc__mean=0.95,
        latency_ms_p50__mean=1.0)], ignore_index=True)
    ax = plots.acc_vs_latency(agg).axes[0]
    front = next(ln for ln in ax.lines if ln.get_label() == "Pareto front")
    assert list(front.get_xdata()) == [10.0]


def test_forgetting_bars_error_bars_are_the_intervals(close_figures: None) -> None:
    fig = plots.forgetting_bars(_agg())
    ax = fig.axes[0]
    assert ax.get_title() == "FM, image AUROC" and len(fig.axes) == 1  # no pixel FM: no panel
    bar = next(c for c in ax.containers if isinstance(c, BarContainer))
    np.testing.assert_allclose([p.get_width() for p in bar], [5.0, 10.0])
    segs = bar.errorbar.lines[2][0].get_segments()
    np.testing.assert_allclose([s[:, 0] for s in segs], [[1.0, 12.0], [2.0, 30.0]])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A / finetune", "B / joint"]
    assert [t.get_text() for t in ax.texts] == ["5.0", "10.0"]


def test_r_heatmaps_integer_tasks_and_unseen_entries(close_figures: None) -> None:
    nan = float("nan")
    m = np.array([[90.0, 55.0, nan], [80.0, 85.0, nan], [70.0, 75.0, 95.0]])
    fig = plots.r_heatmaps({"A / finetune": m}, ["brick", "grass", "plaid"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "2", "3"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["brick", "grass", "plaid"]
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(["90.0", "80.0", "85.0", "70.0", "75.0", "95.0"])  # 55 is unseen
    shown = ax.images[0].get_array()
    assert shown.mask[0, 1] and not shown.mask[1, 0]
    assert fig.axes[1].get_ylabel() == "image AUROC (points)"  # the colour bar
    many = plots.r_heatmaps({"A": np.full((9, 9), 80.0)}, [f"c{i}" for i in range(9)])
    assert [t.get_text() for t in many.axes[0].get_xticklabels()] == [str(i) for i in range(1, 10)]


def test_r_heatmaps_hatch_tied_entries(close_figures: None) -> None:
    m = np.array([[90.0, np.nan], [50.0, 85.0]])
    tied = {"A / finetune": np.array([[False, False], [True, False]])}
    fig = plots.r_heatmaps({"A / finetune": m, "B / joint": m}, ["brick", "grass"], tied=tied)
    hatched = [[(p.get_x(), p.get_y()) for p in ax.patches if p.get_hatch()]
               for ax in fig.axes[:2]]
    assert hatched == [[(-0.5, 0.5)], []]  # R[1, 0] of A only
    assert "tied" in fig._suptitle.get_text()


def test_per_task_curves_seed_intervals(close_figures: None) -> None:
    nan = float("nan")
    seeds = [np.array([[90.0, nan], [80.0, 70.0]]), np.array([[88.0, nan], [84.0, 76.0]]),
             np.array([[92.0, nan], [78.0, 70.0]])]
    mats = {"A / finetune": np.mean(np.stack(seeds), axis=0)}
    ax = plots.per_task_curves(mats, seeds={"A / finetune": seeds}).axes[0]
    segs = ax.containers[0].lines[2][0].get_segments()
    for t, seg in enumerate(segs):
        values = [np.mean(m[t, : t + 1]) for m in seeds]
        lo, hi = sps.t.interval(0.95, 2, loc=np.mean(values), scale=sps.sem(values))
        np.testing.assert_allclose(seg[:, 1], [lo, hi])
    assert list(ax.get_xticks()) == [1, 2]  # tasks are integers
    line = ax.containers[0].lines[0]
    np.testing.assert_allclose(line.get_xdata(), [1, 2])
    np.testing.assert_allclose(line.get_ydata(), [90.0, (242 / 3 + 72.0) / 2])
    assert "95% interval across seeds" in ax.get_title()


def test_per_task_curves_joint_is_a_reference_level(close_figures: None) -> None:
    nan = float("nan")
    mats = {"A / finetune": np.array([[90.0, nan], [80.0, 70.0]]),
            "B / joint": np.array([[nan, nan], [88.0, 86.0]])}
    ax = plots.per_task_curves(mats).axes[0]
    models, strategies = ax.get_figure().legends
    assert [t.get_text() for t in models.get_texts()] == ["A", "B"]
    assert [t.get_text() for t in strategies.get_texts()] == ["finetune", "joint"]
    level = [ln for ln in ax.lines if ln.get_linestyle() == ":"]
    assert len(level) == 1 and level[0].get_ydata()[0] == pytest.approx(87.0)


def test_anomaly_maps_say_no_mask(results: Path, close_figures: None) -> None:
    csv_path = next((results / "scores").glob("ccnf*.csv"))
    df = pd.read_csv(csv_path)
    no_mask = (df["class_name"] == "grass") & (df["label"] == 1) & (df["row"] == 4)
    df.loc[no_mask, "has_mask"] = False
    df.to_csv(csv_path, index=False)
    recs, _ = load_records(results)
    rows, cols, note = files.anomaly_panel(recs, results)
    assert [c.title for c in cols] == ["ccnf\n(joint)", "fastflow\n(finetune)"] and note is None
    assert [r.label.split("\n")[0] for r in rows] == ["brick", "grass", "brick", "grass"]
    fig = plots.anomaly_maps(rows, cols)
    gt = [ax for ax in fig.axes if ax.get_subplotspec().colspan.start == 1]  # ground truth
    said = [ax for ax in gt if any(t.get_text() == "no mask" for t in ax.texts)]
    assert len(gt) == 4 and len(said) == 1
    assert not said[0].images  # text on grey, not a black image that reads as "no defect"
    assert all(ax.images for ax in gt if ax is not said[0])  # the other masks are drawn
    assert [ax.get_title() for ax in fig.axes[:4]] == [
        "input", "ground truth", "ccnf\n(joint)", "fastflow\n(finetune)"]


def test_memory_bars_batch_1_and_32(close_figures: None) -> None:
    agg = _agg().assign(memory_mb_batch1__mean=[100.0, 50.0],
                        memory_mb_batch1__lo=[90.0, np.nan], memory_mb_batch1__hi=[110.0, np.nan],
                        memory_mb_batch32__mean=[300.0, 80.0])
    ax1, ax32 = plots.memory_bars(agg).axes
    assert ax1.get_title() == "memory, batch 1" and ax32.get_title() == "memory, batch 32"
    assert ax1.get_xlabel() == "MB (cpu_rss_over_backbone)"
    assert ax1.yaxis_inverted() and ax32.yaxis_inverted()  # first group on top in both panels
    bar = next(c for c in ax1.containers if isinstance(c, BarContainer))
    np.testing.assert_allclose(bar.errorbar.lines[2][0].get_segments()[0][:, 0], [90.0, 110.0])
    assert [p.get_width() for p in next(c for c in ax32.containers
                                        if isinstance(c, BarContainer))] == [300.0, 80.0]
    assert [t.get_text() for t in ax32.texts] == ["300 MB", "80 MB"]


def test_state_per_task_plot_draws_one_line_per_growing_group():
    from nfbench.benchmarks.report import plots

    fig = plots.state_per_task({"bank / own": np.array([1.0, 2.0, 3.0]),
                                "flow / finetune": np.array([4.0, 4.0, 4.0]),
                                "flow / joint": np.array([4.0])})
    ax = fig.axes[0]
    lines = {ln.get_label(): ln.get_ydata().tolist() for ln in ax.get_lines()}
    assert lines == {"bank / own": [1.0, 2.0, 3.0], "flow / finetune": [4.0, 4.0, 4.0]}
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]
    assert plots.state_per_task({"flow / joint": np.array([4.0])}) is None


def test_p_values_are_never_rounded_to_zero():
    from nfbench.benchmarks.report.formats import fmt_p

    assert [fmt_p(p) for p in (0.0004, 0.003, 0.0312, 0.5)] == [
        "p<0.001", "p=0.003", "p=0.03", "p=0.50"]


def test_tied_entries_are_marked_listed_and_written(results: Path, tmp_path: Path) -> None:
    """A record's tie flags give its row the mark, a note naming class, tasks, share and
    value, and csv/ties.csv; rows without flags get no mark."""
    flag = {"after_task": 1, "task": 0, "class": "alpha", "share": 1.0, "value": 1.0,
            "images": 4}
    _edit(results, "fastflow__synthetic-2x1__finetune__s1", ties=[flag])
    out = tmp_path / "r"
    md = write_report(results, out).read_text()
    assert _row(md, f"fastflow {TIED}", "finetune")
    assert _row(md, "ccnf", "joint")  # untied: no mark
    assert (f"{TIED} Tied image scores: more than 20% of a class's test images share one image "
            "score") in md
    assert "fastflow / finetune: alpha (after task 2, up to 100% on 1, 1 seed(s))." in md
    written = pd.read_csv(out / "csv" / "ties.csv")
    assert written[["label", "seed", "class", "share"]].values.tolist() == [
        ["fastflow / finetune", 1, "alpha", 1.0]]
    assert tie_masks(tied_entries([]), 2) == {}


def test_rank_blocks_per_strategy_and_over_all(close_figures: None) -> None:
    """Blocks are (scenario, class); methods are variants per strategy (own mechanisms
    together), and variant / strategy over all; the report draws a CD diagram for each."""
    rows = [{"cell_id": f"{v}{s}{c}", "variant": v, "scenario": "sc", "strategy": s,
             "task_aware": False, "seed": 0, "status": "ok", "class_name": c,
             "image_auroc": score}
            for v, own, base in (("A", "A", 0.9), ("B", "B", 0.8), ("C", "C", 0.7))
            for s in ("finetune", own) for c, score in (("x", base), ("y", base - 0.1))]
    blocks = data.rank_blocks(pd.DataFrame(rows))
    assert list(blocks) == ["finetune", "own", data.ALL_STRATEGIES]
    assert list(blocks["own"].columns) == ["A", "B", "C"]
    assert list(blocks["own"].index) == [("sc", "x"), ("sc", "y")]
    assert "A / own" in blocks[data.ALL_STRATEGIES].columns
    tests = report_module.rank_tests(pd.DataFrame(rows))
    assert list(tests["finetune"].mean_ranks.index) == ["A", "B", "C"]
    fig = plots.cd_diagram(tests["finetune"], "finetune")
    assert "Nemenyi CD" in fig.axes[0].get_title()
    md = "\n".join(markdown.ranks_section(tests, {"finetune": "plots/cd.png"}))
    assert "Friedman" in md and "(plots/cd.png)" in md
