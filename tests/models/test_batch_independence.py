"""Every score is a function of its own image only (DESIGN: "never of its batch mates").

After a short fit and finish_task, each test image's map and image score must be the same
whether it is scored alone, in batches of 8, or with the whole test set, task-agnostically.
Native models must all pass; a reference entry that fails must say so with
`batch_dependent_scores = True`, and only such an entry may say so.
"""

from __future__ import annotations

import pytest
import torch
from flow_checks import TINY_CONFIGS

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import FlowADModel, TrainProgress
from nfbench.models.cflow import model as cflow_model
from nfbench.models.registry import available_models, create_model

NATIVE_TINY = FeatureInfo(channels=(4, 8), strides=(4, 8), input_size=32)
REFERENCE_TINY = FeatureInfo(channels=(8, 12, 16), strides=(4, 8, 16), input_size=64)
NATIVE = sorted(m for m in available_models() if not m.startswith("anomalib."))
REFERENCE = ("anomalib.cflow", "anomalib.fastflow", "anomalib.csflow", "anomalib.uflow",
             "anomalib.patchcore")
N_TEST = 20


def _features(info: FeatureInfo, n: int, dtype: torch.dtype, anomalous: int = 0):
    """Random features; the first `anomalous` images get a shifted patch on every level."""
    feats = [torch.randn(n, c, s, s, dtype=dtype)
             for c, s in zip(info.channels, info.sizes, strict=True)]
    for f in feats:
        f[:anomalous, :, : max(1, f.shape[-1] // 4), : max(1, f.shape[-1] // 4)] += 3.0
    return feats


def _fitted(name: str, info: FeatureInfo, dtype: torch.dtype) -> FlowADModel:
    """Two classes, a few Adam steps over param_groups, finish_task: as the harness does."""
    torch.manual_seed(0)
    model = create_model(name, info, **TINY_CONFIGS.get(name, {})).to(dtype)
    model.start_task(0, [0, 1], "joint")
    train = _features(info, 8, dtype)
    ids = torch.tensor([0, 1] * 4)
    groups = model.param_groups()  # none without trainable parameters: no steps, as the harness
    assert groups or not model.is_flow, f"{model.name}: a flow with nothing to train"
    optimizer = torch.optim.Adam(groups, lr=1e-3) if groups else None
    model.train()
    for step in range(4 if optimizer is not None else 0):
        terms = model.training_loss(train, ids, TrainProgress(0, step, step, step))
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        model.finish_task(train, ids)
    return model


def _score_in_batches(model: FlowADModel, feats: list[torch.Tensor], batch: int):
    maps, scores = [], []
    with torch.no_grad():
        for lo in range(0, feats[0].shape[0], batch):
            out = model.score([f[lo : lo + batch] for f in feats], None)
            maps.append(out.maps)
            scores.append(out.image_scores)
    return torch.cat(maps), torch.cat(scores)


def _batch_independent(model: FlowADModel, feats: list[torch.Tensor], tol: float = 1e-5) -> bool:
    """Alone, in batches of 8 and all together give the same maps and image scores."""
    whole_maps, whole_scores = _score_in_batches(model, feats, feats[0].shape[0])
    for batch in (1, 8):
        maps, scores = _score_in_batches(model, feats, batch)
        if not (torch.allclose(maps, whole_maps, rtol=tol, atol=tol)
                and torch.allclose(scores, whole_scores, rtol=tol, atol=tol)):
            return False
    return True


def test_every_native_model_is_covered():
    assert set(NATIVE) == {"fastflow", "cflow", "csflow", "uflow", "hgad", "ccnf",
                           "msflow", "isoflow", "patchcore"}


@pytest.mark.parametrize("name", NATIVE)
def test_native_scores_do_not_depend_on_batch_mates(name: str):
    model = _fitted(name, NATIVE_TINY, torch.float64)  # float64: no batch-size rounding noise
    feats = _features(NATIVE_TINY, N_TEST, torch.float64, anomalous=6)
    whole_maps, _ = _score_in_batches(model, feats, N_TEST)
    assert whole_maps.std() > 0  # a constant map would pass trivially
    assert _batch_independent(model, feats)
    assert model.batch_dependent_scores is False


def test_checker_catches_a_batch_max_normalisation(monkeypatch: pytest.MonkeyPatch):
    """CFLOW's former map_normalization="batch" (exp(log p - batch max), batch max - sum)."""
    model = _fitted("cflow", NATIVE_TINY, torch.float64)
    feats = _features(NATIVE_TINY, N_TEST, torch.float64, anomalous=6)
    assert _batch_independent(model, feats)

    def batch_max_map(log_prob_maps, upsample, references=None):
        total = sum(upsample(torch.exp(lp - lp.max())) for lp in log_prob_maps)
        return total.max() - total

    monkeypatch.setattr(cflow_model, "cflow_anomaly_map", batch_max_map)
    assert not _batch_independent(model, feats)


@pytest.mark.parametrize("name", REFERENCE)
def test_reference_flag_is_set_exactly_where_scores_depend_on_the_batch(name: str):
    pytest.importorskip("anomalib")
    model = _fitted(name, REFERENCE_TINY, torch.float32)  # anomalib builds float32 tensors
    feats = _features(REFERENCE_TINY, N_TEST, torch.float32, anomalous=6)
    assert model.batch_dependent_scores is (not _batch_independent(model, feats)), name
