"""HGAD: flow checks, the GMM against torch.distributions, growth, a tiny fit, scoring."""

from __future__ import annotations

import math

import flow_checks as checks
import torch
from scipy import ndimage
from torch import distributions as D

from nfbench.benchmarks.running.trainer import train_phase
from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import TrainProgress
from nfbench.models.flows import gaussian_blur_2d
from nfbench.models.hgad.gmm import HierarchicalGMM
from nfbench.models.hgad.loss import hgad_level_losses
from nfbench.models.hgad.model import HGADConfig, build_hgad_flow
from nfbench.models.registry import create_model

TINY = FeatureInfo(channels=(4, 8), strides=(4, 8), input_size=16)
SMALL = dict(coupling_blocks=2, pos_embed_dim=8, n_intra=3, train_positions=0, blur_sigma=1.0)


def _flow(dim: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    flow = build_hgad_flow(dim, HGADConfig(coupling_blocks=3, pos_embed_dim=8)).double()
    with torch.no_grad():  # move away from the identity init so the checks are not trivial
        for p in flow.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    return flow


def _literal_gmm() -> HierarchicalGMM:
    """K=2 classes, 3 intra centres each, D=2, with literal parameter values."""
    gmm = HierarchicalGMM(dim=2, n_intra=3).double()
    gmm.grow(2)
    with torch.no_grad():
        gmm.mus.copy_(torch.tensor([[1.0, 0.0], [-1.0, 2.0]]))
        gmm.mu_deltas.copy_(torch.tensor([[[0.5, 0.5], [-0.3, 0.2]], [[1.0, -1.0], [0.0, 0.7]]]))
        gmm.phi_intras.copy_(torch.tensor([[0.1, -0.4, 0.3], [0.0, 1.0, -1.0]]))
        gmm.phi_inters.copy_(torch.tensor([0.2, -0.5]))
    return gmm


Z = torch.tensor([[0.3, -0.2], [1.5, 0.4], [-2.0, 1.0], [0.0, 3.0]], dtype=torch.float64)


def _centres() -> torch.Tensor:
    mus = torch.tensor([[1.0, 0.0], [-1.0, 2.0]], dtype=torch.float64)
    deltas = torch.tensor([[[0.5, 0.5], [-0.3, 0.2]], [[1.0, -1.0], [0.0, 0.7]]],
                          dtype=torch.float64)
    return torch.cat([mus.unsqueeze(1), mus.unsqueeze(1) + deltas], dim=1)  # (2, 3, 2)


def _mixture(logits: torch.Tensor, centres: torch.Tensor) -> D.MixtureSameFamily:
    comp = D.Independent(D.Normal(centres, torch.ones_like(centres)), 1)
    return D.MixtureSameFamily(D.Categorical(logits=logits), comp)


def test_flow_is_invertible_with_condition():
    flow = _flow()
    cond = torch.randn(5, 8, dtype=torch.float64)
    x = torch.randn(5, 4, dtype=torch.float64)
    checks.assert_invertible(lambda v: flow(v, c=[cond])[0],
                             lambda z: flow(z, c=[cond], rev=True)[0], x, atol=1e-8)


def test_flow_logdet_matches_autograd():
    flow = _flow()
    cond = torch.randn(1, 8, dtype=torch.float64)
    checks.assert_logdet_matches_autograd(lambda v: flow(v, c=[cond]),
                                          torch.randn(1, 4, dtype=torch.float64))


def test_gmm_log_prob_matches_torch_distributions():
    gmm = _literal_gmm()
    centres = _centres()
    log_pi = torch.log_softmax(torch.tensor([0.2, -0.5], dtype=torch.float64), 0)
    log_w = torch.log_softmax(
        torch.tensor([[0.1, -0.4, 0.3], [0.0, 1.0, -1.0]], dtype=torch.float64), 1)
    full = _mixture((log_pi.unsqueeze(1) + log_w).reshape(-1), centres.reshape(-1, 2))
    assert torch.allclose(gmm.log_prob(Z), full.log_prob(Z), atol=1e-10)
    for y in range(2):
        per_class = _mixture(log_w[y], centres[y]).log_prob(Z)
        got = gmm.log_prob_given_class(Z, torch.full((4,), y))
        assert torch.allclose(got, per_class, atol=1e-10)
    # entropy of p(y|z) over the main centres (HGAD's prior-free form)
    main = torch.stack([D.Independent(D.Normal(centres[y, 0], torch.ones(2, dtype=Z.dtype)), 1)
                        .log_prob(Z) for y in range(2)], dim=1)
    expected_h = D.Categorical(logits=main).entropy()
    assert torch.allclose(gmm.class_entropy(Z), expected_h, atol=1e-10)
    assert torch.allclose(gmm.class_entropy(Z, with_prior=True),
                          D.Categorical(logits=main + log_pi).entropy(), atol=1e-10)


def test_losses_match_direct_computation():
    gmm = _literal_gmm()
    log_det = torch.tensor([0.1, -0.2, 0.0, 0.3], dtype=torch.float64)
    slots = torch.tensor([0, 1, 1, 0])
    terms = hgad_level_losses(Z, log_det, gmm, slots, label_smoothing=0.0, intra=True)
    centres = _centres()
    log_pi = torch.log_softmax(torch.tensor([0.2, -0.5], dtype=torch.float64), 0)
    inter = _mixture(log_pi, centres[:, 0])  # Gaussian constant included
    const = math.log(2 * math.pi)  # D/2 * log(2 pi) with D = 2
    expected_g = (-(inter.log_prob(Z) + const) - log_det).mean() / 2
    assert torch.allclose(terms["g"], expected_g, atol=1e-10)
    log_w = torch.log_softmax(
        torch.tensor([[0.1, -0.4, 0.3], [0.0, 1.0, -1.0]], dtype=torch.float64), 1)
    per = torch.stack([_mixture(log_w[s], centres[s]).log_prob(Z[i])
                       for i, s in enumerate(slots.tolist())])
    assert torch.allclose(terms["g_intra"], (-(per + const) - log_det).mean() / 2, atol=1e-10)
    log_p = (per + log_det) / 2
    assert torch.allclose(terms["z"], -torch.nn.functional.logsigmoid(log_p).mean(), atol=1e-10)
    posterior = torch.log_softmax(-0.5 * torch.cdist(Z, centres[:, 0]) ** 2 + log_pi, dim=1)
    expected_mi = (posterior - log_pi).gather(1, slots.view(-1, 1)).mean()
    assert torch.allclose(terms["mi"], expected_mi, atol=1e-10)


def test_blur_matches_scipy_mirror_mode():
    x = torch.rand(2, 30, 30, dtype=torch.float64)
    expected = torch.stack([torch.from_numpy(ndimage.gaussian_filter(a, 2.0, mode="mirror"))
                            for a in x.numpy()])
    assert torch.allclose(gaussian_blur_2d(x, 2.0), expected, atol=1e-10)
    assert torch.equal(gaussian_blur_2d(x, 0.0), x)


def test_centres_grow_by_exactly_the_new_classes():
    torch.manual_seed(0)
    model = create_model("hgad", TINY, **SMALL)
    model.start_task(0, [3], "hgad")
    first = [g.mus.detach().clone() for g in model.gmms]
    model.start_task(1, [5, 3], "finetune")  # 3 is not new
    model.start_task(2, [1, 2], "hgad")
    for gmm, dim, old in zip(model.gmms, TINY.channels, first, strict=True):
        assert gmm.mus.shape == (4, dim)
        assert gmm.mu_deltas.shape == (4, 2, dim)
        assert gmm.phi_intras.shape == (4, 3) and gmm.phi_inters.shape == (4,)
        assert torch.equal(gmm.mus[:1], old)
        assert torch.allclose(torch.cdist(gmm.mus, gmm.mus)[0, 1], torch.tensor(5.0))
    assert model.seen_classes == [3, 5, 1, 2]
    assert model.slots(torch.tensor([2, 3, 7])).tolist() == [3, 0, -1]
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_parameters()}
    assert {"mus", "mu_deltas", "phi_intras", "phi_inters"} <= names
    groups = model.param_groups()
    assert any(g.get("lr") == model.config.lr_centres and model.gmms[0].mus in g["params"]
               for g in groups)
    diag = model.diagnostic_groups()
    assert list(diag)[:3] == ["flow_block0", "flow_block1", "flow_input_norm"]
    assert diag["phi_inters"][1] is model.gmms[1].phi_inters


def test_tiny_fit_lowers_loss_and_scores_are_finite():
    torch.manual_seed(0)
    model = create_model("hgad", TINY, **SMALL)
    model.start_task(0, [0, 1], "joint")
    feats = [torch.randn(8, 4, 4, 4) * 2 + 1, torch.randn(8, 8, 2, 2) * 0.5 - 1]
    ids = torch.tensor([0, 1] * 4)
    opt = torch.optim.Adam(model.param_groups(), lr=1e-3)
    losses = []
    for step in range(60):
        terms = model.training_loss(feats, ids, TrainProgress(0, 5, step, step))
        assert torch.isfinite(terms.total)
        assert set(terms.parts) == {"g", "e", "mi", "g_intra", "z"}
        opt.zero_grad()
        terms.total.backward()
        opt.step()
        losses.append(terms.total.item())
    assert losses[-1] < losses[0] - 1.0, (losses[0], losses[-1])
    model.eval()
    with torch.no_grad():
        for class_ids in (None, ids, torch.tensor([0, 1, 99, 1, 0, 42, 1, 0])):
            out = model.score(feats, class_ids)
            assert out.maps.shape == (8, 16, 16) and out.image_scores.shape == (8,)
            assert torch.isfinite(out.maps).all() and torch.isfinite(out.image_scores).all()
        h = model.posterior_entropy(feats)
        assert h.shape == (8,) and (h >= 0).all() and (h <= math.log(2) + 1e-6).all()
        z = model.latents(feats)
        assert [t.shape for t in z] == [(8, 4, 4, 4), (8, 8, 2, 2)]


def test_score_is_finite_before_and_after_one_class():
    torch.manual_seed(0)
    model = create_model("hgad", TINY, **SMALL).eval()
    feats = [torch.randn(2, 4, 4, 4), torch.randn(2, 8, 2, 2)]
    with torch.no_grad():
        assert torch.isfinite(model.score(feats, None).maps).all()  # no class yet
        model.start_task(0, [4], "hgad")
        out = model.score(feats, torch.tensor([4, 0]))
    assert torch.isfinite(out.image_scores).all()


def test_harness_trains_with_its_param_groups():
    torch.manual_seed(0)
    model = create_model("hgad", TINY, **SMALL, epochs=2, batch_size=4, warmup_epochs=1)
    model.start_task(0, [2], "hgad")
    feats = [torch.randn(8, 4, 4, 4), torch.randn(8, 8, 2, 2)]
    stats = train_phase(model, feats, torch.full((8,), 2), 0, seed=0,
                        device=torch.device("cpu"), show_progress=False)
    assert stats.steps == 4 and "g_intra" in stats.last_parts
    assert torch.equal(model.log_prob_ref, torch.zeros(2))  # training leaves the references


def test_finish_task_takes_map_references_from_training_data():
    torch.manual_seed(0)
    model = create_model("hgad", TINY, **SMALL).eval()
    model.start_task(0, [0, 1], "joint")
    feats = [torch.randn(6, 4, 4, 4), torch.randn(6, 8, 2, 2)]
    with torch.no_grad():
        model.finish_task(feats, torch.tensor([0, 1] * 3))
        pairs = [model.level_log_prob_and_entropy(i, f, None) for i, f in enumerate(feats)]
        assert torch.allclose(model.log_prob_ref, torch.stack([lp.max() for lp, _ in pairs]))
        assert torch.allclose(model.neg_entropy_ref, torch.stack([(-h).max() for _, h in pairs]))
        assert (model.neg_entropy_ref < 0).all()  # a data maximum, not the bound 0
        like = sum(model.upsample(torch.exp(lp - lp.max())) for lp, _ in pairs)
        cert = sum(model.upsample(torch.exp(-h - (-h).max())) for _, h in pairs)
        assert torch.allclose(model.normal_max, torch.stack([like.max(), cert.max()]))
        assert (model.normal_max < 2).all()  # below the bound (number of levels)
        # on the training images every factor is >= 0 (no clipping needed there)
        out = model.score(feats, None)
    assert (out.maps >= 0).all() and torch.isfinite(out.maps).all()
