"""The MVTec-layout reader on a tiny fake tree, and the pixel loaders' error paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nfbench.datasets.base import DatasetError, Sample, load_image, load_mask
from nfbench.datasets.mvtec import read_mvtec_layout


def _img(path: Path, size: int = 16, mode: str = "RGB", value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), value if mode == "L" else (value, value, value)).save(path)
    return path


def _mask(path: Path, size: int = 16) -> Path:
    arr = np.zeros((size, size), np.uint8)
    arr[4:8, 4:8] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """carpet (RGB, masks present) and grid (grayscale, 'bent' has no masks)."""
    root = tmp_path / "mvtec"
    for i in range(2):
        _img(root / "carpet" / "train" / "good" / f"{i:03d}.png")
        _img(root / "carpet" / "test" / "color" / f"{i:03d}.png")
        _mask(root / "carpet" / "ground_truth" / "color" / f"{i:03d}_mask.png")
    _img(root / "carpet" / "test" / "good" / "000.png")
    _img(root / "grid" / "train" / "good" / "000.png", mode="L")
    _img(root / "grid" / "test" / "good" / "000.png", mode="L")
    _img(root / "grid" / "test" / "bent" / "000.png", mode="L")
    (root / "license.txt").write_text("not a class")
    (root / "notes").mkdir()  # a folder without train/ or test/ is not a class
    return root


def test_reads_classes_samples_and_masks(tree: Path) -> None:
    ds = read_mvtec_layout(tree)
    assert ds.name == "mvtec" and ds.class_names == ["carpet", "grid"]
    carpet = ds["carpet"]
    assert [s.path.name for s in carpet.train] == ["000.png", "001.png"]
    assert all(
        s.label == 0 and s.mask_path is None and s.class_name == "carpet" for s in carpet.train
    )
    assert [(s.defect_type, s.label) for s in carpet.test] == [
        ("color", 1),
        ("color", 1),
        ("good", 0),
    ]
    bad = carpet.test[0]
    assert bad.mask_path == tree / "carpet" / "ground_truth" / "color" / "000_mask.png"
    assert carpet.test[2].mask_path is None
    assert not carpet.grayscale and carpet.notes == []
    assert load_mask(bad, 16).sum() == 16
    assert load_mask(carpet.test[2], 8).shape == (8, 8) and not load_mask(carpet.test[2], 8).any()


def test_grayscale_class_and_missing_masks(tree: Path) -> None:
    grid = read_mvtec_layout(tree, name="folder")["grid"]
    assert grid.grayscale
    bent = [s for s in grid.test if s.defect_type == "bent"]
    assert len(bent) == 1 and bent[0].label == 1 and bent[0].mask_path is None
    assert len(grid.notes) == 1 and "'bent'" in grid.notes[0] and "no mask" in grid.notes[0]
    assert load_image(bent[0].path, 8).shape == (8, 8, 3)


def test_class_subset_and_unknown_class(tree: Path) -> None:
    assert read_mvtec_layout(tree, classes=["grid"]).class_names == ["grid"]
    with pytest.raises(DatasetError, match=r"unknown class 'tile'.*known: carpet, grid") as err:
        read_mvtec_layout(tree, classes=["grid", "tile"])
    assert str(tree) in str(err.value)


def test_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="not found") as err:
        read_mvtec_layout(missing)
    assert str(missing) in str(err.value)


def test_no_classes(tmp_path: Path) -> None:
    (tmp_path / "empty" / "stuff").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no classes") as err:
        read_mvtec_layout(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(err.value)


def test_empty_train(tree: Path) -> None:
    for p in (tree / "grid" / "train" / "good").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match="no training images") as err:
        read_mvtec_layout(tree)
    assert str(tree / "grid" / "train" / "good") in str(err.value)


def test_empty_test(tree: Path) -> None:
    _img(tree / "wood" / "train" / "good" / "000.png")
    (tree / "wood" / "test" / "good").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no test images") as err:
        read_mvtec_layout(tree)
    assert str(tree / "wood" / "test") in str(err.value)


def test_mask_of_the_wrong_size(tree: Path) -> None:
    mask = _mask(tree / "carpet" / "ground_truth" / "color" / "000_mask.png", size=20)
    sample = Sample(tree / "carpet" / "test" / "color" / "000.png", "carpet", 1, mask, "color")
    with pytest.raises(DatasetError, match="differs from image size") as err:
        load_mask(sample, 16)
    assert str(mask) in str(err.value)


def test_corrupt_image(tree: Path) -> None:
    bad = tree / "carpet" / "train" / "good" / "000.png"
    bad.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(DatasetError, match="unreadable image") as err:
        load_image(bad, 16)
    assert str(bad) in str(err.value)
    with pytest.raises(DatasetError, match="unreadable image"):
        read_mvtec_layout(tree)  # the grayscale probe reads the first training image


def test_missing_image_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_image(tmp_path / "gone.png", 16)
