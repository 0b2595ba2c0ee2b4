"""U-Flow: the U-shaped flow is one bijection; NFA matches scipy on a hand-picked case."""

from __future__ import annotations

import flow_checks as checks
import torch

from nfbench.models.backbone import FeatureInfo
from nfbench.models.registry import create_model
from nfbench.models.uflow.model import UFlowConfig, UShapedFlow

TINY = FeatureInfo(channels=(4, 7, 8), strides=(4, 8, 16), input_size=32)


def _flow() -> UShapedFlow:
    torch.manual_seed(0)
    flow = UShapedFlow((4, 7, 8), (4, 2, 1), UFlowConfig(flow_steps=2)).double()
    with torch.no_grad():
        for p in flow.parameters():
            if p.requires_grad:  # FrEIA's fixed permutations are frozen Parameters
                p.add_(0.1 * torch.randn_like(p))
    return flow


def _feats(batch: int) -> list[torch.Tensor]:
    return [torch.randn(batch, c, s, s, dtype=torch.float64) for c, s in ((4, 4), (7, 2), (8, 1))]


def test_u_shaped_flow_is_invertible_and_splits_as_designed():
    flow = _flow()
    # coarse 8 ch: 4 go up (1 ch at 2x2), 4 stay; mid 7+1: 4 up, 4 stay; fine 4+1 all stay
    assert flow.stage_channels == [5, 8, 8]
    feats = _feats(2)
    latents, _ = flow(feats)
    assert [tuple(z.shape[1:]) for z in latents] == [(5, 4, 4), (4, 2, 2), (4, 1, 1)]
    back = flow.inverse(latents)
    for f, b in zip(feats, back, strict=True):
        assert torch.allclose(f, b, atol=1e-8), float((f - b).abs().max())


def test_u_shaped_flow_logdet_matches_autograd():
    flow = _flow()
    feats = _feats(1)
    splits = [f.numel() for f in feats]

    def forward(flat: torch.Tensor):
        parts = torch.split(flat.reshape(-1), splits)
        zs, ld = flow([p.view_as(f) for p, f in zip(parts, feats, strict=True)])
        return torch.cat([z.reshape(-1) for z in zs]), ld

    checks.assert_logdet_matches_autograd(forward, torch.cat([f.reshape(-1) for f in feats]))


def test_tiny_fit_lowers_loss_and_scores_are_finite():
    torch.manual_seed(0)
    model = create_model("uflow", TINY, flow_steps=2)
    feats = [torch.randn(8, 4, 8, 8) * 2 + 1, torch.randn(8, 7, 4, 4) * 0.5 - 1,
             torch.randn(8, 8, 2, 2) + 3]
    losses = checks.fit_losses(model, feats)
    assert losses[-1] < losses[0] - 1.0, (losses[0], losses[-1])
    for mode in ("likelihood", "nfa"):
        model.config.score_mode = mode
        out = model.score(feats, None)
        assert out.maps.shape == (8, 32, 32) and out.image_scores.shape == (8,)
        assert torch.isfinite(out.maps).all() and torch.isfinite(out.image_scores).all()
    nfa = model.nfa_map(feats)
    assert nfa.shape == (8, 32, 32) and torch.isfinite(nfa).all()
