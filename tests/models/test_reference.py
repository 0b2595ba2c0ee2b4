"""anomalib reference entries: lazy import, offline build, a few finite training steps, scoring."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from nfbench.models.backbone import FeatureInfo
from nfbench.models.base import TrainProgress
from nfbench.models.registry import available_models, create_model

REFERENCE = ("anomalib.cflow", "anomalib.fastflow", "anomalib.csflow", "anomalib.uflow")
TINY = FeatureInfo(channels=(8, 12, 16), strides=(4, 8, 16), input_size=64)
SMALL = {"anomalib.csflow": {"cross_conv_hidden_channels": 32}}  # default 1024 is slow on CPU


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
    model = create_model(name, TINY, **SMALL.get(name, {}))
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


def test_csflow_uses_anomalib_adam_epsilon():
    pytest.importorskip("anomalib")
    model = create_model("anomalib.csflow", TINY, cross_conv_hidden_channels=8)
    assert model.param_groups()[0]["eps"] == pytest.approx(1e-4)
    assert model.config.grad_clip == 1.0
