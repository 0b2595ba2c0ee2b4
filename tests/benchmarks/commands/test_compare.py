"""The native-vs-reference writer on literal CellRecords (no training): values, intervals, gap
tests, and what its figure draws."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from nfbench.benchmarks.commands.compare import (
    add_compare_arguments,
    compare_records,
    compared_models,
    known_deviations,
    write_compare,
)
from nfbench.benchmarks.measuring.statistics import stratified_counts
from nfbench.benchmarks.records.record import CellRecord, Cost, ErrorInfo
from nfbench.benchmarks.report import plots
from nfbench.benchmarks.report.compare_data import record_metrics
from nfbench.benchmarks.report.compare_text import compare_markdown as markdown
from nfbench.benchmarks.report.formats import fmt_p
from nfbench.benchmarks.report.intervals import compare_tables


def _record(model: str, image: float, pixel: float, train: list[float], epochs: int,
            latency: float, memory: float, status: str = "ok", seed: int = 0) -> CellRecord:
    error = None if status == "ok" else ErrorInfo("DivergedError",
                                                  "diverged at task 1, step 3: loss nan")
    return CellRecord(
        cell_id=f"{model}__s{seed}", status=status, model=model, variant=model,
        scenario="synthetic", strategy="joint", seed=seed, config={"epochs": epochs},
        summary={"image_auroc": {"acc": image}, "pixel_auroc": {"acc": pixel}}, error=error,
        cost=Cost(train_time_s=train, latency_ms_p50=latency, memory_mb_batch1=memory,
                  memory_mb_batch32=memory, params_trainable=[1000, 2000]))


RECORDS = [
    _record("fastflow", 0.9, 0.95, [8.0], 4, 10.0, 500.0),
    _record("anomalib.fastflow", 0.8, 0.9, [16.0], 4, 20.0, 1000.0),
    _record("anomalib.cflow", 0.7, 0.8, [30.0], 3, 5.0, 400.0),
    _record("uflow", 0.7, 0.8, [3.0], 1, 5.0, 400.0, status="failed"),
    _record("anomalib.uflow", 0.6, 0.7, [3.0], 1, 5.0, 400.0),
]
REGISTERED = {"fastflow", "anomalib.fastflow", "anomalib.cflow", "uflow", "anomalib.uflow"}


def test_record_metrics_per_epoch_time():
    m = record_metrics(_record("x", 0.5, 0.6, [6.0, 2.0], 2, 1.0, 2.0))
    assert m["train_s_per_epoch"] == 2.0  # 8 s / (2 epochs x 2 phases)
    assert m["params_trainable"] == 2000
    assert m["memory_mb_batch1"] == m["memory_mb_batch32"] == 2.0
    old = _record("x", 0.5, 0.6, [1.0], 1, 1.0, 2.0)
    old.cost = Cost(peak_memory_mb=7.0)  # schema 1: one peak over both batch sizes
    peak = record_metrics(old)
    assert peak["memory_mb_batch1"] == peak["memory_mb_batch32"] == 7.0
    empty = record_metrics(CellRecord("y", "failed", "y", "y", "s", "joint", 0))
    assert math.isnan(empty["image_auroc"]) and math.isnan(empty["pixel_aupro"])
    assert math.isnan(empty["train_s_per_epoch"])


def test_compare_tables_ratios_and_status():
    status, metrics = compare_tables(RECORDS, ["cflow", "fastflow", "uflow"], REGISTERED)
    s = status.set_index("model")
    assert s.loc["cflow", "native"] == "not registered"
    assert s.loc["cflow", "reference"] == "ok"
    assert s.loc["fastflow", "native"] == "ok"
    assert s.loc["uflow", "native"].startswith("failed: diverged")
    ff = metrics[metrics["model"] == "fastflow"].set_index("key")
    assert list(ff.index) == ["image_auroc", "pixel_auroc", "pixel_aupro", "train_s_per_epoch",
                              "latency_ms_p50", "memory_mb_batch1", "memory_mb_batch32",
                              "params_trainable"]  # ACC of the table's summarised rows, costs
    assert ff.loc["pixel_aupro", "metric"] == "AUPRO"  # labels from the metric table
    assert ff.loc["image_auroc", "native/reference"] == 0.9 / 0.8
    assert ff.loc["train_s_per_epoch", "native/reference"] == 0.5
    assert ff.loc["latency_ms_p50", "native/reference"] == 0.5
    cf = metrics[metrics["model"] == "cflow"].set_index("key")
    assert math.isnan(cf.loc["image_auroc", "native"])
    assert cf.loc["train_s_per_epoch", "reference"] == 10.0
    assert math.isnan(cf.loc["image_auroc", "native/reference"])


def test_write_compare_markdown_and_plot(tmp_path: Path):
    status, metrics = compare_records(RECORDS, ["cflow", "fastflow", "csflow"], REGISTERED)
    path = write_compare(status, metrics, tmp_path, {"scenario": "synthetic"})
    text = path.read_text()
    assert path == tmp_path / "compare.md"
    assert "not registered" in text and "| fastflow" in text
    assert "| 90.0 " in text and "| 80.0 " in text and "1.12" in text  # points, and the ratio
    assert "—" in text  # the missing sides
    assert (tmp_path / "plots" / "compare.png").is_file()


def test_compare_figure_draws_both_sides():
    _, metrics = compare_tables(RECORDS, ["cflow", "fastflow"], REGISTERED)
    fig = plots.compare_figure(metrics)
    assert [ax.get_title() for ax in fig.axes] == list(dict.fromkeys(metrics["metric"]))
    image, latency = fig.axes[0], fig.axes[4]
    native, reference = (c for c in image.containers if isinstance(c, BarContainer))
    assert [p.get_height() for p in native] == pytest.approx([0.0, 90.0])  # cflow native: none
    assert [p.get_height() for p in reference] == pytest.approx([70.0, 80.0])  # points
    lat = next(c for c in latency.containers if isinstance(c, BarContainer))
    assert [p.get_height() for p in lat] == pytest.approx([0.0, 10.0])
    assert [t.get_text() for t in image.get_xticklabels()] == ["cflow", "fastflow"]
    assert [t.get_text() for t in image.get_legend().get_texts()] == ["native", "anomalib"]
    plt.close(fig)


def test_compared_models_are_those_with_a_reference():
    assert compared_models(REGISTERED) == ["fastflow", "uflow"]


def test_known_deviations_are_printed_under_the_table(tmp_path: Path):
    """A reference entry's declared departure from its paper's code is read from the
    registry and printed once, under the table (U-Flow's batch-summed loss)."""
    notes = known_deviations(["fastflow", "uflow", "cflow"], REGISTERED)
    assert list(notes) == ["uflow"] and "UFlowLoss" in notes["uflow"]
    status, metrics = compare_records(RECORDS, ["fastflow", "uflow"], REGISTERED)
    text = write_compare(status, metrics, tmp_path, None, notes).read_text()
    section = text.split("## Known deviations of the reference entries")[1]
    assert section.strip().startswith("- `uflow`: anomalib 2.7's UFlowLoss")
    assert "Known deviations" not in markdown(status, metrics)


def test_several_seeds_welch_and_seed_intervals():
    native = [0.90, 0.92, 0.91]
    reference = [0.80, 0.83, 0.78]
    records = [_record("fastflow", v, 0.9, [8.0], 4, 10.0, 500.0, seed=i)
               for i, v in enumerate(native)]
    records += [_record("anomalib.fastflow", v, 0.9, [8.0], 4, 10.0 + i, 500.0, seed=i)
                for i, v in enumerate(reference)]
    records.append(_record("anomalib.fastflow", 0.5, 0.5, [1.0], 4, 1.0, 1.0, "failed", seed=3))
    status, metrics = compare_tables(records, ["fastflow"], REGISTERED)
    assert status.loc[0, "native"] == "ok"
    assert status.loc[0, "reference"].startswith("ok (3 of 4 seeds; failed: diverged")
    row = metrics.set_index("key").loc["image_auroc"]
    assert row["native"] == pytest.approx(np.mean(native))
    assert (row["native_lo"], row["native_hi"]) == pytest.approx(
        sps.t.interval(0.95, 2, loc=np.mean(native), scale=sps.sem(native)))
    assert row["native_interval"] == "seeds"
    ref = sps.ttest_ind(native, reference, equal_var=False)
    assert row["gap_test"] == "welch" and row["gap_p"] == pytest.approx(ref.pvalue)
    assert row["gap_significant"] == (ref.pvalue < 0.05)
    text = markdown(status, metrics)
    lo, hi = max(row["native_lo"], 0) * 100, min(row["native_hi"], 1) * 100
    assert f"91.0 s[{lo:.1f}, {hi:.1f}]" in text
    assert f"(Welch {fmt_p(ref.pvalue)})" in text
    lat = metrics.set_index("key").loc["latency_ms_p50"]
    assert lat["reference_interval"] == "seeds" and lat["gap_test"] == ""  # costs: no test
    # the native side's latency is one measurement shared by its seeds: no zero-width interval
    native_lat = lat["native_interval"], lat["native_lo"]
    assert native_lat[0] == "" and np.isnan(native_lat[1])
    line = next(ln for ln in text.splitlines() if "latency p50" in ln)
    assert [c.strip() for c in line.split("|")][3] == "10"


def _scores(results: Path, cell_id: str, scores: list[float], labels: list[int]) -> None:
    (results / "scores").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"after_task": 0, "task": 0, "class_name": "a",
                  "path": [f"a/test/{i:03d}.png" for i in range(len(scores))], "label": labels,
                  "has_mask": True, "image_score": scores, "row": range(len(scores))}
                 ).to_csv(results / "scores" / f"{cell_id}.csv", index=False)


def test_single_seed_paired_bootstrap(tmp_path: Path):
    rng = np.random.default_rng(0)
    labels = [0] * 12 + [1] * 12
    good = list(np.array(labels) + 0.8 * rng.random(24))  # almost separable
    noise = list(rng.random(24))
    pairs = {"fastflow": (good, noise), "uflow": (good, good)}  # a real gap / no gap at all
    records = []
    for model, (nat, ref) in pairs.items():
        for name, s in ((model, nat), (f"anomalib.{model}", ref)):
            _scores(tmp_path, name, s, labels)
            rec = _record(name, roc_auc_score(labels, s), 0.9, [8.0], 4, 1.0, 1.0)
            rec.tasks, rec.scores = [["a"]], {"csv": f"scores/{name}.csv"}
            records.append(rec)
    registered = {n for m in pairs for n in (m, f"anomalib.{m}")}
    status, metrics = compare_records(records, list(pairs), registered, tmp_path)
    m = metrics.set_index(["model", "key"])
    # independent check: the same resamples, AUROC by sklearn one replicate at a time
    counts = stratified_counts(list(zip(["a"] * 24, np.array(labels, bool), strict=True)), 1000, 0)
    def auc(y: np.ndarray, s: np.ndarray) -> float:  # pairs won, ties one half
        pos, neg = s[y == 1][:, None], s[y == 0][None, :]
        return float(np.mean((pos > neg) + 0.5 * (pos == neg)))

    diffs = []
    for b, c in enumerate(counts.astype(int)):
        idx = np.repeat(np.arange(24), c)
        y, g, n = np.array(labels)[idx], np.array(good)[idx], np.array(noise)[idx]
        diffs.append(auc(y, g) - auc(y, n))
        if b == 0:
            assert diffs[0] == pytest.approx(roc_auc_score(y, g) - roc_auc_score(y, n))
    ff = m.loc[("fastflow", "image_auroc")]
    assert ff["gap_test"] == "paired bootstrap" and ff["native_interval"] == "bootstrap"
    assert (ff["gap_lo"], ff["gap_hi"]) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])))
    assert ff["gap_significant"] is True
    uf = m.loc[("uflow", "image_auroc")]
    assert (uf["gap_lo"], uf["gap_hi"], uf["gap_significant"]) == (0.0, 0.0, False)
    text = markdown(status, metrics)
    assert "no (paired bootstrap [+0.0, +0.0])" in text and "yes (paired bootstrap [" in text
    assert math.isnan(m.loc[("uflow", "pixel_auroc"), "gap_lo"])  # no maps: pixel untested


def test_seeds_flag():
    parser = argparse.ArgumentParser()
    add_compare_arguments(parser)
    assert parser.parse_args(["--seeds", "0", "1", "2"]).seeds == [0, 1, 2]
    assert parser.parse_args([]).seeds is None
