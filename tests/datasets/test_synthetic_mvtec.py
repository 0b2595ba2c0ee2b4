"""`synthetic-mvtec`: MVTec AD's classes and counts, checked from the spec (nothing generated
at full size here), one class generated small, and the default `synthetic` set unchanged."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nfbench.datasets import catalog
from nfbench.datasets.base import DatasetError, load_mask
from nfbench.datasets.scenarios import MVTEC_CLASSES, build_scenario
from nfbench.datasets.synthetic import DEFAULT_SPEC, DEFECTS, SyntheticSpec, generate
from nfbench.datasets.synthetic_draw import CLASSES
from nfbench.datasets.synthetic_mvtec import (
    GRAYSCALE,
    KINDS,
    NAME,
    MVTecSizedSpec,
    read_synthetic_mvtec,
)

TEXTURES = ("carpet", "grid", "leather", "tile", "wood")
TINY = MVTecSizedSpec(image_size=64, classes=("grid",), limit=4)


def test_the_spec_has_mvtec_ad_classes_and_counts() -> None:
    counts = MVTecSizedSpec().counts()
    assert tuple(counts) == MVTEC_CLASSES
    assert counts["bottle"] == (209, 20, 63) and counts["toothbrush"] == (60, 12, 30)
    assert counts["transistor"] == (213, 60, 40) and counts["hazelnut"] == (391, 40, 70)
    train, good, bad = (sum(c[i] for c in counts.values()) for i in range(3))
    assert (train, good, bad, good + bad) == (3629, 467, 1258, 1725)
    assert MVTecSizedSpec().image_size == 256


def test_every_class_is_drawn_by_a_kind_of_its_type() -> None:
    assert set(KINDS) == set(MVTEC_CLASSES) and set(KINDS.values()) == set(CLASSES)
    for name, kind in KINDS.items():
        assert (kind in {"brick", "grass", "gravel", "plaid"}) == (name in TEXTURES), name
    assert GRAYSCALE == {"grid", "screw", "zipper"}


def test_spec_digest_and_validation() -> None:
    assert MVTecSizedSpec().digest() == MVTecSizedSpec().digest() != TINY.digest()
    assert MVTecSizedSpec().digest() != DEFAULT_SPEC.digest()
    assert TINY.counts() == {"grid": (4, 4, 4)}
    for bad in ({"classes": ("nope",)}, {"classes": ()}, {"image_size": 16}, {"limit": -1}):
        with pytest.raises(DatasetError, match="bad synthetic-mvtec spec"):
            MVTecSizedSpec(**bad)


def test_one_small_class_generates_deterministically(tmp_path: Path) -> None:
    ds = read_synthetic_mvtec(tmp_path / "a", TINY)
    assert ds.name == NAME and ds.class_names == ["grid"]
    grid = ds["grid"]
    assert len(grid.train) == 4 and len(grid.test) == 8 and grid.grayscale
    bad = [s for s in grid.test if s.label == 1]
    assert len(bad) == 4 and {s.defect_type for s in bad} <= set(DEFECTS[KINDS["grid"]])
    assert all(load_mask(s, 64).any() for s in bad)
    assert Image.open(grid.train[0].path).mode == "L"
    again = read_synthetic_mvtec(tmp_path / "b", TINY)
    for a, b in zip(grid.test, again["grid"].test, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes()


def test_the_catalog_opens_it_by_name(tmp_path: Path, monkeypatch) -> None:
    """Routing only: the full set would take minutes, so the reader gets the tiny spec."""
    assert NAME in catalog.KNOWN_DATASETS
    seen = []

    def tiny_reader(cache: Path, spec=None):
        seen.append(cache)
        return read_synthetic_mvtec(cache, TINY)

    monkeypatch.setattr(catalog, "read_synthetic_mvtec", tiny_reader)
    ds = catalog.open_dataset("synthetic-mvtec", None, tmp_path)
    assert seen == [tmp_path / "synthetic-mvtec"] and ds.class_names == ["grid"]
    full = build_scenario("synthetic-mvtec:14-1", list(MVTEC_CLASSES))
    assert full.name == "synthetic-mvtec:14-1" and [len(t) for t in full.tasks] == [14, 1]


def test_the_default_synthetic_set_is_unchanged(tmp_path: Path) -> None:
    """Same digest (existing caches stay valid) and the same pixels as before this set was
    added (decoded pixels of a small spec, so PNG encoder versions do not matter)."""
    assert DEFAULT_SPEC.digest() == "4e414fb66dcc3b19f0a35f82d76a65a1138cfeb6"
    generate(tmp_path, SyntheticSpec(image_size=32, n_train=1, n_test_good=1, n_test_defect=3))
    h = hashlib.sha256()
    for p in sorted(tmp_path.rglob("*.png")):
        h.update(str(p.relative_to(tmp_path)).encode())
        h.update(np.asarray(Image.open(p)).tobytes())
    assert h.hexdigest() == "ab19bffc108e6bac73d366b6913f5e3bb466d5b1a3eeada1fa27f0a609a9da08"
