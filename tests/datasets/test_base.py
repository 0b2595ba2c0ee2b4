"""Every image mode reads as a viewer shows it: one literal image per mode, exact expected arrays.

16-bit and 32-bit data are scaled by their range (never clipped to white), alpha is composited
onto black, EXIF orientation is applied, and masks follow the same rules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nfbench.datasets.base import DatasetError, Sample, load_image, load_mask, read_pixels
from nfbench.models.backbone import Backbone
from nfbench.models.feature_cache import images_to_tensor

ROTATE_90_CW = 6  # EXIF orientation: the viewer turns the stored pixels 90 degrees clockwise


def _save(img: Image.Image, path: Path, **params) -> Path:
    img.save(path, **params)
    return path


def _read(path: Path, mode: str) -> np.ndarray:
    """load_image of a square file at its own size (no resize), after checking its mode."""
    with Image.open(path) as img:
        assert img.mode == mode, f"the file was stored as {img.mode}, not {mode}"
        width, height = img.size
    assert width == height
    return load_image(path, width)


def _gray(values: list[list[int]]) -> np.ndarray:
    """Expected RGB of a gray image: the level replicated to three channels."""
    arr = np.array(values, dtype=np.uint8)
    return np.repeat(arr[..., None], 3, axis=2)


def test_mode_L(tmp_path: Path) -> None:
    img = Image.fromarray(np.array([[0, 1], [128, 255]], dtype=np.uint8))
    assert np.array_equal(_read(_save(img, tmp_path / "l.png"), "L"), _gray([[0, 1], [128, 255]]))


def test_mode_RGB(tmp_path: Path) -> None:
    rgb = np.array([[[1, 2, 3], [250, 128, 0]], [[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)
    path = _save(Image.fromarray(rgb), tmp_path / "rgb.png")
    assert np.array_equal(_read(path, "RGB"), rgb)


def test_mode_1(tmp_path: Path) -> None:
    img = Image.frombytes("1", (2, 2), bytes([0b10000000, 0b01000000]))
    path = _save(img, tmp_path / "one.png")
    assert np.array_equal(_read(path, "1"), _gray([[255, 0], [0, 255]]))


def test_mode_I16_is_scaled_by_65535_and_rounded(tmp_path: Path) -> None:
    # 65535 -> 255; 257 * 10 -> 10 exactly; 32768 -> 127.502 -> 128; 128 -> 0.498 -> 0
    values = np.array([[0, 65535], [257 * 10, 32768]], dtype=np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "i16.png")
    assert np.array_equal(_read(path, "I;16"), _gray([[0, 255], [10, 128]]))
    near = np.array([[128, 129], [65534, 1]], dtype=np.uint16)  # 0.498 -> 0, 0.502 -> 1
    assert np.array_equal(_read(_save(Image.fromarray(near), tmp_path / "r.png"), "I;16"),
                          _gray([[0, 1], [255, 0]]))


def test_mode_I_with_16_bit_values(tmp_path: Path) -> None:
    values = np.array([[0, 65535], [257 * 100, 70]], dtype=np.int32)  # all fit 0..65535
    path = _save(Image.fromarray(values), tmp_path / "i16.tif")
    assert np.array_equal(_read(path, "I"), _gray([[0, 255], [100, 0]]))


def test_mode_I_with_32_bit_values(tmp_path: Path) -> None:
    # non-negative beyond 16 bits: 0..2**31-1 spans black..white (2**30 -> 127.50000006 -> 128)
    values = np.array([[0, 2**31 - 1], [2**30, 70000]], dtype=np.int32)
    path = _save(Image.fromarray(values), tmp_path / "i32.tif")
    assert np.array_equal(_read(path, "I"), _gray([[0, 255], [128, 0]]))
    # a negative value: the whole signed range -2**31..2**31-1 spans black..white
    signed = np.array([[-(2**31), 2**31 - 1], [0, -1]], dtype=np.int32)
    path = _save(Image.fromarray(signed), tmp_path / "signed.tif")
    assert np.array_equal(_read(path, "I"), _gray([[0, 255], [128, 127]]))


def test_mode_F(tmp_path: Path) -> None:
    unit = np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32)  # [0, 1] spans black..white
    path = _save(Image.fromarray(unit), tmp_path / "unit.tif")
    assert np.array_equal(_read(path, "F"), _gray([[0, 128], [255, 64]]))
    levels = np.array([[0.0, 100.4], [255.0, 7.6]], dtype=np.float32)  # 8-bit levels as floats
    path = _save(Image.fromarray(levels), tmp_path / "levels.tif")
    assert np.array_equal(_read(path, "F"), _gray([[0, 100], [255, 8]]))
    other = np.array([[-1.0, 0.0], [3.0, 1.0]], dtype=np.float32)  # stretched min..max
    path = _save(Image.fromarray(other), tmp_path / "other.tif")
    assert np.array_equal(_read(path, "F"), _gray([[0, 64], [255, 128]]))
    bad = np.array([[0.0, np.nan], [1.0, 0.5]], dtype=np.float32)
    path = _save(Image.fromarray(bad), tmp_path / "nan.tif")
    with pytest.raises(DatasetError, match="unreadable image") as err:
        load_image(path, 2)
    assert str(path) in str(err.value)


def _palette_image(transparency: int | bytes | None) -> Image.Image:
    img = Image.new("P", (2, 2))
    img.putpalette([0, 0, 0, 200, 100, 50, 10, 20, 30])
    img.putdata([1, 2, 0, 1])
    if transparency is not None:
        img.info["transparency"] = transparency
    return img


def test_mode_P(tmp_path: Path) -> None:
    path = _save(_palette_image(None), tmp_path / "p.png")
    expected = np.array([[[200, 100, 50], [10, 20, 30]], [[0, 0, 0], [200, 100, 50]]], np.uint8)
    assert np.array_equal(_read(path, "P"), expected)


def test_mode_P_with_transparency(tmp_path: Path) -> None:
    path = _save(_palette_image(2), tmp_path / "p_index.png")  # index 2 fully transparent
    expected = np.array([[[200, 100, 50], [0, 0, 0]], [[0, 0, 0], [200, 100, 50]]], np.uint8)
    assert np.array_equal(_read(path, "P"), expected)
    # per-entry alpha: index 1 at 128/255 -> (200, 100, 50) * 128 / 255, rounded
    path = _save(_palette_image(bytes([255, 128, 255])), tmp_path / "p_alpha.png")
    expected = np.array([[[100, 50, 25], [10, 20, 30]], [[0, 0, 0], [100, 50, 25]]], np.uint8)
    assert np.array_equal(_read(path, "P"), expected)


def test_mode_RGBA_is_composited_on_black(tmp_path: Path) -> None:
    rgba = np.array([[[200, 100, 50, 255], [200, 100, 50, 0]],
                     [[255, 255, 255, 128], [10, 250, 90, 51]]], dtype=np.uint8)
    path = _save(Image.fromarray(rgba), tmp_path / "rgba.png")
    expected = np.array([[[200, 100, 50], [0, 0, 0]], [[128, 128, 128], [2, 50, 18]]], np.uint8)
    assert np.array_equal(_read(path, "RGBA"), expected)


def test_mode_LA_is_composited_on_black(tmp_path: Path) -> None:
    la = np.array([[[200, 255], [200, 0]], [[100, 51], [255, 128]]], dtype=np.uint8)
    path = _save(Image.fromarray(la), tmp_path / "la.png")
    assert np.array_equal(_read(path, "LA"), _gray([[200, 0], [20, 128]]))


def test_mode_CMYK(tmp_path: Path) -> None:
    cmyk = Image.frombytes("CMYK", (2, 2), bytes([0, 0, 0, 0, 255, 0, 0, 0,
                                                  0, 0, 0, 255, 0, 255, 255, 0]))
    path = _save(cmyk, tmp_path / "cmyk.tif")
    expected = np.array([[[255, 255, 255], [0, 255, 255]], [[0, 0, 0], [255, 0, 0]]], np.uint8)
    assert np.array_equal(_read(path, "CMYK"), expected)


def _rotated_png(path: Path, values: np.ndarray) -> Path:
    exif = Image.Exif()
    exif[0x0112] = ROTATE_90_CW
    return _save(Image.fromarray(values), path, exif=exif)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = np.array([[0, 40, 80], [120, 160, 200], [10, 20, 30]], dtype=np.uint8)
    path = _rotated_png(tmp_path / "rotated.png", stored)
    # as shown: the stored rows turned 90 degrees clockwise
    expected = [[10, 120, 0], [20, 160, 40], [30, 200, 80]]
    assert np.array_equal(_read(path, "L"), _gray(expected))
    assert np.array_equal(np.rot90(stored, k=-1), np.array(expected))


def test_the_decoder_reports_the_stored_mode_and_the_shown_size(tmp_path: Path) -> None:
    path = _rotated_png(tmp_path / "wide.png", np.zeros((2, 5), dtype=np.uint8))
    pixels = read_pixels(path)
    assert (pixels.mode, pixels.size) == ("L", (2, 5))


# --- masks: the same decoder, then MVTec's 0/255 and VisA's label-index rule ------------------


def _sample(tmp_path: Path, mask: Path, size: tuple[int, int] = (4, 4)) -> Sample:
    image = _save(Image.new("RGB", size), tmp_path / "image.png")
    return Sample(image, "c", 1, mask_path=mask, defect_type="d")


def _mask_values() -> np.ndarray:
    arr = np.zeros((4, 4), dtype=np.uint8)
    arr[1:3, 2:4] = 1
    return arr


def test_16_bit_masks(tmp_path: Path) -> None:
    expected = _mask_values().astype(bool)
    full = _save(Image.fromarray(_mask_values().astype(np.uint16) * 65535), tmp_path / "m.png")
    assert np.array_equal(load_mask(_sample(tmp_path, full), 4), expected)
    # a 16-bit label-index mask (0/1): 1/65535 is not 0, so it stays anomalous
    index = _save(Image.fromarray(_mask_values().astype(np.uint16)), tmp_path / "idx.png")
    assert np.array_equal(load_mask(_sample(tmp_path, index), 4), expected)


def test_8_bit_masks_keep_the_mvtec_and_visa_rules(tmp_path: Path) -> None:
    expected = _mask_values().astype(bool)
    mvtec = _mask_values() * 255
    mvtec[0, 0] = 100  # a faint pixel in a 0/255 mask is below the half-way threshold
    path = _save(Image.fromarray(mvtec), tmp_path / "mvtec.png")
    assert np.array_equal(load_mask(_sample(tmp_path, path), 4), expected)
    visa = _mask_values() * 2  # label index 2
    path = _save(Image.fromarray(visa), tmp_path / "visa.png")
    assert np.array_equal(load_mask(_sample(tmp_path, path), 4), expected)


def test_palette_mask(tmp_path: Path) -> None:
    img = Image.new("P", (4, 4))
    img.putpalette([0, 0, 0, 128, 0, 0])  # index 1 dark red, as VOC-style masks colour it
    img.putdata(_mask_values().ravel().tolist())
    path = _save(img, tmp_path / "palette.png")
    assert np.array_equal(load_mask(_sample(tmp_path, path), 4), _mask_values().astype(bool))


def test_rgba_mask_transparent_background_is_normal(tmp_path: Path) -> None:
    rgba = np.full((4, 4, 4), 255, dtype=np.uint8)  # white everywhere...
    rgba[..., 3] = _mask_values() * 255  # ...but opaque only on the defect
    path = _save(Image.fromarray(rgba), tmp_path / "rgba.png")
    assert np.array_equal(load_mask(_sample(tmp_path, path), 4), _mask_values().astype(bool))


def test_exif_rotated_mask_matches_the_shown_image(tmp_path: Path) -> None:
    stored = np.zeros((2, 4), dtype=np.uint8)  # stored 4 wide, 2 high; shown 2 wide, 4 high
    stored[0, 0] = 255
    path = _rotated_png(tmp_path / "mask.png", stored)
    sample = _sample(tmp_path, path, size=(2, 4))
    shown = np.rot90(stored, k=-1) > 0
    resized = load_mask(sample, 4)  # nearest: each shown column doubles
    assert np.array_equal(resized, np.repeat(shown, 2, axis=1))
    with pytest.raises(DatasetError, match="differs from image size") as err:
        load_mask(_sample(tmp_path, path, size=(4, 2)), 4)  # the stored size no longer fits
    assert str(path) in str(err.value)


def test_16_bit_image_gives_the_features_of_its_8_bit_rendering(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    eight = rng.integers(0, 256, (80, 80), dtype=np.uint8)
    # 257 * v is v at 16 bits; low-byte noise up to +-128 still rounds back to v
    sixteen = np.clip(eight.astype(np.int64) * 257 + rng.integers(-128, 129, eight.shape),
                      0, 65535).astype(np.uint16)
    path8 = _save(Image.fromarray(eight), tmp_path / "eight.png")
    path16 = _save(Image.fromarray(sixteen), tmp_path / "sixteen.png")
    assert Image.open(path16).mode == "I;16"
    img8, img16 = load_image(path8, 64), load_image(path16, 64)
    assert np.array_equal(img8, img16)
    backbone = Backbone("efficientnet_lite0", input_size=64)
    with torch.no_grad():
        feats8 = backbone(images_to_tensor([img8]))
        feats16 = backbone(images_to_tensor([img16]))
        white = backbone(images_to_tensor([np.full_like(img8, 255)]))  # what clipping gave
    for f8, f16, fw in zip(feats8, feats16, white, strict=True):
        assert torch.allclose(f8, f16, atol=1e-5)
        assert not torch.allclose(f8, fw, atol=1e-2)
