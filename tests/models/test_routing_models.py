"""HasRouting for every model that routes: per image a class of a learned task; PatchCore's
own strategy routes to the bank of nearest rows; models without routing say None."""

from __future__ import annotations

import pytest
import torch
from flow_checks import TINY_CONFIGS

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import TrainProgress
from nfbench.models.capabilities import HasRouting
from nfbench.models.registry import create_model

TINY = FeatureInfo(channels=(4, 8), strides=(4, 8), input_size=32)


def _features(n: int, shift: float, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, s, s, generator=gen) + shift
            for c, s in zip(TINY.channels, TINY.sizes, strict=True)]


def _learn(model, task: int, classes: list[int], strategy: str, feats) -> None:
    """start_task, a few Adam steps (where there is something to train), finish_task."""
    model.start_task(task, classes, strategy)
    ids = torch.tensor(classes).repeat(feats[0].shape[0] // len(classes) + 1)[: len(feats[0])]
    groups = model.param_groups()
    if groups:
        optimizer = torch.optim.Adam(groups, lr=1e-3)
        model.train()
        for step in range(3):
            terms = model.training_loss(feats, ids, TrainProgress(task, 0, step, step))
            optimizer.zero_grad()
            terms.total.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        model.finish_task(feats, ids)


@pytest.mark.parametrize(("name", "strategy"), [("ccnf", "ccnf"), ("hgad", "finetune"),
                                                ("patchcore", "patchcore"),
                                                ("isoflow", "isoflow")])
def test_routes_name_a_class_of_a_learned_task(name: str, strategy: str):
    torch.manual_seed(0)
    model = create_model(name, TINY, **TINY_CONFIGS.get(name, {}))
    assert isinstance(model, HasRouting)
    _learn(model, 0, [3], strategy, _features(8, 3.0, 0))
    _learn(model, 1, [5, 6], strategy, _features(8, -3.0, 1))
    routed = model.route(_features(4, 3.0, 2) + [])
    assert routed.shape == (4,) and set(routed.tolist()) <= {3, 5, 6}


def test_patchcore_routes_to_the_bank_of_its_nearest_rows_and_only_under_its_own_strategy():
    torch.manual_seed(0)
    model = create_model("patchcore", TINY)
    _learn(model, 0, [3], "patchcore", _features(8, 3.0, 0))
    _learn(model, 1, [5], "patchcore", _features(8, -3.0, 1))
    test = [torch.cat([a, b]) for a, b in zip(_features(2, 3.0, 2), _features(2, -3.0, 3),
                                               strict=True)]
    assert model.route(test).tolist() == [3, 3, 5, 5]
    shared = create_model("patchcore", TINY)
    _learn(shared, 0, [3], "finetune", _features(8, 3.0, 0))
    assert shared.route(test) is None  # one bank: nothing to route
