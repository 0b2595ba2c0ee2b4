"""IsoFlow: invertibility, log-det against autograd, a tiny fit, no NaN; parameter isolation
(a later task trains only its own pieces, earlier tasks' scores never move: FM 0 under oracle
routing) and likelihood routing."""

from __future__ import annotations

import flow_checks as checks
import pytest
import torch

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import TrainProgress
from nfbench.models.isoflow.coupling import IsoFlowLevel
from nfbench.models.isoflow.loss import isoflow_loss, tail_weights
from nfbench.models.registry import create_model

TINY = FeatureInfo(channels=(4, 6), strides=(4, 8), input_size=16)
TINY_CONFIG = checks.TINY_CONFIGS["isoflow"]


def _level(tasks: int = 2) -> IsoFlowLevel:
    """A float64 level with `tasks` sets of pieces, every parameter moved off its init."""
    torch.manual_seed(0)
    level = IsoFlowLevel(4, 3, steps=3, hidden_ratio=1.0, clamp=2.0, rank=2, alignment=True,
                         aux_blocks=2, seed=0).double()
    for _ in range(tasks):
        level.add_task()
    with torch.no_grad():
        for p in level.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return level


@pytest.mark.parametrize("task", [0, 1])
def test_level_flow_is_invertible(task: int):
    level = _level()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    checks.assert_invertible(lambda v: level.flow(v, task)[0],
                             lambda z: level.inverse(z, task), x, atol=1e-8)


@pytest.mark.parametrize("task", [0, 1])
def test_level_flow_logdet_matches_autograd(task: int):
    level = _level()
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    checks.assert_logdet_matches_autograd(
        lambda v: (lambda z, ld: (z, ld.sum()))(*level.flow(v, task)), x)


def test_tasks_give_different_densities():
    level = _level()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    assert not torch.allclose(level.flow(x, 0)[0], level.flow(x, 1)[0])


def test_tiny_fit_lowers_loss_and_stays_finite():
    torch.manual_seed(0)
    model = create_model("isoflow", TINY, **TINY_CONFIG)
    feats = [torch.randn(8, 4, 4, 4) * 2 + 1, torch.randn(8, 6, 2, 2) * 0.5 - 1]
    losses = checks.fit_losses(model, feats)
    assert losses[-1] < losses[0] - 1.0, (losses[0], losses[-1])
    out = model.score(feats, None)
    assert out.maps.shape == (8, 16, 16) and out.image_scores.shape == (8,)
    assert torch.isfinite(out.maps).all() and torch.isfinite(out.image_scores).all()


def test_tail_weights_mark_each_images_top_fraction():
    nll = torch.tensor([[[1.0, 5.0], [2.0, 3.0]], [[9.0, 0.0], [1.0, 2.0]]])
    weights = tail_weights(nll, fraction=0.25, weight=2.0)
    assert weights.tolist() == [[[1.0, 3.0], [1.0, 1.0]], [[3.0, 1.0], [1.0, 1.0]]]


def test_zero_tail_weight_is_the_plain_nll():
    z, log_det = [torch.randn(2, 4, 3, 3)], [torch.randn(2, 3, 3)]
    plain = (0.5 * (z[0] ** 2).sum(dim=(1, 2, 3)) - log_det[0].sum(dim=(1, 2))).mean()
    assert torch.allclose(isoflow_loss(z, log_det, 0.1, 0.0), plain)
    assert isoflow_loss(z, log_det, 0.1, 1.0) > plain


def _fit(model, task: int, classes: list[int], feats, steps: int = 30) -> list[int]:
    """start_task under the own strategy, Adam over param_groups as the harness; returns the
    ids of the parameters that trained."""
    model.start_task(task, classes, "isoflow")
    groups = model.param_groups()
    trained = [id(p) for g in groups for p in g["params"]]
    optimizer = torch.optim.Adam(groups, lr=5e-3)
    ids = torch.full((feats[0].shape[0],), classes[0])
    model.train()
    for step in range(steps):
        terms = model.training_loss(feats, ids, TrainProgress(task, 0, step, step))
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
    model.eval()
    return trained


def _two_tasks():
    """Two tasks whose features differ a lot: task 0 around +2, task 1 around -2."""
    gen = torch.Generator().manual_seed(1)
    return [[torch.randn(16, c, s, s, generator=gen) + shift
             for c, s in zip(TINY.channels, TINY.sizes, strict=True)] for shift in (2.0, -2.0)]


def test_later_tasks_train_only_their_pieces_and_oracle_scores_never_move():
    torch.manual_seed(0)
    model = create_model("isoflow", TINY, **TINY_CONFIG)
    first, second = _two_tasks()
    _fit(model, 0, [0], first)
    test = [torch.cat([a[:4], b[:4]]) for a, b in zip(first, second, strict=True)]
    oracle = torch.tensor([0] * 4 + [1] * 4)
    before = model.score(test, oracle).image_scores[:4].clone()
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    trained = _fit(model, 1, [1], second)
    assert set(trained) == {id(p) for p in model.task_parameters(1)}
    for n, p in model.named_parameters():
        if n in base:  # everything that existed before the second task is untouched
            assert torch.equal(p, base[n]), n
    after = model.score(test, oracle).image_scores[:4]
    assert torch.equal(before, after)  # R[1, 0] == R[0, 0]: forgetting is 0 by construction


def test_routing_picks_the_task_whose_pieces_fit():
    torch.manual_seed(0)
    model = create_model("isoflow", TINY, **TINY_CONFIG)
    first, second = _two_tasks()
    _fit(model, 0, [0], first, steps=60)
    assert model.route(first).tolist() == [0] * 16  # one task: every image goes to it
    _fit(model, 1, [5, 6], second, steps=60)
    test = [torch.cat([a[:4], b[:4]]) for a, b in zip(first, second, strict=True)]
    assert model.route(test).tolist() == [0] * 4 + [5] * 4
    routed = model.score(test, None).image_scores
    assert torch.allclose(routed, model.score(test, torch.tensor([0] * 4 + [5] * 4)).image_scores)


def test_without_the_own_strategy_there_is_one_set_of_pieces_and_no_routing():
    model = create_model("isoflow", TINY, **TINY_CONFIG)
    for task in range(2):
        model.start_task(task, [task], "replay")
    assert model.num_tasks == 1 and model.route(_two_tasks()[0]) is None
    assert all(p.requires_grad for p in model.parameters())


def test_trainable_parameters_shrink_to_the_pieces_after_the_first_task():
    model = create_model("isoflow", TINY, **TINY_CONFIG)
    model.start_task(0, [0], "isoflow")
    first = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model.start_task(1, [1], "isoflow")
    later = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert later == sum(p.numel() for p in model.task_parameters(1)) and 0 < later < first
