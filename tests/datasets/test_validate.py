"""Validation before training: every file fully decoded, masks sized, checks remembered."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nfbench.datasets import validate
from nfbench.datasets.base import DatasetError
from nfbench.datasets.mvtec import read_mvtec_layout
from nfbench.datasets.validate import check_dataset, find_problems, validate_dataset


@pytest.fixture()
def tree(tiny_data: Path) -> Path:
    """conftest's make_tiny_mvtec: alpha and beta, 6 train, 3 good and 3 'spot' test, 64 px."""
    return tiny_data


def _truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_a_good_tree_passes_and_reports_modes_and_sizes(tree: Path) -> None:
    ds = read_mvtec_layout(tree)
    validate_dataset(ds, ds.class_names)
    checks = check_dataset(ds, ds.class_names)
    assert len(checks) == 2 * (6 + 3 + 3)
    assert {(c.mode, c.size, c.problem) for c in checks} == {("RGB", (64, 64), None)}


def test_truncated_png_is_caught_by_a_full_decode(tree: Path) -> None:
    bad = _truncate(tree / "alpha" / "test" / "good" / "001.png")
    with Image.open(bad) as img:  # the header still opens: only load() finds the damage
        assert img.size == (64, 64)
    ds = read_mvtec_layout(tree)
    with pytest.raises(DatasetError, match="unreadable image") as err:
        validate_dataset(ds, ds.class_names)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    validate_dataset(ds, ["beta"])  # only the classes asked for are checked


def test_truncated_jpeg_is_caught(tree: Path) -> None:
    jpeg = tree / "alpha" / "train" / "good" / "009.jpg"
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(jpeg, quality=95)
    _truncate(jpeg, 0.6)
    ds = read_mvtec_layout(tree)
    with pytest.raises(DatasetError, match="truncated") as err:
        validate_dataset(ds, ["alpha"])
    assert str(jpeg) in str(err.value)


def test_mask_of_another_size_names_the_mask(tree: Path) -> None:
    mask = tree / "beta" / "ground_truth" / "spot" / "000_mask.png"
    Image.new("L", (32, 64)).save(mask)
    ds = read_mvtec_layout(tree)
    with pytest.raises(DatasetError, match=r"mask size \(32, 64\) differs") as err:
        validate_dataset(ds, ds.class_names)
    assert str(mask) in str(err.value)


def test_the_first_problem_in_sample_order_is_raised(tree: Path) -> None:
    later = _truncate(tree / "beta" / "train" / "good" / "000.png")
    first = _truncate(tree / "alpha" / "test" / "spot" / "001.png")
    ds = read_mvtec_layout(tree)
    with pytest.raises(DatasetError) as err:
        validate_dataset(ds, ds.class_names)
    assert str(first) in str(err.value) and str(later) not in str(err.value)


def test_find_problems_lists_every_one(tree: Path) -> None:
    bad = [_truncate(tree / "alpha" / "test" / "spot" / "001.png"),
           _truncate(tree / "beta" / "train" / "good" / "002.png")]
    mask = tree / "beta" / "ground_truth" / "spot" / "001_mask.png"
    Image.new("L", (8, 8)).save(mask)
    ds = read_mvtec_layout(tree)
    problems = find_problems(ds, ds.class_names)
    assert len(problems) == 3
    assert str(bad[0]) in problems[0] and str(bad[1]) in problems[1]
    assert str(mask) in problems[2] and "differs from image size" in problems[2]


def test_verified_files_are_not_decoded_again_until_they_change(
    tree: Path, tmp_path: Path, monkeypatch
) -> None:
    cache = tmp_path / "cache"
    ds = read_mvtec_layout(tree)
    validate_dataset(ds, ds.class_names, cache)
    assert (cache / validate.MEMO_NAME).is_file()

    decoded: list[Path] = []
    real = validate.check_sample

    def counting(sample):
        decoded.append(sample.path)
        return real(sample)

    monkeypatch.setattr(validate, "check_sample", counting)
    validate_dataset(ds, ds.class_names, cache)
    assert decoded == []
    assert {c.size for c in check_dataset(ds, ds.class_names, cache)} == {(64, 64)}

    bad = _truncate(tree / "beta" / "test" / "good" / "000.png")
    stat = bad.stat()
    os.utime(bad, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a later mtime
    with pytest.raises(DatasetError) as err:
        validate_dataset(ds, ds.class_names, cache)
    assert str(bad) in str(err.value) and decoded == [bad]


def test_empty_class_is_a_problem(tree: Path) -> None:
    ds = read_mvtec_layout(tree)
    ds["alpha"].train.clear()
    assert find_problems(ds, ["alpha"])[0] == "class 'alpha' has no training images"
    with pytest.raises(DatasetError, match="no training images"):
        validate_dataset(ds, ["alpha"])
