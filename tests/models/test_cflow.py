"""CFLOW: conditional vector flow invertibility, log-det against autograd, tiny fit, maps."""

from __future__ import annotations

import flow_checks as checks
import pytest
import torch

from nfbench.models.backbone import FeatureInfo
from nfbench.models.cflow.anomaly_map import cflow_anomaly_map
from nfbench.models.cflow.model import CflowConfig, build_cflow_decoder
from nfbench.models.registry import create_model

TINY = FeatureInfo(channels=(4, 6), strides=(4, 8), input_size=16)


def _decoder() -> torch.nn.Module:
    torch.manual_seed(0)
    flow = build_cflow_decoder(5, CflowConfig(coupling_blocks=3, condition_vector=8)).double()
    with torch.no_grad():  # away from the identity init; fixed permutations stay as they are
        for p in flow.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    return flow


def test_decoder_is_invertible():
    flow = _decoder()
    x, c = torch.randn(7, 5, dtype=torch.float64), torch.randn(7, 8, dtype=torch.float64)
    checks.assert_invertible(
        lambda v: flow(v, c=[c])[0], lambda z: flow(z, c=[c], rev=True)[0], x, atol=1e-8)


def test_decoder_logdet_matches_autograd():
    flow = _decoder()
    x, c = torch.randn(1, 5, dtype=torch.float64), torch.randn(1, 8, dtype=torch.float64)
    checks.assert_logdet_matches_autograd(lambda v: flow(v, c=[c]), x)


def test_train_normalised_map_is_levels_minus_sum_of_exp_shift():
    logp = [torch.tensor([[[0.0, -1.0], [-2.0, -3.0]]]),
            torch.tensor([[[-4.0, -5.0], [-5.0, -6.0]]])]
    out = cflow_anomaly_map(logp, lambda m: m, torch.tensor([0.5, -4.0]))
    expected = 2.0 - torch.exp(logp[0] - 0.5) - torch.exp(logp[1] + 4.0)
    assert torch.allclose(out, expected)
    assert torch.allclose(cflow_anomaly_map(logp, lambda m: m, None),
                          -torch.exp(logp[0]) - torch.exp(logp[1]))
    with pytest.raises(ValueError, match="train|none"):
        CflowConfig(map_normalization="batch")  # a batch-max reference is not allowed


def test_finish_task_reference_is_max_training_log_prob():
    torch.manual_seed(0)
    model = create_model("cflow", TINY, coupling_blocks=2, condition_vector=8).eval()
    feats = [torch.randn(5, 4, 4, 4), torch.randn(5, 6, 2, 2)]
    with torch.no_grad():
        model.finish_task(feats, torch.zeros(5, dtype=torch.long))
        expected = torch.stack([m.max() for m in model.log_prob_maps(feats)])
        assert torch.allclose(model.log_prob_ref, expected)
        out = model.score(feats, None)
    assert out.maps.min() >= -1e-6  # on training data every level's exp(log p - ref) <= 1


def test_tiny_fit_lowers_loss_and_scores_are_finite():
    torch.manual_seed(0)
    model = create_model("cflow", TINY, coupling_blocks=2, condition_vector=8, fiber_batch_size=64)
    feats = [torch.randn(8, 4, 4, 4) * 2 + 1, torch.randn(8, 6, 2, 2) * 0.5 - 1]
    losses = checks.fit_losses(model, feats)
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.2, (losses[0], losses[-1])
    for norm in ("train", "none"):
        model.config.map_normalization = norm
        out = model.score(feats, None)
        assert out.maps.shape == (8, 16, 16) and out.image_scores.shape == (8,)
        assert torch.isfinite(out.maps).all() and torch.isfinite(out.image_scores).all()
