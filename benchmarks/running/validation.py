"""A validation split made from training data only, for choosing defaults without test data.

For every class of the scenario a seeded fraction of its normal *training* images is held out.
The held-out images are the validation normals; a second copy of each gets a synthetic defect
painted on it by the synthetic set's painters (scratch, stain, hole, cut-paste, Perlin blob),
with its exact mask. The split is written under the cache dir in MVTec layout, so it goes
through the normal reader, the file checks and the feature cache:

    <cache>/validation/<dataset>-<key>/<class>/train/good/*        the remaining training images
    <cache>/validation/<dataset>-<key>/<class>/test/good/*         the held-out normals
    <cache>/validation/<dataset>-<key>/<class>/test/<defect>/*.png the painted copies
    <cache>/validation/<dataset>-<key>/<class>/ground_truth/<defect>/*_mask.png

Training and held-out normals are symbolic links to the source files (copies where links are
not possible), so the feature cache, which keys on content, reuses the bench's features. The
key hashes the split settings and every source file's path, size and mtime: the split is
regenerated only when an input changes. No test folder (or VisA test row) is ever read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nfbench.datasets.base import Dataset, DatasetError, list_images, read_pixels
from nfbench.datasets.files import atomic_write
from nfbench.datasets.mvtec import mvtec_class_dirs, read_mvtec_layout
from nfbench.datasets.scenarios import Scenario, build_scenario
from nfbench.datasets.synthetic import (
    GENERATOR_VERSION,
    PAINTERS,
    Canvas,
    SyntheticSpec,
    composite_defect,
    defect_is_visible,
    ensure_synthetic,
)
from nfbench.datasets.visa import SPLIT_CSV, read_split_csv

SPLIT_VERSION = 1  # bump when the split or the painting changes, so splits regenerate
STAMP_NAME = ".nfbench-validation"
MAX_DRAWS = 20  # redraws of one painter before trying the next (as the synthetic set does)


@dataclass(frozen=True)
class SplitSpec:
    """How much of each class's training set is held out, and the seed that picks it."""

    fraction: float = 0.2
    min_holdout: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0 or self.min_holdout < 1:
            raise DatasetError(f"bad validation split {self}: 0 < fraction < 1, min_holdout >= 1")

    def holdout_count(self, n: int) -> int:
        return max(self.min_holdout, int(round(self.fraction * n)))


@dataclass(frozen=True)
class ValidationSplit:
    """The written split: its MVTec-layout root, the scenario's tasks, and what was held out."""

    root: Path
    tasks: tuple[tuple[str, ...], ...]
    held_out: dict[str, list[Path]]  # source training images used for validation, per class
    kept: dict[str, list[Path]]  # source training images the model still trains on

    @property
    def tasks_text(self) -> str:
        """The tasks as `--tasks` spells them, so the split keeps the scenario's order."""
        return ";".join(",".join(task) for task in self.tasks)

    def dataset(self) -> Dataset:
        return read_mvtec_layout(self.root, name="validation")


# ---------------------------------------------------------------- training images only


def training_images(name: str, root: Path | None, cache_dir: Path) -> dict[str, list[Path]]:
    """Every class's normal training images, found without listing or opening a test folder."""
    key = name.strip().lower()
    if key == "synthetic":
        root = ensure_synthetic(Path(cache_dir) / "synthetic", SyntheticSpec())
    elif root is None:
        raise DatasetError(f"--data-root is required for {key}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data root not found: {root}")
    if key == "visa" and (root / SPLIT_CSV).is_file():
        table = read_split_csv(root / SPLIT_CSV)
        rows = table[(table["split"] == "train") & (table["label"] == "normal")]
        found: dict[str, list[Path]] = {}
        for obj, image in rows[["object", "image"]].itertuples(index=False):
            found.setdefault(obj, []).append(root / image)
        return {c: sorted(found[c]) for c in sorted(found)}
    classes = mvtec_class_dirs(root)
    if not classes:
        raise DatasetError(f"no classes found in {root} (expected <class>/train/good/ folders)")
    return {c: list_images(root / c / "train" / "good") for c in classes}


def split_class(
    paths: list[Path], class_name: str, spec: SplitSpec
) -> tuple[list[Path], list[Path]]:
    """(kept for training, held out for validation), seeded per class, both in name order."""
    ordered = sorted(paths)
    n_val = spec.holdout_count(len(ordered))
    if len(ordered) - n_val < 1:
        raise DatasetError(f"class '{class_name}' has {len(ordered)} training images: too few "
                           f"to hold out {n_val} for validation and still train")
    rng = np.random.default_rng([spec.seed, zlib.crc32(class_name.encode())])
    held = set(rng.choice(len(ordered), size=n_val, replace=False).tolist())
    return ([p for i, p in enumerate(ordered) if i not in held],
            [p for i, p in enumerate(ordered) if i in held])


# ---------------------------------------------------------------- painting


def paint_defect(
    image: np.ndarray, class_name: str, rng: np.random.Generator, first: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """(defective uint8, mask bool, defect name) for a uint8 (H, W) or (H, W, 3) image.

    The painters draw on a square canvas, so a non-square image is padded (the padding is no
    foreground, so defects start inside the image) and cropped back. Outside the mask the
    result equals the input; grayscale stays grayscale. Tries `first`, then the other painters.
    """
    gray = image.ndim == 2
    rgb = np.repeat(image[..., None], 3, axis=2) if gray else image
    h, w = rgb.shape[:2]
    size = max(h, w)
    clean = np.zeros((size, size, 3), np.uint8)
    clean[:h, :w] = rgb
    fg = np.zeros((size, size), np.float32)
    fg[:h, :w] = 1.0
    g = clean.astype(np.float32) / 255.0
    names = list(PAINTERS)
    order = names[names.index(first):] + names[: names.index(first)]
    for defect in order:
        for _ in range(MAX_DRAWS):
            strength = float(rng.random())
            painted = PAINTERS[defect](Canvas(g, fg, class_name, size, rng), strength)
            bad, region = composite_defect(g, clean, painted)
            bad, region = bad[:h, :w], region[:h, :w]
            if gray:
                bad = np.where(region, np.round(bad.mean(axis=2)), image).astype(np.uint8)
            if defect_is_visible(bad, image, region):
                return bad, region, defect
    raise DatasetError(f"no visible synthetic defect could be painted on a '{class_name}' image")


# ---------------------------------------------------------------- writing the split


def _stat(path: Path) -> list:
    try:
        st = os.stat(path)
    except FileNotFoundError as err:
        raise DatasetError(f"image not found: {path}") from err
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]


def split_key(dataset: str, images: dict[str, list[Path]], spec: SplitSpec) -> str:
    """Digest of everything the split depends on: settings, painters, source files."""
    blob = json.dumps({
        "version": SPLIT_VERSION, "painters": GENERATOR_VERSION, "dataset": dataset,
        "spec": asdict(spec), "files": {c: [_stat(p) for p in ps] for c, ps in images.items()},
    }, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()


def _link(src: Path, dst: Path) -> None:
    """dst -> src as a symbolic link, swapped in atomically; an atomic copy where links fail."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.{os.getpid()}.{uuid.uuid4().hex}.lnk"
    try:
        os.symlink(Path(src).resolve(), tmp)
        os.replace(tmp, dst)
    except OSError:
        if tmp.is_symlink():
            tmp.unlink()
        atomic_write(dst, lambda t: shutil.copyfile(src, t))


def _save_png(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda t: Image.fromarray(array).save(t, format="PNG"))


def _write_class(out: Path, name: str, kept: list[Path], held: list[Path], spec: SplitSpec) -> None:
    painters = list(PAINTERS)
    offset = zlib.crc32(name.encode()) % len(painters)  # small hold-outs still vary by class
    for src in kept:
        _link(src, out / name / "train" / "good" / src.name)
    for j, src in enumerate(held):
        _link(src, out / name / "test" / "good" / src.name)
        rng = np.random.default_rng([spec.seed, zlib.crc32(name.encode()), 1, j])
        first = painters[(j + offset) % len(painters)]
        bad, mask, defect = paint_defect(read_pixels(src).to_uint8(), name, rng, first)
        _save_png(out / name / "test" / defect / f"{src.stem}.png", bad)
        _save_png(out / name / "ground_truth" / defect / f"{src.stem}_mask.png",
                  mask.astype(np.uint8) * 255)


def build_validation_split(
    dataset: str,
    data_root: Path | None,
    cache_dir: Path,
    scenario: str = "synthetic",
    tasks: str | None = None,
    spec: SplitSpec | None = None,
) -> ValidationSplit:
    """Write (or reuse) the validation split of the scenario's classes; see the module doc."""
    spec = spec or SplitSpec()
    images = training_images(dataset, data_root, cache_dir)
    plan: Scenario = build_scenario(scenario, list(images), tasks)
    chosen = {c: images[c] for c in plan.classes}
    for name, paths in chosen.items():
        if not paths:
            raise DatasetError(f"class '{name}' has no training images")
    parts = {c: split_class(paths, c, spec) for c, paths in chosen.items()}
    key = split_key(dataset.strip().lower(), chosen, spec)
    root = Path(cache_dir) / "validation" / f"{dataset.strip().lower()}-{key[:16]}"
    stamp = root / STAMP_NAME
    if not (stamp.is_file() and stamp.read_text().strip() == key):
        for name, (kept, held) in parts.items():
            _write_class(root, name, kept, held, spec)
        atomic_write(stamp, lambda t: Path(t).write_text(key + "\n"))  # last: the split is whole
    return ValidationSplit(root, plan.tasks, {c: p[1] for c, p in parts.items()},
                           {c: p[0] for c, p in parts.items()})
