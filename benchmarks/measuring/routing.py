"""Routing accuracy: which task a task-agnostic model sends each test image to.

A model with the HasRouting capability names, per test image, a class of the task it routes
the image to; the task is the scenario's task of that class. Per evaluation the record keeps
the routing accuracy of every task on its normal and on its anomalous images separately (an
anomaly may route badly where a normal image does not) and the confusion between tasks.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import confusion_matrix

from nfbench.benchmarks.measuring.evaluate import EvalSet, scored_batches, to_stored
from nfbench.models.base import FlowADModel
from nfbench.models.capabilities import HasRouting

SPLITS = {"normal": 0, "anomalous": 1}


@torch.no_grad()
def score_and_route_all(
    model: FlowADModel, features: list[torch.Tensor], class_ids: torch.Tensor | None,
    device: torch.device, batch_size: int = 32, autocast: str = "none",
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """score_all's maps and scores and, in task-agnostic scoring, (N,) the class each test
    image is routed to (None where the model does not route), in one pass: a model that
    routes while it scores (IsoFlow) says so in its output, and is not asked again; the others
    route each batch right after scoring it (outside autocast)."""
    routing = class_ids is None and isinstance(model, HasRouting)
    maps, scores, routes = [], [], []
    for feats, out in scored_batches(model, features, class_ids, device, batch_size, autocast):
        maps.append(out.maps.float().cpu().numpy())
        scores.append(out.image_scores.double().cpu().numpy())
        if routing:
            routed = out.routed if out.routed is not None else model.route(feats)
            routing = routed is not None
            routes.append(routed.cpu().numpy() if routing else None)
    return (to_stored(np.concatenate(maps)), np.concatenate(scores),
            np.concatenate(routes) if routing else None)


def routed_tasks(routed_classes: np.ndarray, test: EvalSet) -> np.ndarray:
    """(N,) the task of each routed class (-1 for a class outside the scenario)."""
    task_of_class = dict(zip(test.class_ids.tolist(), test.task_of.tolist(), strict=True))
    return np.array([task_of_class.get(int(c), -1) for c in routed_classes])


def task_confusion(true_tasks: np.ndarray, chosen: np.ndarray, num_tasks: int) -> np.ndarray:
    """(T, T) counts: row = the image's task, column = the task it was routed to."""
    return confusion_matrix(true_tasks, chosen, labels=list(range(num_tasks)))


def per_task_accuracy(confusion: np.ndarray) -> np.ndarray:
    """(T,) share of each task's images routed to it (NaN for a task without images)."""
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(confusion) / totals, np.nan)


def routing_row(routed_classes: np.ndarray, test: EvalSet, num_tasks: int, seen_tasks: int
                ) -> dict[str, np.ndarray]:
    """One evaluation's figures: accuracy per task on normal and on anomalous images (NaN for
    tasks not learned yet: they cannot be routed to), and the confusion over all images."""
    chosen = routed_tasks(routed_classes, test)
    row = {}
    for split, label in SPLITS.items():
        keep = test.labels == label
        accuracy = per_task_accuracy(task_confusion(test.task_of[keep], chosen[keep],
                                                    num_tasks))
        accuracy[seen_tasks:] = np.nan
        row[split] = accuracy
    row["confusion"] = task_confusion(test.task_of, chosen, num_tasks)
    return row


def final_accuracy(routing: dict | None, split: str) -> float:
    """Mean over tasks of the last evaluation's routing accuracy on `split` (NaN: n/a)."""
    rows = (routing or {}).get(split) or []
    last = [np.nan if v is None else float(v) for v in rows[-1]] if rows else []
    finite = [v for v in last if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")
