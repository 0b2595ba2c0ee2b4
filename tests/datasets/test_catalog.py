"""Dataset names to readers, and the two flag errors the CLI reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from nfbench.datasets.base import DatasetError
from nfbench.datasets.catalog import open_dataset
from nfbench.datasets.synthetic import SyntheticSpec


def test_real_datasets_need_a_root(tmp_path: Path) -> None:
    for name in ("mvtec", "visa", "folder"):
        with pytest.raises(DatasetError, match=f"--data-root is required for {name}"):
            open_dataset(name, None, tmp_path)


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"unknown dataset 'mvtech'.*mvtec.*synthetic"):
        open_dataset("mvtech", tmp_path, tmp_path)


def test_folder_and_mvtec(tmp_path: Path) -> None:
    for sub in ("train/good", "test/good"):
        (tmp_path / "data" / "widget" / sub).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "data" / "widget" / sub / "0.png")
    assert open_dataset("folder", tmp_path / "data", tmp_path).name == "folder"
    assert open_dataset("mvtec", tmp_path / "data", tmp_path).class_names == ["widget"]
    with pytest.raises(DatasetError, match="not found"):
        open_dataset("mvtec", tmp_path / "nope", tmp_path)


def test_synthetic_ignores_root(tmp_path: Path) -> None:
    spec = SyntheticSpec(image_size=32, n_train=1, n_test_good=1, n_test_defect=1)
    ds = open_dataset("synthetic", Path("/does/not/matter"), tmp_path / "cache", spec)
    assert ds.name == "synthetic" and ds.root == tmp_path / "cache" / "synthetic"
