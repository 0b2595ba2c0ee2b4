"""CS-Flow: the hand-written cross-scale coupling is invertible with an exact log-det."""

from __future__ import annotations

import flow_checks as checks
import pytest
import torch

from nfbench.models.backbone import FeatureInfo
from nfbench.models.csflow.coupling import CrossScaleFlow
from nfbench.models.registry import create_model

TINY = FeatureInfo(channels=(4, 6, 5), strides=(4, 8, 16), input_size=64)


def _flow(channels: list[int]) -> CrossScaleFlow:
    torch.manual_seed(0)
    flow = CrossScaleFlow(channels, n_blocks=2, hidden=6, clamp=3.0).double()
    with torch.no_grad():  # gammas start at 0 (identity): perturb everything trainable
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return flow


@pytest.mark.parametrize("channels,sizes", [([4, 4, 4], [4, 2, 1]), ([4, 6, 5], [4, 2, 1]),
                                            ([3, 3, 3], [5, 2, 1])])
def test_cross_scale_flow_is_invertible(channels, sizes):
    flow = _flow(channels)
    xs = checks.multiscale_inputs(channels, sizes, 2)
    checks.assert_multiscale_invertible(flow, xs)


def test_cross_scale_flow_logdet_matches_autograd():
    channels, sizes = [4, 6, 5], [4, 2, 1]
    flow = _flow(channels)
    xs = checks.multiscale_inputs(channels, sizes, 1)
    splits = [x.numel() for x in xs]

    def forward(flat: torch.Tensor):
        parts = torch.split(flat.reshape(-1), splits)
        zs, ld = flow([p.view_as(x) for p, x in zip(parts, xs, strict=True)])
        return torch.cat([z.reshape(-1) for z in zs]), ld

    flat = torch.cat([x.reshape(-1) for x in xs])
    checks.assert_logdet_matches_autograd(forward, flat)


def test_outputs_depend_on_every_scale():
    """The cross-scale point: the finest latent moves when only the coarsest input moves."""
    channels, sizes = [4, 4, 4], [4, 2, 1]
    flow, xs = _flow(channels), checks.multiscale_inputs(channels, sizes, 1)
    checks.assert_coarsest_moves_finest(flow, xs)


@pytest.mark.parametrize("scales", ["pyramid", "levels"])
def test_tiny_fit_lowers_loss_and_scores_are_finite(scales):
    torch.manual_seed(0)
    model = create_model("csflow", TINY, hidden_channels=16, n_coupling_blocks=2, scales=scales)
    feats = [torch.randn(8, 4, 16, 16) * 2 + 1, torch.randn(8, 6, 8, 8) * 0.5 - 1,
             torch.randn(8, 5, 4, 4) + 3]
    losses = checks.fit_losses(model, feats)
    assert losses[-1] < losses[0] - 0.1, (losses[0], losses[-1])
    for mode in ("product", "finest", "mean"):
        model.config.map_mode = mode
        out = model.score(feats, None)
        assert out.maps.shape == (8, 64, 64) and out.image_scores.shape == (8,)
        assert torch.isfinite(out.maps).all() and torch.isfinite(out.image_scores).all()
