"""The feature cache: computed once, never stale when an image or a setting changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nfbench.datasets.base import Sample
from nfbench.models.backbone import Backbone, BackboneError
from nfbench.models.feature_cache import FeatureCache


@pytest.fixture(scope="module")
def backbone():
    return Backbone("efficientnet_lite0", input_size=64)


def _image(path, value: int) -> Sample:
    Image.fromarray(np.full((64, 64, 3), value, dtype=np.uint8)).save(path)
    return Sample(path=path, class_name="c", label=0)


def test_default_backbone_is_pretrained_offline(backbone):
    assert backbone.pretrained and backbone.channels == (24, 40, 112)
    assert backbone.strides == (4, 8, 16)
    assert not any(p.requires_grad for p in backbone.parameters())


def test_cached_features_equal_fresh_features_and_are_reused(tmp_path, backbone):
    sample = _image(tmp_path / "a.png", 100)
    cache = FeatureCache(backbone, tmp_path / "cache")
    first = cache.features([sample])
    spent = cache.extraction_seconds
    second = FeatureCache(backbone, tmp_path / "cache").features([sample])  # from disk
    again = cache.features([sample])  # from memory
    assert cache.extraction_seconds == spent
    x = torch.from_numpy(np.array(Image.open(sample.path).convert("RGB"))).permute(2, 0, 1)
    fresh = backbone(x[None].float() / 255)
    for a, b, c, d in zip(first, second, again, fresh, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c) and torch.allclose(a, d, atol=1e-3)


def test_changed_image_is_never_served_stale(tmp_path, backbone):
    path = tmp_path / "a.png"
    cache = FeatureCache(backbone, tmp_path / "cache")
    before = cache.features([_image(path, 100)])
    after = cache.features([_image(path, 200)])  # same path, new content
    assert not torch.equal(before[0], after[0])


def test_changed_setting_changes_the_key(tmp_path, backbone):
    other_size = Backbone("efficientnet_lite0", input_size=96)
    other_layers = Backbone("efficientnet_lite0", layers=[2, 4], input_size=64)
    keys = {FeatureCache(b, tmp_path).setting_key for b in (backbone, other_size, other_layers)}
    assert len(keys) == 3


def test_random_init_is_labelled_and_missing_weights_fail_clearly(tmp_path):
    random = Backbone("efficientnet_lite0", weights="none", input_size=64)
    assert not random.pretrained and random.weights_digest.startswith("random:")
    with pytest.raises(BackboneError, match="not found"):
        Backbone("efficientnet_lite0", weights=str(tmp_path / "missing.pth"), input_size=64)


def test_timm_backbone_by_name_with_random_init():
    net = Backbone("resnet18", weights="none", input_size=64)
    assert net.channels == (64, 128, 256) and net.strides == (4, 8, 16)
    assert len(net(torch.rand(1, 3, 64, 64))) == 3


def test_timm_backbone_loads_weights_from_a_local_file(tmp_path):
    import timm

    source = timm.create_model("resnet18", pretrained=False)
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    net = Backbone("resnet18", weights=str(tmp_path / "r18.pth"), input_size=64)
    assert net.pretrained
    assert torch.equal(net.net.conv1.weight, source.conv1.weight)
