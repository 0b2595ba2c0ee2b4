"""PatchCore: the greedy coreset, the chunked nearest-neighbour search, detection of a pasted
foreign patch on the real backbone, the continual memory banks, and the anomalib reference."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nfbench.models.backbone import Backbone, FeatureInfo
from nfbench.models.patchcore.anomaly_map import nearest_neighbours
from nfbench.models.patchcore.coreset import (
    coreset_size,
    greedy_coreset_indices,
    random_projection,
)
from nfbench.models.registry import create_model

TINY = FeatureInfo(channels=(4, 8), strides=(4, 8), input_size=32)


def _covering_radius(points: torch.Tensor, chosen: torch.Tensor) -> float:
    """Largest distance from any point to its nearest chosen point."""
    return float(torch.cdist(points, points[chosen]).min(dim=1).values.max())


def _rows_of(rows: torch.Tensor, bank: torch.Tensor) -> bool:
    """Every row of `rows` is (to rounding) a row of `bank`."""
    close = torch.isclose(rows[:, None, :], bank[None], rtol=0, atol=1e-6).all(dim=-1)
    return bool(close.any(dim=1).all())


def _features(n: int, seed: int, info: FeatureInfo = TINY) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, s, s, generator=generator)
            for c, s in zip(info.channels, info.sizes, strict=True)]


def _fit(model, task: int, strategy: str, feats: list[torch.Tensor]) -> None:
    model.start_task(task, [task], strategy)
    model.finish_task(feats, torch.full((feats[0].shape[0],), task))


def test_coreset_is_a_deterministic_subset_of_the_right_size():
    bank = torch.randn(500, 24, generator=torch.Generator().manual_seed(0))
    size = coreset_size(500, 0.1)
    idx = greedy_coreset_indices(bank, size, seed=3, projection_dim=8)
    assert size == 50 and idx.shape == (50,)
    assert idx.unique().numel() == 50 and 0 <= int(idx.min()) and int(idx.max()) < 500
    assert _rows_of(bank[idx], bank) and not _rows_of(bank[idx] + 1e-3, bank)
    assert torch.equal(idx, greedy_coreset_indices(bank, size, seed=3, projection_dim=8))
    assert not torch.equal(idx, greedy_coreset_indices(bank, size, seed=4, projection_dim=8))
    assert torch.equal(greedy_coreset_indices(bank, 600, seed=3), torch.arange(500))


def test_coreset_is_k_center_greedy_on_the_projection():
    """Each centre is the row farthest from all centres chosen before it, by a direct cdist
    over the same seeded projection and first row (Algorithm 1 of the paper)."""
    bank = torch.randn(300, 24, generator=torch.Generator().manual_seed(1))
    idx = greedy_coreset_indices(bank, 40, seed=5, projection_dim=8)
    generator = torch.Generator().manual_seed(5)
    points = random_projection(bank, 8, generator)
    expected = [int(torch.randint(300, (1,), generator=generator))]
    while len(expected) < 40:
        far = torch.cdist(points, points[expected]).min(dim=1).values
        far[expected] = -1.0
        expected.append(int(far.argmax()))
    assert idx.tolist() == expected


def test_model_bank_is_a_coreset_of_the_patch_features():
    torch.manual_seed(0)
    model = create_model("patchcore", TINY, coreset_ratio=0.25)
    feats = _features(6, seed=1)
    _fit(model, 0, "finetune", feats)
    patches = model._rows(model.embed(feats))  # 6 images x 8 x 8 patches
    assert model.memory_bank.shape == (96, 12) and model.bank_sizes == [96]
    assert _rows_of(model.memory_bank, patches)
    assert model.memory_bank.unique(dim=0).shape[0] == 96


def test_greedy_coreset_covers_better_than_random_subsets():
    # a dense 10 x 10 grid in the unit square plus five far, scattered outliers
    grid = torch.tensor([[i / 9, j / 9] for i in range(10) for j in range(10)])
    outliers = torch.tensor([[8.0, 0.0], [0.0, 8.0], [8.0, 8.0], [-8.0, 0.0], [0.0, -8.0]])
    cloud = torch.cat([grid, outliers])
    greedy = _covering_radius(cloud, greedy_coreset_indices(cloud, 10, seed=0))
    generator = torch.Generator().manual_seed(0)
    randoms = [_covering_radius(cloud, torch.randperm(105, generator=generator)[:10])
               for _ in range(50)]
    assert greedy < 1.0 < min(randoms)  # greedy takes every outlier; no random subset does
    # k-center greedy is a 2-approximation: it also beats the best random subset by far
    assert greedy < 0.5 * min(randoms)


def test_chunked_nearest_neighbours_equal_brute_force_cdist():
    queries = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [-1.0, 0.5, 2.0], [4.0, 4.0, 4.0],
                            [0.2, -0.3, 0.1], [9.0, -9.0, 0.0], [1.0, 1.0, 1.0]])
    bank = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.1, 0.0], [5.0, 5.0, 5.0], [-1.0, 0.0, 2.0],
                         [8.0, -8.0, 1.0]])
    expected = torch.cdist(queries, bank).min(dim=1)
    for chunk in (1, 2, 3, 4096):
        dist, idx = nearest_neighbours(queries, bank, chunk)
        assert torch.allclose(dist, expected.values, atol=1e-6)
        assert torch.equal(idx, expected.indices)
    assert torch.equal(idx, torch.tensor([1, 0, 3, 2, 1, 4, 0]))
    assert math.isclose(float(dist[3]), math.sqrt(3.0), rel_tol=1e-6)


def _texture(n: int, seed: int, size: int = 64) -> torch.Tensor:
    """Diagonal stripes with a random phase and a little noise, in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    phase = torch.rand(n, 1, 1, 1, generator=generator) * 2 * math.pi
    stripes = 0.5 + 0.3 * torch.sin((xs + ys).float() * 0.6 + phase)
    noise = 0.03 * torch.randn(n, 3, size, size, generator=generator)
    return (stripes.expand(n, 3, size, size) + noise).clamp(0, 1)


def test_pasted_foreign_patch_scores_above_a_normal_image():
    backbone = Backbone("efficientnet_lite0", input_size=64)
    torch.manual_seed(0)
    model = create_model("patchcore", backbone.feature_info)
    _fit(model, 0, "finetune", backbone(_texture(8, seed=1)))
    test = _texture(2, seed=2)
    test[1, :, 20:36, 24:40] = torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1)  # a red square
    with torch.no_grad():
        out = model.score(backbone(test), None)
    assert out.image_scores[0] < out.image_scores[1]
    inside = out.maps[1, 20:36, 24:40].mean()
    assert inside > out.maps[1, :, 48:].mean() and inside > out.maps[0, 20:36, 24:40].mean()


def test_own_strategy_keeps_every_coreset_and_finetune_replaces_it():
    tasks = [_features(4, seed=10 + t) for t in range(3)]
    torch.manual_seed(0)
    own = create_model("patchcore", TINY)
    torch.manual_seed(0)
    finetune = create_model("patchcore", TINY)
    seen = []
    for t, feats in enumerate(tasks):
        before = own.memory_bank.clone()
        _fit(own, t, "patchcore", feats)
        _fit(finetune, t, "finetune", feats)
        seen.append(finetune.memory_bank.shape[0])
        assert own.bank_sizes == seen  # one coreset per task, all kept
        assert own.memory_bank.shape[0] == sum(seen)
        assert own.state_dict()["memory_bank"].shape[0] == sum(seen)
        assert torch.equal(own.memory_bank[: before.shape[0]], before)  # old rows bit-identical
        assert torch.equal(own.memory_bank[before.shape[0]:], finetune.memory_bank)
        assert finetune.bank_sizes == [seen[-1]]  # finetune: this task's coreset only
    # finetune forgot: its bank is what a model that only ever saw the last task builds
    torch.manual_seed(0)
    fresh = create_model("patchcore", TINY)
    _fit(fresh, 2, "finetune", tasks[2])
    assert torch.equal(fresh.memory_bank, finetune.memory_bank)
    # task-agnostic scoring under own: the nearest row over every task's coreset
    with torch.no_grad():
        test = _features(3, seed=99)
        patches = own._rows(own.embed(test))
        per_task = torch.stack([nearest_neighbours(patches, rows, 64)[0]
                                for rows in own.memory_bank.split(own.bank_sizes)])
        expected = per_task.min(dim=0).values.view(3, -1).amax(dim=1)
        assert torch.allclose(own.score(test, None).image_scores, expected, atol=1e-6)


def test_model_has_no_trainable_parameters_and_a_zero_loss():
    model = create_model("patchcore", TINY)
    assert model.param_groups() == [] and model.is_flow is False
    assert model.own_strategy == "patchcore" and model.kind == "native"
    assert float(model.training_loss(_features(2, 0), torch.zeros(2), None).total) == 0.0
    with pytest.raises(RuntimeError, match="memory bank is empty"):
        model.score(_features(1, 0), None)


# ---- anomalib.patchcore ------------------------------------------------------------------

class _Taps(nn.Module):
    """A tiny fixed "backbone" for anomalib's own PatchcoreModel: two strided convs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.convs = nn.ModuleList([nn.Conv2d(3, 4, 4, stride=4), nn.Conv2d(3, 8, 8, stride=8)])

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {f"level{i}": conv(images) for i, conv in enumerate(self.convs)}


@pytest.mark.parametrize("neighbours", [1, 9])
def test_reference_agrees_with_anomalibs_own_model_and_the_native_one(neighbours: int):
    torch_model = pytest.importorskip("anomalib.models.image.patchcore.torch_model")
    taps = _Taps().requires_grad_(False)
    images = torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    images[8:, :, 8:16, 8:16] = 1.0  # two test images with a bright square
    feats = list(taps(images).values())
    torch.manual_seed(0)
    entry = create_model("anomalib.patchcore", TINY, num_neighbors=neighbours).eval()
    _fit(entry, 0, "finetune", [f[:6] for f in feats])
    bank = entry.net.memory_bank
    assert bank.shape == (coreset_size(6 * 64, 0.1), 12)

    # anomalib's PatchcoreModel, untouched but for its extractor, on the same memory bank
    plain = torch_model.PatchcoreModel(layers=["level0", "level1"], backbone="resnet18",
                                       pre_trained=False, num_neighbors=neighbours)
    plain.feature_extractor = taps
    plain.memory_bank = bank.clone()
    plain.eval()
    with torch.no_grad():
        expected = plain(images[6:])
        got = entry.score([f[6:] for f in feats], None)
    assert torch.allclose(got.image_scores, expected.pred_score, atol=1e-5)
    assert torch.allclose(got.maps, expected.anomaly_map[:, 0], atol=1e-5)
    assert got.image_scores[2:].min() > got.image_scores[:2].max()  # the squares stand out

    # the native model on the same bank: same embedding, distances and image score rule
    native = create_model("patchcore", TINY, reweight_neighbors=0 if neighbours == 1 else 9)
    native.memory_bank = bank.clone()
    with torch.no_grad():
        ours = native.score([f[6:] for f in feats], None).image_scores
    assert torch.allclose(ours, expected.pred_score, atol=1e-4)
