"""anomalib reference entries: lazy import, offline build, a few finite training steps, scoring."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from flow_checks import TINY_CONFIGS

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import TrainProgress
from nfbench.models.registry import available_models, create_model
from nfbench.models.uflow.loss import uflow_loss

REFERENCE = ("anomalib.cflow", "anomalib.fastflow", "anomalib.csflow", "anomalib.uflow")
TINY = FeatureInfo(channels=(8, 12, 16), strides=(4, 8, 16), input_size=64)


def test_import_does_not_load_anomalib():
    code = ("import sys, nfbench.models.reference; "
            "assert 'anomalib' not in sys.modules, 'anomalib imported eagerly'")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_reference_entries_registered():
    assert set(REFERENCE) <= set(available_models())


@pytest.mark.parametrize("name", REFERENCE)
def test_reference_builds_offline_trains_and_scores(name: str, monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("anomalib")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", "/nonexistent-no-downloads")
    torch.manual_seed(0)
    model = create_model(name, TINY, **TINY_CONFIGS.get(name, {}))
    feats = [torch.randn(2, c, s, s) for c, s in zip(TINY.channels, TINY.sizes, strict=True)]
    groups = model.param_groups()
    assert groups and all(p.requires_grad for g in groups for p in g["params"])
    optimizer = torch.optim.Adam(groups, lr=model.config.lr)
    model.train()
    for step in range(3):
        terms = model.training_loss(feats, torch.zeros(2, dtype=torch.long),
                                    TrainProgress(0, 0, step, step))
        assert torch.isfinite(terms.total), terms.parts
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
    model.eval()
    out = model.score(feats, None)
    assert out.maps.shape == (2, TINY.input_size, TINY.input_size)
    assert out.image_scores.shape == (2,)
    assert torch.isfinite(out.maps).all() and torch.isfinite(out.image_scores).all()
    assert model.training is False  # scoring left the mode as it found it


def test_csflow_reference_keeps_anomalibs_batch_summed_log_det():
    """anomalib's CS-Flow returns one log-det for the whole batch (the authors' is per sample);
    the reference keeps it and declares it (models/reference/README.md has the measurement)."""
    pytest.importorskip("anomalib")
    from nfbench.models.reference.common import net_mode

    torch.manual_seed(0)
    model = create_model("anomalib.csflow", TINY, cross_conv_hidden_channels=8)
    with torch.no_grad():
        for name, p in model.net.named_parameters():
            if "gamma" in name:  # zero at init, which would make every log-det 0
                p.fill_(1.0)
    feats = _tiny_features(3)
    with torch.no_grad(), net_mode(model.net, True):
        _, batch = model.net(feats)
        alone = torch.stack([model.net([f[i:i + 1] for f in feats])[1].reshape(())
                             for i in range(3)])
    assert alone.abs().min() > 0 and not torch.allclose(alone, alone[0].expand(3))
    assert torch.allclose(batch.reshape(-1), alone.sum().expand(batch.numel()), rtol=1e-4)
    assert "log-det over the batch" in model.known_deviation


def test_csflow_uses_anomalib_adam_epsilon():
    pytest.importorskip("anomalib")
    model = create_model("anomalib.csflow", TINY, cross_conv_hidden_channels=8)
    assert model.param_groups()[0]["eps"] == pytest.approx(1e-4)
    assert model.config.grad_clip == 1.0


def _tiny_features(n: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, c, s, s, generator=g) * 2 + 0.5
            for c, s in zip(TINY.channels, TINY.sizes, strict=True)]


def test_fastflow_reference_and_native_agree_on_the_same_weights():
    """anomalib's FastFlow and the native one are the same function: with the native weights
    copied into the reference, loss, maps and image scores agree (the two only ever differ
    by their random initialisation)."""
    pytest.importorskip("anomalib")
    torch.manual_seed(0)
    native = create_model("fastflow", TINY)
    reference = create_model("anomalib.fastflow", TINY)
    renamed = {k.replace("norms.", "net.norms.").replace("flows.", "net.fast_flow_blocks."): v
               for k, v in native.state_dict().items()}
    reference.load_state_dict(renamed, strict=True)
    feats, ids = _tiny_features(), torch.zeros(3, dtype=torch.long)
    progress = TrainProgress(0, 0, 0, 0)
    native.train()
    reference.train()
    loss_native = native.training_loss(feats, ids, progress).total
    loss_reference = reference.training_loss(feats, ids, progress).total
    assert torch.allclose(loss_native, loss_reference, rtol=1e-5)
    native.eval()
    reference.eval()
    a, b = native.score(feats, None), reference.score(feats, None)
    assert torch.allclose(a.maps, b.maps, atol=1e-6)
    assert torch.allclose(a.image_scores, b.image_scores, atol=1e-6)


def test_cflow_reference_loss_is_anomalib_get_logp():
    """The reference re-expresses anomalib's CFLOW training step; its loss must equal
    -logsigmoid(get_logp(C, z, log|J|) / C) computed with anomalib's own get_logp on the
    same decoder outputs (every position: fibers_per_step 0)."""
    pytest.importorskip("anomalib")
    torch.manual_seed(0)
    model = create_model("anomalib.cflow", TINY, coupling_blocks=2)
    feats = _tiny_features(2)
    total = model.training_loss(feats, torch.zeros(2, dtype=torch.long),
                                TrainProgress(0, 0, 0, 0)).total
    expected = torch.zeros(())
    utils = model._utils
    for feat, decoder in zip(feats, model.net.decoders, strict=True):
        b, c, h, w = feat.shape
        enc = utils.positional_encoding_2d(model.config.condition_vector, h, w)
        cond = enc.permute(1, 2, 0).reshape(h * w, -1).repeat(b, 1)
        z, log_jac = decoder(feat.permute(0, 2, 3, 1).reshape(-1, c), [cond])
        log_p = utils.get_logp(c, z, log_jac) / c
        expected = expected - torch.nn.functional.logsigmoid(log_p).mean()
    assert torch.allclose(total, expected, rtol=1e-6)


def test_uflow_reference_keeps_anomalibs_batch_summed_latent_term():
    """anomalib 2.7's UFlowLoss sums 0.5 ||z||^2 over the batch as well as over the scales
    (its torch.sum has no dim), so the latent term weighs B times the log-det; the authors'
    train.py sums over scales only (dim=0). The reference keeps anomalib's loss, the native
    model the authors': equal at batch 1, apart at batch B."""
    pytest.importorskip("anomalib")
    model = create_model("anomalib.uflow", TINY)
    g = torch.Generator().manual_seed(0)
    for batch in (1, 4):
        latents = [torch.randn(batch, c, s, s, generator=g) for c, s in ((4, 4), (8, 2))]
        log_det = torch.randn(batch, generator=g)
        per_sample = sum(0.5 * (z**2).sum(dim=(1, 2, 3)) for z in latents)
        assert torch.allclose(uflow_loss(latents, log_det), (per_sample - log_det).mean())
        assert torch.allclose(model.criterion(latents, log_det),
                              batch * per_sample.mean() - log_det.mean())
