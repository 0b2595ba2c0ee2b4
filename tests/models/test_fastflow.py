"""FastFlow: invertibility, log-det against autograd, a tiny fit, no NaN."""

from __future__ import annotations

import flow_checks as checks
import torch

from nfbench.models.backbone import FeatureInfo
from nfbench.models.fastflow.model import FastFlowConfig, build_fastflow_level
from nfbench.models.registry import create_model

TINY = FeatureInfo(channels=(4, 6), strides=(4, 8), input_size=16)


def _level(steps: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    flow = build_fastflow_level(4, 3, 3, FastFlowConfig(flow_steps=steps)).double()
    # perturb away from the identity init so the check is not trivial
    with torch.no_grad():
        for p in flow.parameters():
            if p.requires_grad:  # the fixed permutations are frozen Parameters in FrEIA
                p.add_(0.1 * torch.randn_like(p))
    return flow


def test_level_flow_is_invertible():
    flow = _level()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    checks.assert_invertible(lambda v: flow(v)[0], lambda z: flow(z, rev=True)[0], x, atol=1e-8)


def test_level_flow_logdet_matches_autograd():
    flow = _level()
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    checks.assert_logdet_matches_autograd(lambda v: flow(v), x)


def test_tiny_fit_lowers_loss_and_stays_finite():
    torch.manual_seed(0)
    model = create_model("fastflow", TINY, flow_steps=2)
    feats = [torch.randn(8, 4, 4, 4) * 2 + 1, torch.randn(8, 6, 2, 2) * 0.5 - 1]
    losses = checks.fit_losses(model, feats)
    assert losses[-1] < losses[0] - 1.0, (losses[0], losses[-1])
    out = model.score(feats, None)
    assert out.maps.shape == (8, 16, 16)
    assert out.image_scores.shape == (8,)
    assert torch.isfinite(out.maps).all() and torch.isfinite(out.image_scores).all()
