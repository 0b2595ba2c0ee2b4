"""Dataset records shared by every reader: a sample is a path plus labels, never pixels.

Readers only list files; pixels are read lazily (and features cached by content), so a
dataset of thousands of images costs nothing until a task needs it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class DatasetError(ValueError):
    """Bad input on disk or in a scenario: the CLI prints it as one line and exits 2."""


@dataclass(frozen=True)
class Sample:
    """One image of one class. `label` is 0 for normal, 1 for anomalous."""

    path: Path
    class_name: str
    label: int
    mask_path: Path | None = None
    defect_type: str = "good"

    @property
    def has_mask(self) -> bool:
        return self.mask_path is not None


@dataclass
class ClassData:
    """The train (normal only) and test images of one class."""

    name: str
    train: list[Sample]
    test: list[Sample]
    grayscale: bool = False
    notes: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if not self.train:
            raise DatasetError(f"class '{self.name}' has no training images")
        if not self.test:
            raise DatasetError(f"class '{self.name}' has no test images")


@dataclass
class Dataset:
    """Classes by name, in a fixed (alphabetical unless stated) order."""

    name: str
    root: Path
    classes: dict[str, ClassData]

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    def __getitem__(self, name: str) -> ClassData:
        if name not in self.classes:
            known = ", ".join(self.classes)
            raise DatasetError(f"unknown class '{name}' in dataset {self.name} (known: {known})")
        return self.classes[name]


def select_classes(found: list[str], requested: list[str] | None, where: object) -> list[str]:
    """The requested classes (sorted), or all found; an unknown one is a one-line error."""
    if requested is None:
        return found
    unknown = [c for c in requested if c not in found]
    if unknown:
        raise DatasetError(f"unknown class '{unknown[0]}' in {where} (known: {', '.join(found)})")
    return sorted(set(requested))


def file_digest(path: Path) -> str:
    """Content digest of a file: the feature cache keys on this, so an edited image never hits."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_image(path: Path, size: int) -> np.ndarray:
    """Read an image as RGB uint8 (size, size, 3). Grayscale images are replicated to 3 channels."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).copy()
    except FileNotFoundError as err:
        raise DatasetError(f"image not found: {path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetError(f"unreadable image: {path} ({err.__class__.__name__})") from err


def load_mask(sample: Sample, size: int) -> np.ndarray:
    """Ground-truth mask as bool (size, size). Normal images get an all-False mask.

    The mask must have the same pixel size as its image, else it belongs to another file.
    """
    if sample.mask_path is None:
        return np.zeros((size, size), dtype=bool)
    try:
        with Image.open(sample.mask_path) as m, Image.open(sample.path) as img:
            if m.size != img.size:
                raise DatasetError(
                    f"mask size {m.size} differs from image size {img.size}: {sample.mask_path}"
                )
            m = m.convert("L")
            if m.size != (size, size):
                m = m.resize((size, size), Image.NEAREST)
            arr = np.asarray(m)
            # MVTec masks are 0/255; VisA's are 0/label-index (1, 2, ...), so a mask whose
            # brightest value is below 128 is read as "non-zero means anomalous".
            return arr > (127 if arr.size and arr.max() > 127 else 0)
    except FileNotFoundError as err:
        raise DatasetError(f"mask not found: {sample.mask_path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DatasetError(f"unreadable mask: {sample.mask_path}") from err


def list_images(folder: Path) -> list[Path]:
    """Image files in a folder, sorted by name for a deterministic order."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
