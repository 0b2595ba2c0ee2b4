"""The native-vs-reference writer on literal records (no training): values, intervals, gap tests."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from nfbench.benchmarks.compare import (
    add_compare_arguments,
    compare_tables,
    markdown,
    record_metrics,
    write_compare,
)
from nfbench.benchmarks.statistics import stratified_counts


def _record(model: str, image: float, pixel: float, train: list[float], epochs: int,
            latency: float, memory: float, status: str = "ok") -> dict:
    return {
        "model": model, "status": status, "config": {"epochs": epochs},
        "summary": {"image_auroc": {"acc": image}, "pixel_auroc": {"acc": pixel}},
        "cost": {"train_time_s": train, "latency_ms_p50": latency, "peak_memory_mb": memory,
                 "params_trainable": [1000, 2000]},
        "error": None if status == "ok" else {"message": "diverged at task 1, step 3: loss nan"},
    }


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
    assert m["memory_mb_batch1"] == m["memory_mb_batch32"] == 2.0  # older record: its one peak
    new = _record("x", 0.5, 0.6, [1.0], 1, 1.0, 2.0)
    new["cost"].update(memory_mb_batch1=3.0, memory_mb_batch32=9.0)
    assert (record_metrics(new)["memory_mb_batch1"], record_metrics(new)["memory_mb_batch32"]) == (3.0, 9.0)
    assert math.isnan(record_metrics({"model": "y"})["image_auroc"])


def test_compare_tables_ratios_and_status():
    status, metrics = compare_tables(RECORDS, ["cflow", "fastflow", "uflow"], REGISTERED)
    s = status.set_index("model")
    assert s.loc["cflow", "native"] == "not registered"
    assert s.loc["cflow", "reference"] == "ok"
    assert s.loc["fastflow", "native"] == "ok"
    assert s.loc["uflow", "native"].startswith("failed: diverged")
    ff = metrics[metrics["model"] == "fastflow"].set_index("key")
    assert ff.loc["image_auroc", "native/reference"] == 0.9 / 0.8
    assert ff.loc["train_s_per_epoch", "native/reference"] == 0.5
    assert ff.loc["latency_ms_p50", "native/reference"] == 0.5
    cf = metrics[metrics["model"] == "cflow"].set_index("key")
    assert math.isnan(cf.loc["image_auroc", "native"])
    assert cf.loc["train_s_per_epoch", "reference"] == 10.0
    assert math.isnan(cf.loc["image_auroc", "native/reference"])


def test_write_compare_markdown_and_plot(tmp_path: Path):
    status, metrics = compare_tables(RECORDS, ["cflow", "fastflow", "csflow"], REGISTERED)
    path = write_compare(status, metrics, tmp_path, {"scenario": "synthetic"})
    text = path.read_text()
    assert path == tmp_path / "compare.md"
    assert "not registered" in text and "| fastflow" in text
    assert "0.900" in text and "0.800" in text and "1.12" in text  # AUROCs and their ratio
    assert "—" in text  # the missing sides
    assert (tmp_path / "plots" / "compare.png").stat().st_size > 1000


def test_several_seeds_welch_and_seed_intervals():
    native = [0.90, 0.92, 0.91]
    reference = [0.80, 0.83, 0.78]
    records = [dict(_record("fastflow", v, 0.9, [8.0], 4, 10.0, 500.0), seed=i)
               for i, v in enumerate(native)]
    records += [dict(_record("anomalib.fastflow", v, 0.9, [8.0], 4, 10.0 + i, 500.0), seed=i)
                for i, v in enumerate(reference)]
    records.append(dict(_record("anomalib.fastflow", 0.5, 0.5, [1.0], 4, 1.0, 1.0, "failed"), seed=3))
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
    assert f"0.910 s[{max(row['native_lo'], 0):.3f}, {min(row['native_hi'], 1):.3f}]" in text
    assert f"(Welch p={ref.pvalue:.2f})" in text
    lat = metrics.set_index("key").loc["latency_ms_p50"]
    assert lat["reference_interval"] == "seeds" and lat["gap_test"] == ""  # costs: no test


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
            records.append(dict(_record(name, roc_auc_score(labels, s), 0.9, [8.0], 4, 1.0, 1.0),
                                cell_id=name, tasks=[["a"]], scores={"csv": f"scores/{name}.csv"}))
    registered = {n for m in pairs for n in (m, f"anomalib.{m}")}
    status, metrics = compare_tables(records, list(pairs), registered, tmp_path)
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
    assert "no (paired bootstrap [+0.000, +0.000])" in text and "yes (paired bootstrap [" in text
    assert math.isnan(m.loc[("uflow", "pixel_auroc"), "gap_lo"])  # no maps: pixel untested


def test_seeds_flag():
    parser = argparse.ArgumentParser()
    add_compare_arguments(parser)
    assert parser.parse_args(["--seeds", "0", "1", "2"]).seeds == [0, 1, 2]
    assert parser.parse_args([]).seeds is None
