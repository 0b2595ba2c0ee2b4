"""Shared fixtures: a tiny MVTec-layout dataset and a fast run request on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nfbench.benchmarks.running.runner import RunRequest


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Tests never reach a model hub: timm must fail fast instead of retrying."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _texture(rng: np.random.Generator, size: int, tint: tuple[int, int, int]) -> np.ndarray:
    base = rng.normal(128, 20, (size, size, 1)) + np.array(tint)[None, None, :] - 64
    return np.clip(base, 0, 255).astype(np.uint8)


def make_tiny_mvtec(root: Path, classes=("alpha", "beta"), size: int = 64, n_train: int = 6,
                    n_good: int = 3, n_bad: int = 3, seed: int = 0) -> Path:
    """Textures with bright square defects and exact masks, in MVTec layout."""
    rng = np.random.default_rng(seed)
    for ci, name in enumerate(classes):
        tint = (60 + 60 * ci, 120, 180 - 60 * ci)
        train, good, bad = (root / name / "train/good", root / name / "test/good",
                            root / name / "test/spot")
        gt = root / name / "ground_truth/spot"
        for folder in (train, good, bad, gt):
            folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_train):
            Image.fromarray(_texture(rng, size, tint)).save(train / f"{i:03d}.png")
        for i in range(n_good):
            Image.fromarray(_texture(rng, size, tint)).save(good / f"{i:03d}.png")
        for i in range(n_bad):
            img = _texture(rng, size, tint)
            mask = np.zeros((size, size), dtype=np.uint8)
            y, x = rng.integers(4, size - 20, 2)
            img[y : y + 14, x : x + 14] = 255
            mask[y : y + 14, x : x + 14] = 255
            Image.fromarray(img).save(bad / f"{i:03d}.png")
            Image.fromarray(mask).save(gt / f"{i:03d}_mask.png")
    return root


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return make_tiny_mvtec(tmp_path / "data")


@pytest.fixture
def tiny_request(tmp_path: Path, tiny_data: Path) -> RunRequest:
    return RunRequest(
        models=["fastflow"], strategies=["finetune"], seeds=[0], scenario="folder:2x1",
        data_root=tiny_data, input_size=64, results_dir=tmp_path / "results",
        cache_dir=tmp_path / "cache",
        model_overrides={"fastflow": {"epochs": 2, "flow_steps": 2, "batch_size": 3}},
        measure_cost=False,
    )
