"""write_report on small fake results: numbers, failures, files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nfbench.benchmarks.report import fmt_pm, write_report

CLASSES = ["brick", "grass"]
HW = 16
PLOTS = ["r_matrix_image_auroc.png", "acc_vs_latency.png", "forgetting.png", "per_task.png",
         "memory.png", "anomaly_maps.png"]
CSVS = ["summary.csv", "per_class.csv", "r_matrices.csv"]


def _write_test_set(root: Path) -> list[dict]:
    """Two classes x (1 normal + 2 anomalous) 16x16 PNGs; returns sample descriptors."""
    rng = np.random.default_rng(0)
    samples = []
    for k, cls in enumerate(CLASSES):
        for j, label in enumerate([0, 1, 1]):
            p = root / "data" / cls / f"{j:03d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (HW, HW, 3), dtype=np.uint8)).save(p)
            mask = np.zeros((HW, HW), bool)
            if label:
                mask[4:9, 5 + j : 10 + j] = True
            samples.append({"task": k, "class_name": cls, "path": str(p), "label": label, "mask": mask})
    return samples


def _write_scores(results: Path, cell_id: str, samples: list[dict], T: int, seed: int) -> dict:
    """Per-sample scores CSV + maps npz for one cell; returns the record's "scores" block."""
    rng = np.random.default_rng(seed)
    (results / "scores").mkdir(parents=True, exist_ok=True)
    masks = np.stack([s["mask"] for s in samples])
    maps = {f"maps_t{t}": (masks + 0.3 * rng.random(masks.shape)).astype(np.float16) for t in range(T)}
    np.savez(results / "scores" / f"{cell_id}.npz", masks=masks, **maps)
    with open(results / "scores" / f"{cell_id}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["after_task", "task", "class_name", "path", "label", "has_mask", "image_score", "row"])
        for t in range(T):
            for i, s in enumerate(samples):
                w.writerow([t, s["task"], s["class_name"], s["path"], s["label"], bool(s["label"]),
                            s["label"] + rng.random(), i])
    return {"csv": f"scores/{cell_id}.csv", "maps": f"scores/{cell_id}.npz"}


def _record(results: Path, samples: list[dict], variant: str, strategy: str, seed: int,
            acc: float, fm: float | None, bwt: float | None, lat: float, status: str = "ok") -> dict:
    """A fake record (T=2) written to results/cells; failed cells carry an error and no numbers."""
    cell_id = f"{variant}__synthetic-2x1__{strategy}__s{seed}__deadbeef"
    rec: dict = {
        "schema_version": 1, "cell_id": cell_id, "status": status, "error": None, "model": variant,
        "variant": variant, "scenario": "synthetic:2x1", "strategy": strategy, "seed": seed,
        "task_aware": False, "tasks": [[c] for c in CLASSES],
        "backbone": {"name": "efficientnet_lite0", "layers": [2, 4], "pretrained": True, "input_size": 128},
        "config": {}, "environment": {"torch": "2.4.0", "device": "cpu"},
        "R": None, "summary": None, "per_class": None, "thresholds": None, "cost": None, "scores": None,
        "wall_time_s": 10.0, "created": "2026-11-23T12:00:00Z",
    }
    if status != "ok":
        rec["error"] = {"type": "Diverged", "message": "loss is nan", "task": 1, "step": 130}
        (results / "cells" / f"{cell_id}.json").write_text(json.dumps(rec))
        return rec
    top = [acc + 0.01, None] if strategy != "joint" else [None, None]
    R = [top, [acc - 0.01, acc + 0.01]]
    rec["R"] = {m: R for m in ("image_auroc", "pixel_auroc", "pixel_aupro")}
    s = {"acc": acc, "fm": fm, "bwt": bwt}
    rec["summary"] = {"image_auroc": s, "pixel_auroc": {**s, "acc": acc - 0.02}, "pixel_aupro": s}
    rec["per_class"] = {c: {"image_auroc": acc + d, "pixel_auroc": acc, "pixel_aupro": acc - 0.1}
                        for c, d in zip(CLASSES, (-0.01, 0.01), strict=True)}
    rec["thresholds"] = {"percentile_99": {"f1": 0.8, "precision": 0.9, "recall": 0.7}, "oracle_f1max": 0.9}
    rec["cost"] = {"latency_ms_p50": lat, "latency_ms_p95": lat * 1.3, "throughput_img_s": 400.0,
                   "peak_memory_mb": 850.0 + seed, "memory_kind": "cpu_peak_rss", "train_time_s": [1.5, 2.5],
                   "feature_time_s": 4.2, "params_total": 123456, "params_trainable": [123456, 1000]}
    rec["scores"] = _write_scores(results, cell_id, samples, 2, seed)
    (results / "cells" / f"{cell_id}.json").write_text(json.dumps(rec))
    return rec


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """Two seeds of fastflow/finetune, one ccnf/joint, one failed cflow/finetune."""
    res = tmp_path / "results"
    (res / "cells").mkdir(parents=True)
    samples = _write_test_set(tmp_path)
    _record(res, samples, "fastflow", "finetune", 0, acc=0.90, fm=0.05, bwt=-0.04, lat=3.0)
    _record(res, samples, "fastflow", "finetune", 1, acc=0.93, fm=0.02, bwt=-0.01, lat=3.4)
    _record(res, samples, "ccnf", "joint", 0, acc=0.95, fm=None, bwt=None, lat=5.0)
    _record(res, samples, "cflow", "finetune", 0, acc=0, fm=0, bwt=0, lat=0, status="failed")
    return res


def _pm(values: list[float], scale: float = 100.0, d: int = 1) -> str:
    """Expected "mean ± std" text computed here, independently of report.py."""
    text = f"{np.mean(values) * scale:.{d}f}"
    if len(values) > 1:
        text += f" ± {np.std(values, ddof=1) * scale:.{d}f}"
    return text


def _row(md: str, *cells: str) -> list[str]:
    """Cells of the first markdown table row that starts with the given cells."""
    for line in md.splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if parts[: len(cells)] == list(cells):
            return parts
    raise AssertionError(f"no row {cells} in leaderboard:\n{md}")


def test_write_report_full(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    path = write_report(results, out)
    assert path == out / "leaderboard.md"
    md = path.read_text()

    ff = _row(md, "fastflow", "finetune")
    assert ff[2] == "2"
    assert ff[3] == _pm([0.90, 0.93]) == "91.5 ± 2.1"  # image AUROC ACC
    assert ff[4] == _pm([0.05, 0.02])  # FM
    assert ff[5] == _pm([-0.04, -0.01])  # BWT
    assert ff[6] == _pm([0.88, 0.91])  # pixel AUROC ACC
    assert ff[10] == _pm([3.0, 3.4], 1, 2)  # latency p50, 2 decimals below 10
    assert ff[14] == _pm([4.0, 4.0], 1, 2)  # train time summed over tasks
    assert ff[15] == "123.5k"
    cc = _row(md, "ccnf", "joint")
    assert cc[2] == "1" and cc[3] == "95.0"  # one seed: no std
    assert cc[4] == cc[5] == "n/a"  # joint: no FM / BWT
    assert _row(md, "cflow", "finetune")[2] == "0 (+1 failed)"
    assert "peak mem (MB, cpu_peak_rss)" in md

    # per-class table, thresholds, failure, how-to-read, plot links
    head = _row(md, "class")
    grass = dict(zip(head, _row(md, "grass"), strict=True))  # first per-class table: image AUROC
    assert grass["fastflow / finetune"] == f"{np.mean([0.91, 0.94]) * 100:.1f}"  # seed mean
    assert grass["ccnf / joint"] == "96.0"
    assert _row(md, "ccnf / joint")[1:] == ["80.0 (90.0 / 70.0)", "90.0"]  # F1 (P / R), oracle
    assert _row(md, "fastflow / finetune")[1] == "80.0 ± 0.0 (90.0 / 70.0)"
    failed = _row(md, "cflow__synthetic-2x1__finetune__s0__deadbeef")
    assert "Diverged" in failed and "loss is nan" in failed and failed[-2:] == ["1", "130"]
    assert "## How to read" in md and "synthetic:2x1" in md and "cpu" in md
    for name in PLOTS:
        assert f"(plots/{name})" in md
        assert (out / "plots" / name).stat().st_size > 1000, name
    for name in CSVS:
        assert (out / "csv" / name).stat().st_size > 0, name

    summary = pd.read_csv(out / "csv" / "summary.csv")
    assert len(summary) == 4 and set(summary["status"]) == {"ok", "failed"}
    assert summary.loc[summary["variant"] == "ccnf", "image_auroc_fm"].isna().all()
    rm = pd.read_csv(out / "csv" / "r_matrices.csv")
    assert list(rm.columns) == ["cell_id", "metric", "t", "k", "value"]
    assert len(rm) == 3 * 3 * 4  # 3 ok cells x 3 metrics x 2x2
    assert len(pd.read_csv(out / "csv" / "per_class.csv")) == 3 * 2


def test_only_failed_cells(results: Path, tmp_path: Path) -> None:
    for p in (results / "cells").glob("*.json"):
        if json.loads(p.read_text())["status"] == "ok":
            p.unlink()
    md = write_report(results, tmp_path / "r").read_text()
    assert "Diverged" in md and "no plots" in md
    assert (tmp_path / "r" / "csv" / "summary.csv").stat().st_size > 0


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
    assert _row(md, "ccnf", "joint")[3] == "95.0"
    assert "anomaly-map figure skipped" in md
    assert not (out / "plots" / "anomaly_maps.png").exists()
    assert (out / "plots" / "r_matrix_image_auroc.png").stat().st_size > 0


def test_fmt_pm() -> None:
    assert fmt_pm(0.931, 0.004) == "93.1 ± 0.4"
    assert fmt_pm(0.931) == "93.1"
    assert fmt_pm(float("nan"), 0.1) == "n/a"
    assert fmt_pm(412.3, 5.0, 1, None) == "412 ± 5"
