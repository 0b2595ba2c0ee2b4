"""The feature cache: computed once, never stale when an image or a setting changes."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nfbench.datasets.base import Sample
from nfbench.models.backbone import Backbone, BackboneError
from nfbench.models.feature_cache import FeatureCache, bytes_per_image


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


def _all(features) -> list[torch.Tensor]:
    return features.batch(slice(None))


@pytest.mark.parametrize("mode", ["disk", "memory", "recompute"])
def test_cached_features_equal_fresh_features_in_float16_and_are_reused(tmp_path, backbone,
                                                                        mode):
    sample = _image(tmp_path / "a.png", 100)
    cache = FeatureCache(backbone, tmp_path / "cache", mode=mode)
    first = _all(cache.features([sample]))
    computed = cache.computed_images
    again = _all(cache.features([sample]))
    x = torch.from_numpy(np.array(Image.open(sample.path).convert("RGB"))).permute(2, 0, 1)
    fresh = backbone(x[None].float() / 255)
    for a, c, d in zip(first, again, fresh, strict=True):
        assert a.dtype == torch.float32 and torch.equal(a, c)
        assert torch.equal(a, a.half().float())  # float16 values, served as float32
        assert torch.allclose(a, d, rtol=1e-3, atol=1e-3)  # float16's relative step: 2**-11
    assert computed == 1 and cache.computed_images == (2 if mode == "recompute" else 1)


def test_disk_store_is_read_back_by_another_cache_without_computing(tmp_path, backbone):
    sample = _image(tmp_path / "a.png", 100)
    first = _all(FeatureCache(backbone, tmp_path / "cache").features([sample]))
    other = FeatureCache(backbone, tmp_path / "cache")
    second = _all(other.features([sample]))
    assert other.computed_images == 0
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    files = list((tmp_path / "cache").rglob("*.f16"))
    assert len(files) == 1 and files[0].stat().st_size == bytes_per_image(backbone.feature_info)


def test_feature_set_reads_only_the_rows_asked_for(tmp_path, backbone):
    samples = [_image(tmp_path / f"{v}.png", v) for v in (10, 90, 170)]
    features = FeatureCache(backbone, tmp_path / "cache").features(samples)
    whole = _all(features)
    rows = torch.tensor([2, 0])
    assert len(features) == 3 and features[0].shape == (3, *whole[0].shape[1:])
    for level, view in enumerate(features):
        assert torch.equal(view[rows], whole[level][rows])
        assert torch.equal(view[1:3], whole[level][1:3])


def test_changed_image_is_never_served_stale(tmp_path, backbone):
    path = tmp_path / "a.png"
    cache = FeatureCache(backbone, tmp_path / "cache")
    before = _all(cache.features([_image(path, 100)]))
    after = _all(cache.features([_image(path, 200)]))  # same path, new content
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


def _extract_in_worker(cache_dir: str, paths: list[str]) -> tuple[int, dict[str, int]]:
    """A worker process: its own backbone and cache on the shared folder; returns how many
    images it computed and the inode of every stored file."""
    cache = FeatureCache(Backbone("efficientnet_lite0", input_size=64), Path(cache_dir))
    cache.show_progress = False
    cache.features([Sample(path=Path(p), class_name="c", label=0) for p in paths])
    inodes = {str(f): f.stat().st_ino for f in Path(cache_dir).rglob("*.f16")}
    return cache.computed_images, inodes


def test_two_workers_share_one_copy_written_once(tmp_path):
    paths = [str(_image(tmp_path / f"{v}.png", v).path) for v in range(0, 250, 25)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        results = list(pool.map(_extract_in_worker, [str(tmp_path / "cache")] * 2, [paths] * 2))
    computed = [n for n, _ in results]
    assert sum(computed) == len(paths)  # each image computed by one worker only
    first, second = (inodes for _, inodes in results)
    assert len(first) == len(paths) and first == second  # the same files, never rewritten
