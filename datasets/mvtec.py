"""Reader for the MVTec AD folder layout, also used for VisA-converted trees, user folders
and the embedded synthetic set.

    root/<class>/train/good/*
    root/<class>/test/<good|defect>/*
    root/<class>/ground_truth/<defect>/<stem>_mask.png

Only file names are read (plus the header of one image per class, for the grayscale flag).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from nfbench.datasets.base import (
    ClassData,
    Dataset,
    DatasetError,
    Sample,
    list_images,
    select_classes,
)

GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg")


def is_grayscale_file(path: Path) -> bool:
    """True when the image is stored with one channel (MVTec's grid, screw, zipper)."""
    try:
        with Image.open(path) as img:
            return img.mode in GRAY_MODES
    except FileNotFoundError as err:
        raise DatasetError(f"image not found: {path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetError(f"unreadable image: {path} ({err.__class__.__name__})") from err


def find_mask(gt_dir: Path, stem: str) -> Path | None:
    """The mask of one test image: <stem>_mask.<ext> as MVTec names it, or <stem>.<ext>
    as some converted trees (VisA) do."""
    for name in (f"{stem}_mask", stem):
        for suffix in MASK_SUFFIXES:
            path = gt_dir / f"{name}{suffix}"
            if path.is_file():
                return path
    return None


def mvtec_class_dirs(root: Path) -> list[str]:
    """Sub-folders of root that look like an MVTec class (have train/ or test/), sorted."""
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and ((p / "train").is_dir() or (p / "test").is_dir())
    )


def read_mvtec_class(class_dir: Path) -> ClassData:
    """One class folder; raises DatasetError naming the folder when train or test is empty."""
    name = class_dir.name
    train_dir = class_dir / "train" / "good"
    train = [Sample(p, name, 0) for p in list_images(train_dir)]
    if not train:
        raise DatasetError(f"class '{name}' has no training images in {train_dir}")
    test_dir = class_dir / "test"
    test: list[Sample] = []
    notes: list[str] = []
    defect_dirs = sorted(p for p in test_dir.iterdir() if p.is_dir()) if test_dir.is_dir() else []
    for d in defect_dirs:
        images = list_images(d)
        if d.name == "good":
            test.extend(Sample(p, name, 0) for p in images)
            continue
        missing = 0
        for p in images:
            mask = find_mask(class_dir / "ground_truth" / d.name, p.stem)
            missing += mask is None
            test.append(Sample(p, name, 1, mask_path=mask, defect_type=d.name))
        if missing:
            notes.append(
                f"{missing} of {len(images)} '{d.name}' images have no mask in "
                f"{class_dir / 'ground_truth' / d.name}; pixel metrics skip them"
            )
    if not test:
        raise DatasetError(f"class '{name}' has no test images in {test_dir}")
    return ClassData(name, train, test, grayscale=is_grayscale_file(train[0].path), notes=notes)


def read_mvtec_layout(root: Path, name: str = "mvtec", classes: list[str] | None = None) -> Dataset:
    """Read every (or the requested) class of an MVTec-layout tree, in alphabetical order."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data root not found: {root}")
    found = mvtec_class_dirs(root)
    if not found:
        raise DatasetError(f"no classes found in {root} (expected <class>/train/good/ folders)")
    wanted = select_classes(found, classes, root)
    return Dataset(name, root, {c: read_mvtec_class(root / c) for c in wanted})
