"""`synthetic-mvtec`: an MVTec-AD-sized synthetic set, for scale tests without the real data.

The 15 MVTec AD classes with their real image counts (normal training images, normal test
images, defective test images per class: Bergmann et al., CVPR 2019, Table 1; 3629 training
and 1725 test images in all), each drawn at 256 px by one of the six kinds of the embedded
`synthetic` set (`synthetic_draw.py`, defects from `synthetic.py`, exact masks). Textures are
drawn by texture kinds, objects by object kinds (`KINDS`); grid, screw and zipper are saved
grayscale, as in MVTec AD. Every class has its own seeds (from its MVTec name), but classes
that share a kind share a distribution: the set measures time, memory and disk at MVTec
scale, not accuracy on fifteen distinct classes.

Generated deterministically on first use into `<cache>/synthetic-mvtec` (about three minutes
on one CPU core), through the same atomic, stamped cache as `synthetic`; the default
`synthetic` set is untouched by this module.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nfbench.datasets.base import Dataset, DatasetError
from nfbench.datasets.mvtec import read_mvtec_layout
from nfbench.datasets.sizes import MVTEC_AD_SPLITS
from nfbench.datasets.synthetic import (
    DEFECTS,
    GENERATOR_VERSION,
    _save,
    _to_u8,
    ensure_synthetic,
    make_pair,
)
from nfbench.datasets.synthetic_draw import render

NAME = "synthetic-mvtec"
MVTEC_SIZES = MVTEC_AD_SPLITS  # per class: (train good, test good, test defective)
# the synthetic kind that draws each class: textures by textures, objects by objects
KINDS: dict[str, str] = {
    # textures: woven carpet -> the woven plaid; the regular grid -> brick (a regular
    # pattern); wood -> grass (oriented fibres); leather and tile -> gravel (fine grain)
    "carpet": "plaid", "grid": "brick", "wood": "grass", "leather": "gravel", "tile": "gravel",
    # objects: one compact object per image -> capsule; assemblies whose defects are
    # missing, misplaced or flipped parts -> circuit
    "bottle": "capsule", "capsule": "capsule", "hazelnut": "capsule", "pill": "capsule",
    "screw": "capsule", "toothbrush": "capsule",
    "cable": "circuit", "metal_nut": "circuit", "transistor": "circuit", "zipper": "circuit",
}  # fmt: skip
GRAYSCALE: frozenset[str] = frozenset({"grid", "screw", "zipper"})


@dataclass(frozen=True)
class MVTecSizedSpec:
    """What the set depends on; `classes` and `limit` cut it down (tests), never the default."""

    image_size: int = 256
    seed: int = 0
    classes: tuple[str, ...] = tuple(MVTEC_SIZES)
    limit: int = 0  # at most this many images per split and class (0 = the real counts)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.classes) - set(MVTEC_SIZES))
        if unknown or not self.classes or self.image_size < 32 or self.limit < 0:
            raise DatasetError(f"bad {NAME} spec {self}: MVTec classes, image_size >= 32, "
                               "limit >= 0")

    def counts(self) -> dict[str, tuple[int, int, int]]:
        """(train good, test good, test defective) per class, in MVTec's alphabetical order."""
        cut = (lambda n: min(n, self.limit)) if self.limit else (lambda n: n)
        return {c: tuple(cut(n) for n in MVTEC_SIZES[c])  # type: ignore[misc]
                for c in sorted(self.classes)}

    def digest(self) -> str:
        text = json.dumps({"set": NAME, "generator": GENERATOR_VERSION, **asdict(self)},
                          sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()

    def write(self, out: Path) -> None:
        for name, counts in self.counts().items():
            write_class(out, name, counts, self.image_size, self.seed)


def _image(arr: np.ndarray, gray: bool) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).convert("L")) if gray else arr


def write_class(out: Path, name: str, counts: tuple[int, int, int], size: int,
                seed: int) -> None:
    """One class in MVTec layout, drawn by its kind; every image has its own seed."""
    kind, gray = KINDS[name], name in GRAYSCALE
    base = [seed, zlib.crc32(name.encode())]
    n_train, n_good, n_bad = counts
    for split, folder, n in ((0, "train", n_train), (1, "test", n_good)):
        for i in range(n):
            clean = _to_u8(render(kind, size, [*base, split, i])[0])
            _save(out / name / folder / "good" / f"{i:03d}.png", _image(clean, gray))
    kinds = DEFECTS[kind]
    for i in range(n_bad):
        defect, j = kinds[i % len(kinds)], i // len(kinds)
        _, bad, mask = make_pair(kind, defect, size, [*base, 2, i])
        _save(out / name / "test" / defect / f"{j:03d}.png", _image(bad, gray))
        _save(out / name / "ground_truth" / defect / f"{j:03d}_mask.png",
              mask.astype(np.uint8) * 255)


def read_synthetic_mvtec(cache_dir: Path, spec: MVTecSizedSpec | None = None) -> Dataset:
    """The set as a Dataset, generated first when missing or stale."""
    root = ensure_synthetic(Path(cache_dir), spec or MVTecSizedSpec())  # type: ignore[arg-type]
    return read_mvtec_layout(root, name=NAME)
