"""Routing accuracy on literal examples: per task, normal and anomalous images apart, the task
confusion; a model that cannot route gives None (n/a downstream)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score

from nfbench.benchmarks.measuring.evaluate import EvalSet, score_all
from nfbench.benchmarks.measuring.routing import (
    final_accuracy,
    routing_row,
    score_and_route_all,
)
from nfbench.models.backbone import FeatureInfo
from nfbench.models.registry import create_model


def _test_set() -> EvalSet:
    """Two tasks: task 0 = class 0 (ids 0..3), task 1 = classes 1 and 2 (ids 4..7);
    labels alternate normal / anomalous."""
    return EvalSet(samples=[], task_of=np.array([0, 0, 0, 0, 1, 1, 1, 1]),
                   class_ids=np.array([0, 0, 0, 0, 1, 1, 2, 2]),
                   labels=np.array([0, 1, 0, 1, 0, 1, 0, 1]), has_mask=np.ones(8, bool),
                   masks=np.zeros((8, 2, 2), bool))


def test_accuracy_per_task_and_label_and_the_confusion():
    test = _test_set()
    # routed classes: task 0's normals right, one anomaly to class 2 (task 1); task 1's images
    # to class 2 (right: any class of the task counts) but its second anomaly to class 0
    routed = np.array([0, 2, 0, 0, 2, 1, 1, 0])
    row = routing_row(routed, test, num_tasks=2, seen_tasks=2)
    assert row["normal"].tolist() == [1.0, 1.0]
    assert row["anomalous"].tolist() == [0.5, 0.5]
    assert row["confusion"].tolist() == [[3, 1], [1, 3]]
    chosen = np.array([0, 1, 0, 0, 1, 1, 1, 0])
    for label in (0, 1):
        for task in (0, 1):
            keep = (test.labels == label) & (test.task_of == task)
            expected = accuracy_score(test.task_of[keep], chosen[keep])
            assert row["normal" if label == 0 else "anomalous"][task] == expected


def test_tasks_not_learned_yet_are_not_scored():
    row = routing_row(np.zeros(8, int), _test_set(), num_tasks=2, seen_tasks=1)
    assert row["normal"][0] == 1.0 and np.isnan(row["normal"][1])


def test_final_accuracy_is_the_last_rows_task_mean_and_na_without_routing():
    routing = {"normal": [[1.0, None], [0.5, 1.0]], "anomalous": [[1.0, None], [0.25, 0.75]]}
    assert final_accuracy(routing, "normal") == 0.75
    assert final_accuracy(routing, "anomalous") == 0.5
    assert np.isnan(final_accuracy(None, "normal"))


def test_a_model_that_cannot_route_gives_none():
    info = FeatureInfo(channels=(4,), strides=(4,), input_size=8)
    feats = [torch.randn(3, 4, 2, 2)]
    cpu = torch.device("cpu")
    fastflow = create_model("fastflow", info, flow_steps=1)
    assert score_and_route_all(fastflow, feats, None, cpu)[2] is None
    isoflow = create_model("isoflow", info, flow_steps=1, aux_blocks=0, rank=1)
    isoflow.start_task(0, [4], "replay")  # one shared density: no routing
    assert score_and_route_all(isoflow, feats, None, cpu)[2] is None
    isoflow.start_task(1, [7], "isoflow")
    assert set(score_and_route_all(isoflow, feats, None, cpu, batch_size=2)[2]) <= {4, 7}


def _model_routes(model, feats: list[torch.Tensor], batch_size: int) -> np.ndarray:
    """The model's own route() batch by batch: what the one scoring pass must report."""
    with torch.no_grad():
        return np.concatenate([model.route([f[lo : lo + batch_size] for f in feats]).numpy()
                               for lo in range(0, feats[0].shape[0], batch_size)])


def _two_task_isoflow():
    """An IsoFlow with two tasks of different random pieces (so routing has a choice)."""
    info = FeatureInfo(channels=(4,), strides=(4,), input_size=8)
    torch.manual_seed(0)
    model = create_model("isoflow", info, flow_steps=1, aux_blocks=1, rank=2)
    model.start_task(0, [4], "isoflow")
    model.start_task(1, [7], "isoflow")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def test_one_pass_scores_and_routes_like_two_passes():
    """IsoFlow routes while it scores: the one pass gives score_all's maps and scores and
    route()'s routes, and each image's scores are those of its routed task (oracle ids)."""
    model, cpu = _two_task_isoflow(), torch.device("cpu")
    feats = [torch.randn(6, 4, 2, 2)]
    maps, scores, routes = score_and_route_all(model, feats, None, cpu, batch_size=4)
    maps2, scores2 = score_all(model, feats, None, cpu, batch_size=4)
    np.testing.assert_array_equal(routes, _model_routes(model, feats, batch_size=4))
    assert set(routes) == {4, 7}  # both tasks chosen: the comparison below is not vacuous
    np.testing.assert_allclose(scores, scores2, rtol=1e-6)
    np.testing.assert_allclose(maps.astype(float), maps2.astype(float), rtol=1e-3)
    oracle = score_all(model, feats, torch.from_numpy(routes), cpu, batch_size=4)[1]
    np.testing.assert_allclose(scores, oracle, rtol=1e-5)


def test_one_pass_asks_other_models_to_route_and_none_when_task_aware():
    info = FeatureInfo(channels=(4,), strides=(4,), input_size=8)
    model, cpu = create_model("ccnf", info), torch.device("cpu")
    model.start_task(0, [0, 1], "ccnf")
    feats = [torch.randn(5, 4, 2, 2)]
    routes = score_and_route_all(model, feats, None, cpu, batch_size=2)[2]
    assert routes is not None and set(routes) <= {0, 1}
    np.testing.assert_array_equal(routes, _model_routes(model, feats, batch_size=2))
    assert score_and_route_all(model, feats, torch.zeros(5, dtype=torch.long), cpu)[2] is None
    fastflow = create_model("fastflow", info, flow_steps=1)
    assert score_and_route_all(fastflow, feats, None, cpu)[2] is None
