"""Scoring the test images and turning scores into the per-task metrics of R[t, k].

Maps are stored as float16 and the metrics are computed from those same float16 values, so
every figure can be recomputed exactly from the stored per-sample scores.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from nfbench.benchmarks.measuring.metrics import image_metrics, metric_table, pixel_metrics
from nfbench.datasets.base import Sample
from nfbench.models.base import FlowADModel

# every metric of the table gets an R matrix in each record


@dataclass
class EvalSet:
    """Every test image of the scenario, in task order, with what the metrics need."""

    samples: list[Sample]
    task_of: np.ndarray  # (N,) task index k of each sample
    class_ids: np.ndarray  # (N,) global class id
    labels: np.ndarray  # (N,) 0 normal, 1 anomalous
    has_mask: np.ndarray  # (N,) False for anomalous images without ground truth
    masks: np.ndarray  # (N, H, W) bool


FLOAT16_MAX = float(np.finfo(np.float16).max)


def to_stored(maps: np.ndarray) -> np.ndarray:
    """The precision maps are stored (and measured) in: float16 (half the disk, and pixel
    metrics by counting) unless some finite value is beyond its range (65504, e.g. an
    unnormalised log-likelihood of a 1024-channel level), then float32, so nothing saturates.
    Non-finite values stay non-finite and are caught as divergence."""
    finite = maps[np.isfinite(maps)]
    if finite.size and np.abs(finite).max() >= FLOAT16_MAX:
        return maps.astype(np.float32)
    return maps.astype(np.float16)


AUTOCAST = ("none", "bf16")


def scoring_precision(device: torch.device, autocast: str = "none"):
    """The context scoring runs in: full precision, or bfloat16 autocast (opt-in; measured
    against float32 for every native flow in tests/benchmarks/test_evaluate.py)."""
    if autocast not in AUTOCAST:
        raise ValueError(f"unknown autocast {autocast!r} ({'|'.join(AUTOCAST)})")
    if autocast == "none":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@torch.no_grad()
def scored_batches(model: FlowADModel, features, class_ids: torch.Tensor | None,
                   device: torch.device, batch_size: int, autocast: str):
    """(the batch's features on the device, the model's output), one batch of rows at a time
    (features are read batch by batch: a FeatureSet never holds a whole set)."""
    model.eval()
    n = features[0].shape[0]
    for lo in range(0, n, batch_size):
        feats = [f[lo : lo + batch_size].to(device) for f in features]
        ids = None if class_ids is None else class_ids[lo : lo + batch_size].to(device)
        with scoring_precision(device, autocast):
            out = model.score(feats, ids)
        yield feats, out


def score_all(
    model: FlowADModel,
    features: list[torch.Tensor],
    class_ids: torch.Tensor | None,
    device: torch.device,
    batch_size: int = 32,
    autocast: str = "none",
) -> tuple[np.ndarray, np.ndarray]:
    """(maps (N, H, W) as stored: float16, or float32 when beyond float16's range; image
    scores float64 (N,))."""
    maps, scores = [], []
    for _, out in scored_batches(model, features, class_ids, device, batch_size, autocast):
        maps.append(out.maps.float().cpu().numpy())
        scores.append(out.image_scores.double().cpu().numpy())
    return to_stored(np.concatenate(maps)), np.concatenate(scores)


def image_scores(
    model: FlowADModel,
    features: list[torch.Tensor],
    class_ids: torch.Tensor | None,
    device: torch.device,
    batch_size: int = 32,
    autocast: str = "none",
) -> np.ndarray:
    """Image scores only (float64 (N,)), the maps dropped batch by batch: threshold fitting
    on a whole training set needs no (N, H, W) array."""
    return np.concatenate([out.image_scores.double().cpu().numpy() for _, out in
                           scored_batches(model, features, class_ids, device, batch_size,
                                          autocast)])


def metrics_for(
    maps: np.ndarray, scores: np.ndarray, test: EvalSet, index: np.ndarray, pixel: bool = True
) -> dict[str, float]:
    """All six metrics over the samples in `index` pooled; pixel metrics skip mask-less
    anomalies, and are NaN when `pixel` is False (unseen task, or a dataset without masks)."""
    result = image_metrics(scores[index], test.labels[index])
    if not pixel:
        return result | {m.key: np.nan for m in metric_table() if m.level == "pixel"}
    pixel_index = index[(test.labels[index] == 0) | test.has_mask[index]]
    result.update(
        pixel_metrics(maps[pixel_index], test.masks[pixel_index])
    )
    return result


def task_metrics(
    maps: np.ndarray, scores: np.ndarray, test: EvalSet, index: np.ndarray, pixel: bool = True
) -> dict[str, float]:
    """A task's figures: the MEAN OF ITS PER-CLASS figures (the MVTec convention), and for
    the table's `pooled` rows the figure of all its images at once. For a one-class task
    both are the same number."""
    per_class = [metrics_for(maps, scores, test, index[test.class_ids[index] == c], pixel)
                 for c in dict.fromkeys(test.class_ids[index].tolist())]
    result = {m: _nanmean([row[m] for row in per_class]) for m in per_class[0]}
    labels = test.labels[index]
    defined = bool(labels.any() and not labels.all())
    for spec in metric_table():
        if spec.pooled:  # image-level rows only
            result[spec.key] = spec.compute(scores[index], labels) if defined else float("nan")
    return result


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def evaluation_row(
    maps: np.ndarray, scores: np.ndarray, test: EvalSet, num_tasks: int, seen_tasks: int,
    pixel: bool = True,
) -> list[dict[str, float]]:
    """Metrics of every task k after one training phase. Unseen tasks (k >= seen_tasks) get
    image metrics only: they enter no summary, and pixel metrics are most of the cost."""
    return [task_metrics(maps, scores, test, np.flatnonzero(test.task_of == k),
                         pixel=pixel and k < seen_tasks) for k in range(num_tasks)]


def per_class_metrics(
    maps: np.ndarray, scores: np.ndarray, test: EvalSet, pixel: bool = True
) -> dict[str, dict[str, float]]:
    names = np.array([s.class_name for s in test.samples])
    return {name: metrics_for(maps, scores, test, np.flatnonzero(names == name), pixel)
            for name in dict.fromkeys(names.tolist())}
