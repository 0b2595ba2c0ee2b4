"""The embedded synthetic set: deterministic, complete, cached, and its masks are honest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nfbench.datasets import synthetic
from nfbench.datasets.base import DatasetError, load_image, load_mask
from nfbench.datasets.synthetic import (
    DEFECTS,
    STAMP_NAME,
    SyntheticSpec,
    ensure_synthetic,
    make_pair,
    read_synthetic,
)
from nfbench.datasets.synthetic_draw import CLASSES, fractal, perlin

SMALL = SyntheticSpec(image_size=64, n_train=4, n_test_good=2, n_test_defect=4, seed=3)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_deterministic_across_folders(tmp_path: Path) -> None:
    a = _files(ensure_synthetic(tmp_path / "a", SMALL))
    b = _files(ensure_synthetic(tmp_path / "b", SMALL))
    assert len(a) > 6 * (4 + 2 + 4) and a == b


def test_dataset_contents(tmp_path: Path) -> None:
    ds = read_synthetic(tmp_path / "syn", SMALL)
    assert ds.name == "synthetic" and ds.class_names == sorted(CLASSES) and len(CLASSES) >= 6
    for name in ds.class_names:
        c = ds[name]
        assert len(c.train) == 4 and c.notes == [] and not c.grayscale
        good = [s for s in c.test if s.label == 0]
        bad = [s for s in c.test if s.label == 1]
        assert len(good) == 2 and len(bad) == 4
        assert all(s.mask_path is None for s in good + c.train)
        assert {s.defect_type for s in bad} <= set(DEFECTS[name])
        for s in bad:
            assert s.mask_path is not None and load_mask(s, 64).any(), s.path
            assert load_image(s.path, 64).shape == (64, 64, 3)


@pytest.mark.parametrize("name", CLASSES)
def test_masks_are_exactly_the_changed_pixels(name: str) -> None:
    for defect in DEFECTS[name]:
        for i in range(3):
            clean, bad, mask = make_pair(name, defect, 64, [11, i])
            assert clean.shape == bad.shape == (64, 64, 3) and mask.shape == (64, 64)
            assert mask.sum() >= 6, (name, defect, i)
            assert np.array_equal(clean[~mask], bad[~mask]), "pixels changed outside the mask"
            changed = (clean != bad).any(axis=2)
            assert changed[mask].mean() > 0.7, (name, defect, i)
            diff = np.abs(clean.astype(int) - bad.astype(int)).max(axis=2)
            assert diff[mask].mean() >= 3, (name, defect, i)


def test_defects_differ_in_strength(tmp_path: Path) -> None:
    """Neither all subtle nor all obvious: the mean change inside masks spans a wide range."""
    strengths = []
    for i in range(12):
        clean, bad, mask = make_pair("plaid", "stain", 64, [5, i])
        strengths.append(np.abs(clean.astype(int) - bad.astype(int))[mask].mean())
    assert max(strengths) > 3 * min(strengths)


def test_cache_is_reused_and_regenerated_on_spec_change(tmp_path: Path) -> None:
    root = ensure_synthetic(tmp_path / "syn", SMALL)
    marker = root / "marker.txt"
    marker.write_text("kept while the spec matches")
    assert ensure_synthetic(tmp_path / "syn", SMALL) == root and marker.exists()
    bigger = SyntheticSpec(image_size=64, n_train=5, n_test_good=2, n_test_defect=4, seed=3)
    ensure_synthetic(tmp_path / "syn", bigger)
    assert not marker.exists()
    assert len(list((root / "brick" / "train" / "good").iterdir())) == 5
    assert (root / STAMP_NAME).read_text().strip() == bigger.digest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]  # no temp folders left


def test_interrupted_generation_leaves_no_half_set(tmp_path: Path, monkeypatch) -> None:
    def boom(out: Path, spec: SyntheticSpec) -> None:
        (out / "brick").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "generate", boom)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic(tmp_path / "syn", SMALL)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(DatasetError, match="refusing"):
        ensure_synthetic(tmp_path / "mine", SMALL)


def test_spec_digest_and_validation() -> None:
    assert SMALL.digest() == SyntheticSpec(64, 4, 2, 4, 3).digest() != SyntheticSpec().digest()
    with pytest.raises(DatasetError):
        SyntheticSpec(image_size=8)
    with pytest.raises(DatasetError):
        SyntheticSpec(n_train=0)


def test_noise_is_seeded_and_bounded() -> None:
    a = perlin(32, 4, np.random.default_rng(1))
    assert np.array_equal(a, perlin(32, 4, np.random.default_rng(1)))
    assert not np.array_equal(a, perlin(32, 4, np.random.default_rng(2)))
    f = fractal(64, 4, np.random.default_rng(0))
    assert f.shape == (64, 64) and np.abs(f).max() <= 1.5 and f.std() > 0.05
