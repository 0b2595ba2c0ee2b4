"""The native-vs-reference writer on literal records (no training)."""

from __future__ import annotations

import math
from pathlib import Path

from nfbench.benchmarks.compare import compare_tables, record_metrics, write_compare


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
