"""Tied image scores: when many test images of one class get the very same score.

An AUROC over tied scores is a coin flip on the ties (each tied normal/anomalous pair counts
one half), so a score that saturates (e.g. a per-image normalisation that gives every image
of a class the model no longer fits exactly 1.0) reads as 50 points of "forgetting". The
evaluation flags every class of a seen task whose largest group of equal image scores holds
more than ``TIE_SHARE_LIMIT`` of its test images, so tables and plots can say so.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TIE_SHARE_LIMIT", "largest_tie", "tied_classes"]

# more than this share of a class's test images on one image score is flagged
TIE_SHARE_LIMIT = 0.2


def largest_tie(scores: np.ndarray) -> tuple[float, float]:
    """(share of the images in the largest group of exactly equal scores, that score);
    (0, NaN) for no scores. A group of one image is no tie, but its share is still returned
    (1/n), so the function is total."""
    values, counts = np.unique(np.asarray(scores, dtype=np.float64), return_counts=True)
    if not counts.size:
        return 0.0, float("nan")
    top = int(np.argmax(counts))
    return float(counts[top] / counts.sum()), float(values[top])


def tied_classes(scores: np.ndarray, class_names: np.ndarray, task_of: np.ndarray,
                 after_task: int, limit: float = TIE_SHARE_LIMIT) -> list[dict]:
    """One flag per class of a seen task (k <= after_task) with more than ``limit`` of its
    images on one score: {after_task, task, class, share, value, images}."""
    flags = []
    for name in dict.fromkeys(class_names.tolist()):
        index = np.flatnonzero(class_names == name)
        task = int(task_of[index[0]])
        share, value = largest_tie(scores[index])
        if task <= after_task and share > limit:
            flags.append({"after_task": after_task, "task": task, "class": name,
                          "share": share, "value": value, "images": int(index.size)})
    return flags
