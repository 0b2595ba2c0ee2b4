"""Dataset records shared by every reader: a sample is a path plus labels, never pixels.

Readers only list files; pixels are read lazily (and features cached by content), so a
dataset of thousands of images costs nothing until a task needs it.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


# How stored pixel values map to 8-bit levels, for images and masks alike (decode_pixels):
# - 8-bit modes ("1", "L", "RGB", palette, CMYK, YCbCr...) keep their levels; palette and
#   CMYK/YCbCr go through Pillow's own conversion to RGB.
# - 16-bit grayscale ("I;16", "I;16B", "I;16L", "I;16N"): 0..65535 spans black to white.
# - "I" (32-bit signed; Pillow also uses it for 16-bit data from some formats): values that all
#   fit 0..65535 are 16-bit data; other non-negative values span 0..2**31-1; any negative value
#   means the whole signed range -2**31..2**31-1.
# - "F" (float): values in [0, 1] span 0..1; else values in [0, 255] are 8-bit levels; else
#   the image's own min..max is stretched to black..white. NaN or inf is an unreadable file.
# - Alpha ("RGBA", "LA", "PA", palette or "L"/"RGB" transparency) is composited onto BLACK, so
#   a transparent mask pixel reads as normal (0) and never as a defect.
# - EXIF orientation is applied first, so pixels (and sizes) are as a viewer shows them.
# Scaling rounds to the nearest level: an 8-bit image times 257 saved as 16-bit reads exactly
# as the 8-bit one.
EXIF_ORIENTATION = 0x0112
SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # transposes: width and height trade places
_I16_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


@dataclass(frozen=True)
class Pixels:
    """Decoded pixels (H, W) or (H, W, 3) as stored, plus the values that mean black and white.

    Keeping the stored values (not 8-bit) lets a 16-bit label-index mask (0/1/2) stay non-zero.
    """

    values: np.ndarray
    black: float
    white: float
    mode: str  # the file's mode, before any conversion (for reports)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL reports sizes."""
        return int(self.values.shape[1]), int(self.values.shape[0])

    def levels(self) -> np.ndarray:
        """Values as float64 in [0, 1] (0 = black, 1 = white)."""
        span = self.white - self.black
        return np.clip((self.values.astype(np.float64) - self.black) / span, 0.0, 1.0)

    def to_uint8(self) -> np.ndarray:
        """Rounded (not truncated) 8-bit levels; 8-bit input is returned as is."""
        if self.values.dtype == np.uint8 and (self.black, self.white) == (0, 255):
            return self.values
        # multiply before dividing: 257 * v * 255 / 65535 is exactly v in float64
        scaled = (self.values.astype(np.float64) - self.black) * 255.0 / (self.white - self.black)
        return np.floor(np.clip(scaled, 0.0, 255.0) + 0.5).astype(np.uint8)


def _composite_on_black(values: np.ndarray) -> np.ndarray:
    """(H, W, C+1) uint8 colour plus alpha -> (H, W, C) colour * alpha / 255, rounded."""
    color = values[..., :-1].astype(np.uint32)
    alpha = values[..., -1:].astype(np.uint32)
    return ((color * alpha + 127) // 255).astype(np.uint8)  # exact rounding: 255 is odd


def _int32_range(values: np.ndarray) -> tuple[float, float]:
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if low >= 0 and high <= 65535:
        return 0.0, 65535.0
    if low >= 0:
        return 0.0, float(2**31 - 1)
    return float(-(2**31)), float(2**31 - 1)


def _float_range(values: np.ndarray) -> tuple[float, float]:
    if not np.isfinite(values).all():
        raise ValueError("non-finite pixel values")
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if low >= 0.0 and high <= 1.0:
        return 0.0, 1.0
    if low >= 0.0 and high <= 255.0:
        return 0.0, 255.0
    return low, (high if high > low else low + 1.0)


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1 = as stored). A damaged EXIF block counts as none, as in viewers."""
    try:
        return int(img.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # any EXIF parse failure: the pixels themselves are fine
        return 1


def decode_pixels(img: Image.Image) -> Pixels:
    """Fully decode an opened image by the rules above: the one place images and masks are read.

    load() decodes every byte, so a truncated file fails here rather than mid-training.
    """
    mode = img.mode
    img.load()
    if _orientation(img) != 1:
        img = ImageOps.exif_transpose(img)
    transparent = "transparency" in img.info
    if img.mode == "1":
        img = img.convert("L")
    if img.mode in ("L", "RGB") and not transparent:
        return Pixels(np.asarray(img), 0.0, 255.0, mode)
    if img.mode in _I16_MODES:
        return Pixels(np.asarray(img).astype(np.uint16), 0.0, 65535.0, mode)
    if img.mode == "I":
        values = np.asarray(img)
        return Pixels(values, *_int32_range(values), mode)
    if img.mode == "F":
        values = np.asarray(img)
        return Pixels(values, *_float_range(values), mode)
    if img.mode in ("LA", "La") or (img.mode == "L" and transparent):
        return Pixels(_composite_on_black(np.asarray(img.convert("LA")))[..., 0], 0.0, 255.0, mode)
    if img.mode in _ALPHA_MODES or transparent:
        return Pixels(_composite_on_black(np.asarray(img.convert("RGBA"))), 0.0, 255.0, mode)
    return Pixels(np.asarray(img.convert("RGB")), 0.0, 255.0, mode)  # P, CMYK, YCbCr, ...


def _reason(err: BaseException) -> str:
    """Error class and the first line of its message, to keep the error on one line."""
    text = str(err).strip().splitlines()
    return f"{err.__class__.__name__}: {text[0]}" if text else err.__class__.__name__


def read_pixels(path: Path, what: str = "image") -> Pixels:
    """Open and decode one file; any failure is a one-line DatasetError naming it."""
    try:
        with Image.open(path) as img:
            return decode_pixels(img)
    except FileNotFoundError as err:
        raise DatasetError(f"{what} not found: {path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as err:
        raise DatasetError(f"unreadable {what}: {path} ({_reason(err)})") from err


def _png_has_late_exif(path: Path) -> bool:
    """Whether a PNG has an eXIf chunk after its pixel data, found by skipping chunk bodies:
    Pillow would decode every pixel to look for it, which costs a mask check 30 ms at 1 MP."""
    with open(path, "rb") as f:
        f.seek(8)  # PNG signature
        while len(head := f.read(8)) == 8:
            length, kind = struct.unpack(">I4s", head)
            if kind in (b"eXIf", b"IEND"):
                return kind == b"eXIf"
            f.seek(length + 4, os.SEEK_CUR)  # body and CRC
    return False


def oriented_size(path: Path) -> tuple[int, int]:
    """(width, height) as decode_pixels returns it (EXIF applied), from the headers only."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            if img.format == "PNG" and "exif" not in img.info and not _png_has_late_exif(path):
                return width, height
            if _orientation(img) in SWAPPING_ORIENTATIONS:
                return height, width
            return width, height
    except FileNotFoundError as err:
        raise DatasetError(f"image not found: {path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"unreadable image: {path} ({_reason(err)})") from err


def mask_size_error(mask_path: Path, mask_size: tuple[int, int],
                    image_size: tuple[int, int]) -> DatasetError:
    return DatasetError(f"mask size {mask_size} differs from image size {image_size}: {mask_path}")


def load_image(path: Path, size: int) -> np.ndarray:
    """Read an image as RGB uint8 (size, size, 3). Grayscale images are replicated to 3 channels."""
    levels = read_pixels(path).to_uint8()
    if levels.ndim == 2:
        levels = np.repeat(levels[:, :, None], 3, axis=2)
    img = Image.fromarray(levels)
    if img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8).copy()


def mask_from_pixels(pixels: Pixels) -> np.ndarray:
    """Bool mask at the file's size: a pixel's level is its brightest channel.

    MVTec masks are 0/255; VisA's are 0/label-index (1, 2, ...), so a mask with no level above
    one half is read as "non-zero means anomalous", else "above one half" (8-bit: > 127).
    """
    levels = pixels.levels()
    if levels.ndim == 3:
        levels = levels.max(axis=2)
    strong = levels > 0.5
    return strong if strong.any() else levels > 0


def load_mask(sample: Sample, size: int) -> np.ndarray:
    """Ground-truth mask as bool (size, size). Normal images get an all-False mask.

    The mask must have the same pixel size as its image, else it belongs to another file.
    """
    if sample.mask_path is None:
        return np.zeros((size, size), dtype=bool)
    pixels = read_pixels(sample.mask_path, "mask")
    image_size = oriented_size(sample.path)
    if pixels.size != image_size:
        raise mask_size_error(sample.mask_path, pixels.size, image_size)
    mask = Image.fromarray(mask_from_pixels(pixels).astype(np.uint8) * 255)
    if mask.size != (size, size):
        mask = mask.resize((size, size), Image.NEAREST)
    return np.asarray(mask) > 127


def list_images(folder: Path) -> list[Path]:
    """Image files in a folder, sorted by name for a deterministic order."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
