"""A task's figure is the mean of its classes' figures; the pooled ROC is its own column."""

from __future__ import annotations

import flow_checks as checks
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from nfbench.benchmarks.measuring.evaluate import EvalSet, evaluation_row, score_all
from nfbench.models.backbone import FeatureInfo
from nfbench.models.registry import create_model


def _eval_set(labels, class_ids, task_of) -> EvalSet:
    n = len(labels)
    masks = np.zeros((n, 4, 4), dtype=bool)
    masks[np.asarray(labels) == 1, 1:3, 1:3] = True
    return EvalSet(samples=[], task_of=np.asarray(task_of), class_ids=np.asarray(class_ids),
                   labels=np.asarray(labels), has_mask=np.ones(n, dtype=bool), masks=masks)


def test_multi_class_task_is_the_mean_of_per_class_aurocs():
    labels = [0, 0, 1, 1, 0, 0, 1, 1]
    classes = [0, 0, 0, 0, 1, 1, 1, 1]
    # class 0 separates perfectly on a low scale, class 1 on a high one: pooled ROC mixes them
    scores = np.array([0.1, 0.2, 0.3, 0.4, 1.0, 1.3, 1.1, 1.2])
    maps = np.repeat(scores[:, None, None], 16, axis=1).reshape(8, 4, 4).astype(np.float16)
    test = _eval_set(labels, classes, [0] * 8)
    [row] = evaluation_row(maps, scores, test, num_tasks=1, seen_tasks=1)
    per_class = [roc_auc_score([0, 0, 1, 1], scores[:4]), roc_auc_score([0, 0, 1, 1], scores[4:])]
    assert row["image_auroc"] == pytest.approx(np.mean(per_class))  # (1.0 + 0.5) / 2
    assert row["image_auroc_pooled"] == pytest.approx(roc_auc_score(labels, scores))
    assert row["image_auroc"] != pytest.approx(row["image_auroc_pooled"])


def test_without_pixel_metrics_only_image_figures_are_filled():
    labels = [0, 1, 0, 1]
    scores = np.array([0.1, 0.9, 0.2, 0.8])
    maps = np.zeros((4, 4, 4), dtype=np.float16)
    test = _eval_set(labels, [0, 0, 1, 1], [0, 0, 1, 1])
    rows = evaluation_row(maps, scores, test, num_tasks=2, seen_tasks=2, pixel=False)
    for row in rows:
        assert row["image_auroc"] == 1.0 and np.isnan(row["pixel_auroc"])


FLOWS = ("fastflow", "cflow", "csflow", "uflow", "hgad", "ccnf", "msflow")


@pytest.mark.parametrize("name", FLOWS)
def test_bf16_autocast_keeps_every_flow_accurate(name):
    """The opt-in bf16 scoring: image scores within 2% of float32 and the maps' pixel order
    kept (Spearman > 0.99), after a short fit. Every score is built from the flow's
    log-likelihood, log-det included, so this bounds the log-det's error as scored."""
    torch.manual_seed(0)
    info = FeatureInfo(channels=(8, 12, 16), strides=(4, 8, 16), input_size=64)
    model = create_model(name, info)
    feats = [torch.randn(8, c, s, s) * 2 + 0.5
             for c, s in zip(info.channels, info.sizes, strict=True)]
    model.start_task(0, [0], "finetune")
    checks.fit_losses(model, feats, steps=15)
    with torch.no_grad():
        model.finish_task(feats, torch.zeros(8, dtype=torch.long))
    cpu = torch.device("cpu")
    maps32, scores32 = score_all(model, feats, None, cpu)
    maps16, scores16 = score_all(model, feats, None, cpu, autocast="bf16")
    rel = np.abs(scores16 - scores32) / np.maximum(np.abs(scores32), 1e-6)
    assert rel.max() < 0.02, rel.max()
    assert spearmanr(maps32.ravel(), maps16.ravel()).statistic > 0.99
