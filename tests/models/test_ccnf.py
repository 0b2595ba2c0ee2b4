"""CCNF: invertibility, log-det vs autograd, continual freezing, growth, scoring, loss terms."""

from __future__ import annotations

import math

import flow_checks as checks
import pytest
import torch

from nfbench.benchmarks.running.trainer import train_phase
from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import TrainProgress
from nfbench.models.ccnf import loss as L
from nfbench.models.ccnf.anomaly_map import fuse_levels, level_score_map, posterior_entropy
from nfbench.models.ccnf.coupling import CCNFCoupling, CCNFLevel
from nfbench.models.registry import create_model

TINY = FeatureInfo(channels=(4, 6), strides=(4, 8), input_size=16)
SMALL = {"embed_dim": 4, "pos_dim": 8, "coupling_blocks": 2, "epochs": 2, "batch_size": 4,
         "train_positions": 0}


def _perturb(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return module


def _cond(n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(1, 1, 4, dtype=torch.float64), torch.randn(1, n, 8, dtype=torch.float64)


def _feats(n: int, shift: float = 0.0) -> list[torch.Tensor]:
    return [torch.randn(n, 4, 4, 4) + shift, torch.randn(n, 6, 2, 2) * 0.5 - shift]


# ---- invertibility and log-det ------------------------------------------------------------
@pytest.mark.parametrize(("warm", "zero_init"), [(0.0, False), (1.0, False), (1.0, True)])
def test_coupling_invertible_and_logdet(warm: float, zero_init: bool):
    torch.manual_seed(0)
    block = _perturb(CCNFCoupling(5, 4, 8, hidden=7, zero_init=zero_init).double()).eval()
    emb, pos = _cond()
    x = torch.randn(1, 3, 5, dtype=torch.float64)
    checks.assert_invertible(lambda v: block(v, emb, pos, warm)[0],
                             lambda z: block.inverse(z, emb, pos, warm), x, atol=1e-10)

    def with_logdet(v):
        y, s = block(v, emb, pos, warm)
        return y, s.sum()

    checks.assert_logdet_matches_autograd(with_logdet, x)
    if warm == 0.0:  # additive: volume-preserving, log-det exactly zero
        assert torch.count_nonzero(block(x, emb, pos, warm)[1]) == 0


@pytest.mark.parametrize("warm", [0.0, 1.0])
def test_level_invertible_and_logdet(warm: float):
    torch.manual_seed(1)
    level = CCNFLevel(6, 4, 8, blocks=3, hidden=8, actnorm=True).double()
    level.train()
    level(torch.randn(2, 3, 6, dtype=torch.float64) * 2 + 1, *_cond())  # ActNorm data init
    level = _perturb(level).eval()
    emb, pos = _cond()
    x = torch.randn(1, 3, 6, dtype=torch.float64)
    checks.assert_invertible(lambda v: level(v, emb, pos, warm)[0],
                             lambda z: level.inverse(z, emb, pos, warm), x, atol=1e-10)
    checks.assert_logdet_matches_autograd(lambda v: (level(v, emb, pos, warm)[0],
                                                     level(v, emb, pos, warm)[1].sum()), x)
    if warm == 0.0:  # additive couplings add exactly nothing to the ActNorm log-det
        _, log_det, scales = level(x, emb, pos, warm)
        assert all(torch.count_nonzero(s) == 0 for s in scales)
        assert torch.equal(log_det, level.actnorm.log_scale.sum().expand_as(log_det))


# ---- continual mechanism ------------------------------------------------------------------
def _flow_state(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.levels.state_dict().items()}


def test_ccnf_strategy_freezes_flow_and_old_rows():
    torch.manual_seed(0)
    model = create_model("ccnf", TINY, **SMALL)
    model.start_task(0, [0], "ccnf")
    stats = train_phase(model, _feats(8), torch.zeros(8, dtype=torch.long), 0, 0,
                        torch.device("cpu"), show_progress=False)
    assert stats.steps > 0
    flow_before = _flow_state(model)
    rows_before = model.embedding.table().detach().clone()
    warm_before = model.warm.clone()

    model.start_task(1, [1, 2], "ccnf")
    assert len(model.embedding) == 3  # grown by exactly the new classes
    assert not any(p.requires_grad for p in model.levels.parameters())
    trainable = [p for g in model.param_groups() for p in g["params"]]
    assert len(trainable) == 1 and trainable[0].shape == (2, 4)
    new_before = model.embedding.table()[1:].detach().clone()
    ids = torch.tensor([1, 2] * 4)
    train_phase(model, _feats(8, 1.0), ids, 1, 0, torch.device("cpu"), global_step=stats.steps,
                show_progress=False)
    for key, value in _flow_state(model).items():  # parameters and buffers (SN u/v, ActNorm)
        assert torch.equal(value, flow_before[key]), key
    assert torch.equal(model.warm, warm_before)
    assert torch.equal(model.embedding.table()[:1], rows_before)
    assert not torch.equal(model.embedding.table()[1:], new_before)  # the new rows did train


def test_finetune_trains_everything_and_table_grows():
    torch.manual_seed(0)
    model = create_model("ccnf", TINY, **SMALL)
    model.start_task(0, [0], "finetune")
    train_phase(model, _feats(8), torch.zeros(8, dtype=torch.long), 0, 0, torch.device("cpu"),
                show_progress=False)
    before = _flow_state(model)
    model.start_task(1, [1], "finetune")
    assert len(model.embedding) == 2
    assert all(p.requires_grad for p in model.parameters())
    train_phase(model, _feats(8, 1.0), torch.ones(8, dtype=torch.long), 1, 0,
                torch.device("cpu"), global_step=4, show_progress=False)
    changed = [k for k, v in _flow_state(model).items() if not torch.equal(v, before[k])]
    assert changed
    model.start_task(2, [1, 3, 3], "finetune")  # an already-known class does not grow the table
    assert len(model.embedding) == 3


def test_score_finite_for_never_seen_class_and_untrained_row():
    torch.manual_seed(0)
    model = create_model("ccnf", TINY, **SMALL)
    feats = _feats(3)
    assert torch.isfinite(model.score(feats, None).image_scores).all()  # no class yet
    model.start_task(0, [0], "ccnf")
    train_phase(model, _feats(8), torch.zeros(8, dtype=torch.long), 0, 0, torch.device("cpu"),
                show_progress=False)
    model.start_task(1, [5], "ccnf")  # row 5 exists but never trained
    for ids in (None, torch.tensor([0, 5, 99])):  # 99: an id the table has never seen
        out = model.score(feats, ids)
        assert out.maps.shape == (3, 16, 16) and out.image_scores.shape == (3,)
        assert torch.isfinite(out.maps).all() and torch.isfinite(out.image_scores).all()
    assert len(model.embedding) == 2  # scoring never grows the table
    ent = model.posterior_entropy(feats)
    assert ent.shape == (3,) and (ent >= 0).all() and (ent <= math.log(2) + 1e-6).all()
    z = model.latents(feats, torch.tensor([0, 5, 99]))
    assert [t.shape for t in z] == [f.shape for f in feats]
    groups = model.diagnostic_groups()
    assert {"flow_block0", "flow_block1", "embeddings"} <= set(groups)


def test_tiny_fit_lowers_loss():
    torch.manual_seed(0)
    model = create_model("ccnf", TINY, **SMALL, warmup_steps=5)
    model.start_task(0, [0, 1], "joint")
    feats = [torch.randn(8, 4, 4, 4) * 2 + 1, torch.randn(8, 6, 2, 2) * 0.5 - 1]
    for f in feats:  # correlated channels: far from the Gaussian the ActNorm start gives
        f[:, 1::2] = f[:, 0::2] + 0.05 * torch.randn_like(f[:, 0::2])
    ids = torch.tensor([0, 1] * 4)
    opt = torch.optim.Adam([p for g in model.param_groups() for p in g["params"]], lr=3e-3)
    model.train()
    losses = []
    for step in range(60):
        terms = model.training_loss(feats, ids, TrainProgress(0, 0, step, step))
        assert torch.isfinite(terms.total)
        assert {"g", "logdet", "balance", "zreg", "scale", "mi", "entropy"} <= set(terms.parts)
        opt.zero_grad()
        terms.total.backward()
        opt.step()
        losses.append(terms.total.item())
    assert losses[-1] < losses[0] - 0.2, (losses[0], losses[-1])
    assert float(model.warm) == 1.0


def test_ablation_flags():
    model = create_model("ccnf", TINY, **SMALL, spectral_norm=False, scale_clamp=False,
                         warmup=False, actnorm=False)
    assert not any("parametrizations" in n for n, _ in model.named_parameters())
    assert float(model.warm) == 1.0 and model.levels[0].actnorm is None
    sn = create_model("ccnf", TINY, **SMALL)
    assert any("parametrizations" in n for n, _ in sn.named_parameters())
    assert sn.config.grad_clip == 1.0


# ---- loss terms on literal tensors ----------------------------------------------------------
def test_loss_terms_match_direct_computation():
    log_pz = torch.tensor([[-3.0, -5.0], [-1.0, -7.0]])
    log_det = torch.tensor([[1.0, -2.0], [0.5, 0.5]])
    d = 4
    assert torch.isclose(L.nll_loss(log_pz, log_det, d), torch.tensor(16.0 / 4 / 4))
    assert torch.isclose(L.logdet_loss(log_det, d), torch.tensor(4.0 / 4 / 4))
    assert torch.isclose(L.balance_loss(log_pz, log_det, d), torch.tensor(abs(1.0 - 4.0) / 4))
    z = torch.tensor([1.0, -1.0, 3.0, -3.0])  # population std sqrt(5)
    assert torch.isclose(L.zreg_loss(z), torch.tensor((math.sqrt(5) - 1) ** 2))
    scales = [torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, -1.0]])]
    assert torch.isclose(L.scale_loss(scales), torch.tensor(6.0 / 4))
    lt, ln = torch.tensor([2.0, -1.0]), torch.tensor([0.0, 1.0])  # delta = 2, -2
    expected_mi = (math.log1p(math.exp(-2)) + math.log1p(math.exp(2))) / 2 / d
    assert torch.isclose(L.mi_loss(lt, ln, d), torch.tensor(expected_mi))
    p = 1 / (1 + math.exp(-2))
    h = -p * math.log(p) - (1 - p) * math.log(1 - p)
    assert torch.isclose(L.entropy_loss(lt, ln), torch.tensor(h))  # symmetric in +-delta
    assert L.mi_loss(torch.tensor([1e4]), torch.tensor([0.0]), d) >= 0  # bounded below
    post = posterior_entropy(torch.tensor([[[0.0]], [[0.0]]]))
    assert torch.isclose(post, torch.tensor([[math.log(2)]])).all()


# ---- score (seed 001 §3.5) -------------------------------------------------------------------
def test_level_score_is_the_seeds_formula_with_a_per_dim_option():
    log_probs = torch.tensor([[[-10.0, -4.0]], [[-12.0, -1.0]]])  # K=2 classes, B=1, N=2
    chosen = log_probs[0]
    h = posterior_entropy(log_probs)
    assert (h > 0).all()
    seed = level_score_map(chosen, 8, 0.5, log_probs)
    assert torch.allclose(seed, torch.tensor([[10.0, 4.0]]) + 0.5 * h)
    per_dim = level_score_map(chosen, 8, 0.5, log_probs, per_dim=True)
    assert torch.allclose(per_dim, torch.tensor([[10.0 / 8, 4.0 / 8]]) + 0.5 * h)


@pytest.mark.parametrize("per_dim", [False, True])
def test_model_map_is_mean_over_levels_of_neg_log_prob(per_dim: bool):
    """One class (H = 0): the map is the level mean of -log p(x|y) (/ D with score_per_dim)."""
    torch.manual_seed(0)
    model = create_model("ccnf", TINY, **SMALL, score_per_dim=per_dim)
    model.start_task(0, [0], "ccnf")
    train_phase(model, _feats(8), torch.zeros(8, dtype=torch.long), 0, 0, torch.device("cpu"),
                show_progress=False)
    feats = _feats(3)
    ids = torch.zeros(3, dtype=torch.long)
    with torch.no_grad():
        emb, warm = model.class_embeddings(ids), float(model.warm)
        levels = []
        for i, (f, level) in enumerate(zip(feats, model.levels, strict=True)):
            x = f.flatten(2).transpose(1, 2)
            neg = -level.log_prob(x, emb, model._pos(i), warm) / (x.shape[-1] if per_dim else 1)
            levels.append(neg.view(f.shape[0], *f.shape[2:]))
        expected = fuse_levels(levels, TINY.input_size)
        for class_ids in (ids, None):  # one class: y_hat is that class
            out = model.score(feats, class_ids)
            assert torch.allclose(out.maps, expected, atol=1e-5)
            assert torch.allclose(out.image_scores, expected.flatten(1).amax(1), atol=1e-5)


@pytest.mark.parametrize("rows_per_pass", [256, 6, 5])  # 3 classes in 1 pass, 2+1, 1+1+1
def test_all_class_log_probs_batched_equal_the_per_class_loop(monkeypatch, rows_per_pass: int):
    """Every class's log p(x|y) in one batched pass (or in chunks) is the per-class loop."""
    from nfbench.models.ccnf import model as ccnf_model

    monkeypatch.setattr(ccnf_model, "CLASS_BATCH_ROWS", rows_per_pass)
    torch.manual_seed(0)
    model = _perturb(create_model("ccnf", TINY, **SMALL))
    for task in range(3):
        model.start_task(task, [task], "finetune")
    model.eval()
    vectors, warm = model._vectors(_feats(3)), float(model.warm)
    with torch.no_grad():
        batched = model._all_class_log_probs(vectors)
        loop = [torch.stack([level.log_prob(x, e.view(1, 1, -1), model._pos(i), warm)
                             for e in model.embedding.table()])
                for i, (x, level) in enumerate(zip(vectors, model.levels, strict=True))]
    assert [b.shape for b in batched] == [(3, 3, 16), (3, 3, 4)]
    for b, ref in zip(batched, loop, strict=True):
        assert torch.allclose(b, ref, atol=1e-5, rtol=1e-5)
