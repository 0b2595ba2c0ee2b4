"""The validation split: training images only, seeded hold-out, painted defects with exact masks."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nfbench.benchmarks.running.validation import (
    STAMP_NAME,
    SplitSpec,
    build_validation_split,
    paint_defect,
    split_class,
)
from nfbench.datasets.base import DatasetError, load_mask, read_pixels
from nfbench.datasets.synthetic import GENERATOR_VERSION, PAINTERS, make_pair


def _drop_test_folders(root: Path) -> None:
    """Delete every test and ground-truth folder: the split must not need them."""
    for name in ("alpha", "beta"):
        shutil.rmtree(root / name / "test")
        shutil.rmtree(root / name / "ground_truth")


def _build(root: Path, cache: Path, seed: int = 0):
    return build_validation_split("folder", root, cache, "folder:2x1", None,
                                  SplitSpec(fraction=0.2, min_holdout=2, seed=seed))


def test_split_holds_out_a_seeded_fraction_of_training_images(tiny_data, tmp_path):
    split = _build(tiny_data, tmp_path / "cache")
    again = _build(tiny_data, tmp_path / "other-cache")
    assert split.held_out == again.held_out  # deterministic, whatever the cache dir
    for name in ("alpha", "beta"):
        source = sorted((tiny_data / name / "train" / "good").iterdir())
        held, kept = split.held_out[name], split.kept[name]
        assert len(held) == 2  # max(2, round(0.2 * 6))
        assert sorted(held + kept) == source and not set(held) & set(kept)
        data = split.dataset()[name]
        assert [s.path.name for s in data.train] == [p.name for p in kept]
        normals = [s for s in data.test if s.label == 0]
        anomalies = [s for s in data.test if s.label == 1]
        assert sorted(s.path.name for s in normals) == [p.name for p in held]
        assert sorted(s.path.stem for s in anomalies) == [p.stem for p in held]
        for sample in normals:  # the held-out normals are the training files themselves
            assert sample.path.read_bytes() == (tiny_data / name / "train/good" /
                                                sample.path.name).read_bytes()
    assert split.tasks == (("alpha",), ("beta",))
    assert split.tasks_text == "alpha;beta"
    others = [_build(tiny_data, tmp_path / f"c{s}", seed=s).held_out for s in (1, 2, 3)]
    assert any(o != split.held_out for o in others)  # the seed picks the images


def test_synthetic_anomalies_have_exact_nonempty_masks(tiny_data, tmp_path):
    split = _build(tiny_data, tmp_path / "cache")
    for name in ("alpha", "beta"):
        anomalies = [s for s in split.dataset()[name].test if s.label == 1]
        assert {s.defect_type for s in anomalies} <= set(PAINTERS)
        for sample in anomalies:
            bad = read_pixels(sample.path).to_uint8()
            clean = read_pixels(tiny_data / name / "train/good" / sample.path.name).to_uint8()
            mask = load_mask(sample, bad.shape[0])
            assert mask.shape == bad.shape[:2] == clean.shape[:2]
            assert mask.sum() >= 6
            assert (bad[~mask] == clean[~mask]).all()  # exactly clean outside the mask
            assert (bad[mask] != clean[mask]).any(axis=-1).mean() > 0.7


def test_split_never_reads_a_test_folder(tiny_data, tmp_path):
    _drop_test_folders(tiny_data)
    split = _build(tiny_data, tmp_path / "cache")
    data = split.dataset()
    assert all(len(data[c].test) == 4 for c in ("alpha", "beta"))
    assert all("test" not in p.parts for ps in split.held_out.values() for p in ps)


def test_split_is_reused_until_an_input_changes(tiny_data, tmp_path):
    first = _build(tiny_data, tmp_path / "cache")
    stamp = first.root / STAMP_NAME
    before = stamp.stat().st_mtime_ns
    assert _build(tiny_data, tmp_path / "cache").root == first.root
    assert stamp.stat().st_mtime_ns == before  # nothing rewritten
    image = tiny_data / "alpha" / "train" / "good" / "000.png"
    pixels = np.asarray(Image.open(image)).copy()
    pixels[0, 0] ^= 1
    Image.fromarray(pixels).save(image)
    assert _build(tiny_data, tmp_path / "cache").root != first.root


def test_too_few_training_images_is_a_one_line_error():
    paths = [Path(f"{i}.png") for i in range(2)]
    with pytest.raises(DatasetError, match="too few"):
        split_class(paths, "alpha", SplitSpec())
    kept, held = split_class([Path(f"{i}.png") for i in range(40)], "alpha", SplitSpec())
    assert len(held) == 8 and len(kept) == 32


def test_paint_defect_keeps_a_nonsquare_grayscale_image_grayscale():
    rng = np.random.default_rng(0)
    image = rng.integers(60, 200, (48, 80)).astype(np.uint8)
    for first in PAINTERS:
        bad, mask, defect = paint_defect(image, "gizmo", np.random.default_rng(1), first)
        assert bad.shape == mask.shape == image.shape and bad.dtype == np.uint8
        assert defect in PAINTERS and mask.sum() >= 6
        assert (bad[~mask] == image[~mask]).all()


def test_synthetic_set_pictures_are_unchanged_by_the_shared_painting():
    """The generator version stayed, so its pictures must stay byte-identical."""
    assert GENERATOR_VERSION == 2
    clean, bad, mask = make_pair("brick", "scratch", 64, [0, 1, 2, 3])
    digest = hashlib.sha1(clean.tobytes() + bad.tobytes() + mask.tobytes()).hexdigest()
    assert digest == EXPECTED_PAIR_DIGEST


EXPECTED_PAIR_DIGEST = "83cacd406c8382208e96eb002d675a933266754e"  # before the refactor
