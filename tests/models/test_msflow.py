"""MSFlow: the parallel + fusion flow is invertible with an exact log-det, and it trains."""

from __future__ import annotations

import flow_checks as checks
import pytest
import torch

from nfbench.models.backbone import FeatureInfo
from nfbench.models.capabilities import HasLatents
from nfbench.models.msflow.anomaly_map import (
    detection_map,
    localisation_map,
    log_prob_maps,
    msflow_scores,
    summed_log_prob,
    top_k_image_score,
)
from nfbench.models.msflow.flows import MultiScaleFlow
from nfbench.models.msflow.model import parse_blocks
from nfbench.models.registry import create_model

TINY = FeatureInfo(channels=(4, 6, 5), strides=(4, 8, 16), input_size=64)


def _flow(channels: list[int], cond_channels: int = 4, fusion_blocks: int = 1) -> MultiScaleFlow:
    torch.manual_seed(0)
    flow = MultiScaleFlow(channels, [1, 2, 2], cond_channels, clamp=1.9,
                          fusion_blocks=fusion_blocks).double()
    with torch.no_grad():  # move away from the init so every part contributes to the log-det
        for p in flow.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    return flow


@pytest.mark.parametrize(("channels", "sizes", "cond", "fusion_blocks"), [
    ([4, 4, 4], [4, 2, 1], 4, 1), ([4, 6, 5], [4, 2, 1], 8, 1), ([3, 5, 7], [6, 3, 2], 0, 2)])
def test_parallel_and_fusion_flow_is_invertible(channels, sizes, cond, fusion_blocks):
    flow = _flow(channels, cond, fusion_blocks)
    xs = checks.multiscale_inputs(channels, sizes, 2)
    checks.assert_multiscale_invertible(flow, xs)


def _flat_forward(flow: MultiScaleFlow, shapes: list[torch.Size]):
    splits = [s.numel() for s in shapes]

    def forward(flat: torch.Tensor):
        parts = torch.split(flat.reshape(-1), splits)
        zs, ld = flow([p.view(s) for p, s in zip(parts, shapes, strict=True)])
        return torch.cat([z.reshape(-1) for z in zs]), ld

    return forward


@pytest.mark.parametrize("fusion_blocks", [1, 2])
def test_logdet_matches_autograd(fusion_blocks):
    channels, sizes = [4, 6, 5], [4, 2, 1]
    flow = _flow(channels, fusion_blocks=fusion_blocks)
    xs = checks.multiscale_inputs(channels, sizes, 1)
    flat = torch.cat([x.reshape(-1) for x in xs])
    checks.assert_logdet_matches_autograd(_flat_forward(flow, [x.shape for x in xs]), flat)


def test_whole_model_flow_is_invertible_and_its_logdet_exact():
    """The registered model's own flow (default structure, tiny widths) in float64."""
    torch.manual_seed(0)
    model = create_model("msflow", TINY, parallel_blocks="2,3,4", cond_channels=8).double()
    xs = model.pool([torch.randn(1, c, s, s, dtype=torch.float64)
                     for c, s in zip(TINY.channels, TINY.sizes, strict=True)])
    zs, _ = model.flow(xs)
    back, _ = model.flow(zs, rev=True)
    for x, b in zip(xs, back, strict=True):
        assert torch.allclose(x, b, atol=1e-8)
    flat = torch.cat([x.reshape(-1) for x in xs])
    checks.assert_logdet_matches_autograd(_flat_forward(model.flow, [x.shape for x in xs]), flat)


def test_fusion_exchanges_information_across_scales():
    """The finest latent moves when only the coarsest input moves (the fusion flow's point);
    without the fusion flow it would not."""
    channels, sizes = [4, 4, 4], [4, 2, 1]
    flow, xs = _flow(channels), checks.multiscale_inputs(channels, sizes, 1)
    checks.assert_coarsest_moves_finest(flow, xs)


def test_tiny_fit_lowers_loss_no_nan_and_latent_shapes():
    torch.manual_seed(0)
    model = create_model("msflow", TINY, parallel_blocks="1,2,2", cond_channels=8)
    feats = [torch.randn(8, 4, 16, 16) * 2 + 1, torch.randn(8, 6, 8, 8) * 0.5 - 1,
             torch.randn(8, 5, 4, 4) + 3]
    losses = checks.fit_losses(model, feats)
    assert losses[-1] < losses[0] - 0.1 * abs(losses[0]), (losses[0], losses[-1])
    model.eval()
    assert isinstance(model, HasLatents)
    zs = model.latents(feats)
    assert [tuple(z.shape) for z in zs] == [(8, 4, 8, 8), (8, 6, 4, 4), (8, 5, 2, 2)]
    assert all(torch.isfinite(z).all() for z in zs)
    for mode in ("add", "mul"):
        model.config.map_mode = mode
        out = model.score(feats, None)
        assert out.maps.shape == (8, 64, 64) and out.image_scores.shape == (8,)
        assert torch.isfinite(out.maps).all() and torch.isfinite(out.image_scores).all()


@pytest.mark.parametrize("pool_type", ["max", "none"])
def test_pool_types_give_latents_at_their_size(pool_type):
    model = create_model("msflow", TINY, parallel_blocks="1", cond_channels=4,
                         pool_type=pool_type)
    feats = [torch.randn(2, c, s, s) for c, s in zip(TINY.channels, TINY.sizes, strict=True)]
    sizes = [s if pool_type == "none" else s // 2 for s in TINY.sizes]
    assert [z.shape[-1] for z in model.latents(feats)] == sizes


def test_aggregation_rules():
    """Localisation: max(P) - P with P the sum of per-image-normalised probabilities (0 at the
    most likely pixel, at most the number of scales); detection: 1 - exp(S - max S); image
    score: top-k mean of the detection map."""
    torch.manual_seed(0)
    zs = [torch.randn(3, 4, 8, 8), torch.randn(3, 6, 4, 4)]
    zs[0][1, :, 2, 2] += 5.0  # one unlikely region in image 1, on both scales
    zs[1][1, :, 1, 1] += 5.0
    log_probs = log_prob_maps(zs)
    loc, det = localisation_map(log_probs, 16), detection_map(summed_log_prob(log_probs, 16))
    for m, top in ((loc, 2.0), (det, 1.0)):
        flat = m.flatten(1)
        assert torch.allclose(flat.amin(1), torch.zeros(3), atol=1e-6)
        assert (flat.amax(1) <= top + 1e-6).all()
    assert torch.allclose(top_k_image_score(det, 1 / 256), det.flatten(1).amax(1))
    assert torch.allclose(top_k_image_score(det, 1.0), det.flatten(1).mean(1))
    for m in (loc, det):  # (2, 2) of 8 and (1, 1) of 4 lie at 4.3 and 5 of 16
        row, col = divmod(int(m[1].argmax()), 16)
        assert 3 <= row <= 5 and 3 <= col <= 5, (row, col)


def test_normalised_score_saturates_where_nll_keeps_the_ranking():
    """Latents far from N(0, I) (a class the flow no longer models) make S span hundreds of
    nats in one image: the paper's score is 1.0 for every image, ties that hide which image
    is the less likely; the nll score (top-k of -S) keeps that ranking."""
    torch.manual_seed(0)
    zs = [torch.randn(4, 4, 8, 8) * 30, torch.randn(4, 6, 4, 4) * 30]
    for i in range(4):
        zs[0][i] *= 1 + i  # image i is less likely the larger i
    _, paper = msflow_scores(zs, 16)
    _, nll = msflow_scores(zs, 16, image_score="nll")
    assert torch.equal(paper, torch.ones(4))
    assert (nll.diff() > 0).all()
    assert torch.allclose(nll, top_k_image_score(-summed_log_prob(log_prob_maps(zs), 16), 0.03))
    with pytest.raises(ValueError, match="image score"):
        create_model("msflow", TINY, image_score="exp")


def test_parse_blocks():
    assert parse_blocks("2,5,8", 3) == [2, 5, 8]
    assert parse_blocks("3", 2) == [3, 3]
    for bad in ("2,5", "0,1,1", "a,b,c"):
        with pytest.raises(ValueError):
            parse_blocks(bad, 3)
