"""Cell records as the protocol writes them, with per-sample scores and maps on disk: the
report's and the paper's tests read them (``import report_records``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from nfbench.benchmarks.records.record import CellRecord, Cost, ErrorInfo, cell_path, write_record

CLASSES = ["brick", "grass"]
HW = 16
SCENARIO = "synthetic:2x1"


def write_test_set(root: Path) -> list[dict]:
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
            samples.append({"task": k, "class_name": cls, "path": str(p), "label": label,
                            "mask": mask})
    return samples


def write_scores(results: Path, cell_id: str, samples: list[dict], T: int, seed: int) -> dict:
    """Per-sample scores CSV + maps npz for one cell; returns the record's "scores" block."""
    rng = np.random.default_rng(seed)
    (results / "scores").mkdir(parents=True, exist_ok=True)
    masks = np.stack([s["mask"] for s in samples])
    maps = {f"maps_t{t}": (masks + 0.3 * rng.random(masks.shape)).astype(np.float16)
            for t in range(T)}
    np.savez(results / "scores" / f"{cell_id}.npz", masks=masks, **maps)
    with open(results / "scores" / f"{cell_id}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["after_task", "task", "class_name", "path", "label", "has_mask",
                    "image_score", "row"])
        for t in range(T):
            for i, s in enumerate(samples):
                w.writerow([t, s["task"], s["class_name"], s["path"], s["label"],
                            bool(s["label"]), 0.5 * s["label"] + rng.random(), i])
    return {"csv": f"scores/{cell_id}.csv", "maps": f"scores/{cell_id}.npz"}


def identity(variant: str, strategy: str, seed: int) -> dict:
    return {"model": variant, "variant": variant, "scenario": SCENARIO, "strategy": strategy,
            "seed": seed, "tasks": [[c] for c in CLASSES],
            "dataset": {"name": "synthetic", "has_masks": True}}


def record(results: Path, samples: list[dict], variant: str, strategy: str, seed: int,
            acc: float, fm: float | None, bwt: float | None, lat: float) -> CellRecord:
    """A finished cell (T=2) as the protocol writes it, with its scores on disk."""
    cid = f"{variant}__synthetic-2x1__{strategy}__s{seed}__deadbeef"
    top = [acc + 0.01, None] if strategy != "joint" else [None, None]
    R = [top, [acc - 0.01, acc + 0.01]]
    s = {"acc": acc, "fm": fm, "bwt": bwt}
    rec = CellRecord(
        cell_id=cid, status="ok", created="2026-11-23T12:00:00+00:00",
        backbone={"name": "efficientnet_lite0", "pretrained": True},
        environment={"torch": "2.4.0", "device": "cpu"}, config={"epochs": 2},
        R={m: R for m in ("image_auroc", "pixel_auroc", "pixel_aupro", "image_auroc_pooled")},
        summary={"image_auroc": s, "pixel_auroc": {**s, "acc": acc - 0.02}, "pixel_aupro": s,
                 "image_auroc_pooled": s},
        per_class={c: {"image_auroc": acc + d, "pixel_auroc": acc, "pixel_aupro": acc - 0.1}
                   for c, d in zip(CLASSES, (-0.01, 0.01), strict=True)},
        thresholds={"percentile_99": {"f1": 0.8, "precision": 0.9, "recall": 0.7,
                                      "threshold": 1.0, "false_alarm_rate": 0.25},
                    "oracle_f1max": {"f1": 0.9}},
        cost=Cost(latency_ms_p50=lat, latency_ms_p95=lat * 1.3, throughput_img_s=400.0,
                  memory_mb_batch1=40.0 + seed, memory_mb_batch32=850.0 + seed,
                  memory_kind="cpu_rss_over_backbone", train_time_s=[1.5, 2.5],
                  feature_time_s=4.2, params_total=123456, params_trainable=[123456, 1000]),
        wall_time_s=10.0, **identity(variant, strategy, seed))
    rec.scores = write_scores(results, cid, samples, 2, seed)
    write_record(cell_path(results, cid), rec)
    return rec


def failed(results: Path, variant: str, strategy: str, seed: int) -> CellRecord:
    cid = f"{variant}__synthetic-2x1__{strategy}__s{seed}__deadbeef"
    rec = CellRecord.failed(cid, ErrorInfo("Diverged", "loss is nan", task=1, step=130),
                            **identity(variant, strategy, seed))
    rec.created = "2026-11-22T00:00:00+00:00"
    write_record(cell_path(results, cid), rec)
    return rec


def make_results(tmp_path: Path) -> Path:
    """Two seeds of fastflow/finetune, one ccnf/joint, one failed cflow/finetune."""
    res = tmp_path / "results"
    samples = write_test_set(tmp_path)
    record(res, samples, "fastflow", "finetune", 0, acc=0.90, fm=0.05, bwt=-0.04, lat=3.0)
    record(res, samples, "fastflow", "finetune", 1, acc=0.93, fm=0.02, bwt=-0.01, lat=3.4)
    record(res, samples, "ccnf", "joint", 0, acc=0.95, fm=None, bwt=None, lat=5.0)
    failed(res, "cflow", "finetune", 0)
    return res
