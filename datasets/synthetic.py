"""The embedded default dataset: generated, seeded, offline, in MVTec layout.

Normal images: crops of the CC0 textures scikit-image ships (brick, grass, gravel), a woven
colour texture (plaid) and two drawn objects (capsule, circuit). Defects are painted onto a
fresh normal image, and the saved mask is exactly the region whose pixels were changed
(pixels outside it are bit-identical to the clean image). Defect size and contrast are drawn
per image, so some defects are subtle and some obvious. The normal images are drawn in
synthetic_draw.py; this module paints the defects and keeps the cached folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from nfbench.datasets.base import Dataset, DatasetError
from nfbench.datasets.mvtec import read_mvtec_layout
from nfbench.datasets.synthetic_draw import (
    CLASSES,
    box_sdf,
    coverage,
    fractal,
    grid,
    local_coords,
    object_edit,
    polyline_dist,
    render,
)

GENERATOR_VERSION = 2  # bump whenever the pictures change, so caches regenerate
STAMP_NAME = ".nfbench-synthetic"
DEFECTS: dict[str, tuple[str, ...]] = {
    "brick": ("hole", "perlin_blob", "scratch"),
    "capsule": ("misplaced_part", "scratch", "stain"),
    "circuit": ("cut_paste", "misplaced_part", "missing_part"),
    "grass": ("cut_paste", "perlin_blob", "stain"),
    "gravel": ("cut_paste", "hole", "scratch"),
    "plaid": ("hole", "perlin_blob", "stain"),
}
STAIN_COLOURS = np.array(
    [
        [0.45, 0.30, 0.15],
        [0.12, 0.12, 0.12],
        [0.70, 0.35, 0.10],
        [0.20, 0.25, 0.60],
        [0.92, 0.90, 0.80],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything the pictures depend on; its digest (with GENERATOR_VERSION) keys the cache."""

    image_size: int = 128
    n_train: int = 40
    n_test_good: int = 12
    n_test_defect: int = 18
    seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 32 or min(self.n_train, self.n_test_good, self.n_test_defect) < 1:
            raise DatasetError(f"bad synthetic spec {self}: image_size >= 32 and counts >= 1")

    def digest(self) -> str:
        text = json.dumps({"generator": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()

    def write(self, out: Path) -> None:
        """Generate the set into `out` (ensure_synthetic calls this on any spec it is given)."""
        generate(out, self)


DEFAULT_SPEC = SyntheticSpec()

# ---------------------------------------------------------------- defects
# A painter returns (content x, shape in [0, 1], opacity): the defective image is
# clean + (x - clean) * shape * opacity where shape > 0.3, and that region is the mask.
Painted = tuple[np.ndarray, np.ndarray, float]


@dataclass(frozen=True)
class Canvas:
    """The clean image a defect is painted on, with what a painter needs to know about it."""

    g: np.ndarray  # float RGB (S, S, 3)
    fg: np.ndarray  # foreground coverage (S, S): defects stay on the object
    name: str
    size: int
    rng: np.random.Generator


def _pick(fg: np.ndarray, rng: np.random.Generator, margin: float) -> tuple[float, float]:
    """A random point well inside the foreground (objects) or the image (textures)."""
    m = int(margin)
    inner = np.zeros_like(fg, bool)
    inner[m : fg.shape[0] - m, m : fg.shape[1] - m] = (
        fg[m : fg.shape[0] - m, m : fg.shape[1] - m] > 0.95
    )
    ys, xs = np.nonzero(inner)
    k = int(rng.integers(0, len(ys)))
    return float(xs[k]) + 0.5, float(ys[k]) + 0.5


def _blob(size: int, rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray:
    """An irregular disc: radius r with a Perlin-wobbled edge and a 1 px soft rim."""
    xx, yy = grid(size)
    d = np.hypot(xx - cx, yy - cy) / r + 0.3 * fractal(size, 6, rng)
    return np.clip((1 - d) * r + 0.5, 0, 1)


def _scratch(c: Canvas, s: float) -> Painted:
    g, fg, S, rng = c.g, c.fg, c.size, c.rng
    p0 = np.array(_pick(fg, rng, 0.1 * S))
    ang, length = rng.uniform(0, 2 * np.pi), S * (0.12 + 0.3 * rng.random())
    p2 = p0 + length * np.array([np.cos(ang), np.sin(ang)])
    p1 = (p0 + p2) / 2 + np.array([-np.sin(ang), np.cos(ang)]) * rng.normal(0, 0.25 * length)
    t = np.linspace(0, 1, 17)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * t * (1 - t) * p1 + t**2 * p2
    width = S / 128 * (0.9 + 1.6 * rng.random())
    shape = coverage(polyline_dist(S, pts) - width / 2) * (fg > 0.5)
    k = 0.12 + 0.5 * s  # lighter or darker by a fraction k
    target = 1.0 if rng.random() < 0.6 else 0.0
    return g * (1 - k) + target * k, shape, 1.0


def _stain(c: Canvas, s: float) -> Painted:
    g, fg, S, rng = c.g, c.fg, c.size, c.rng
    cx, cy = _pick(fg, rng, 0.06 * S)
    shape = _blob(S, rng, cx, cy, S * (0.03 + 0.08 * rng.random())) * (fg > 0.5)
    colour = STAIN_COLOURS[rng.integers(0, len(STAIN_COLOURS))]
    tex = g.mean(axis=2, keepdims=True)
    return 0.35 * g + 0.65 * colour * (0.7 + 0.6 * tex), shape, 0.35 + 0.6 * s


def _hole(c: Canvas, s: float) -> Painted:
    g, fg, S, rng = c.g, c.fg, c.size, c.rng
    cx, cy = _pick(fg, rng, 0.08 * S)
    r = S * (0.02 + 0.06 * rng.random())
    rim = max(1.0, 0.3 * r)
    xx, yy = grid(S)
    d = np.hypot(xx - cx, yy - cy) / r + 0.25 * fractal(S, 6, rng)
    dark = (0.04 + 0.1 * rng.random()) * (0.6 + 0.4 * np.clip(d, 0, 1))
    rim_col = g * 0.6 + (0.4 if rng.random() < 0.6 else 0.0)
    x = np.where((d < 1)[..., None], dark[..., None], rim_col)
    return x, np.clip((1 + rim / r - d) * r + 0.5, 0, 1), 0.55 + 0.45 * s


def _cut_paste(c: Canvas, s: float) -> Painted:
    g, fg, S, rng = c.g, c.fg, c.size, c.rng
    if rng.random() < 0.65:  # a patch of another class ...
        others = [k for k in CLASSES if k != c.name]
        src, _ = render(others[rng.integers(0, len(others))], S, [int(rng.integers(2**31))])
    else:  # ... or of this image, turned and moved
        src = np.rot90(g, int(rng.integers(1, 4)))[:, ::-1]
    cx, cy = _pick(fg, rng, 0.1 * S)
    u, v = local_coords(S, cx, cy, rng.uniform(0, np.pi))
    hw, hh = S * (0.04 + 0.08 * rng.random()), S * (0.03 + 0.06 * rng.random())
    sdf = (
        box_sdf(u, v, hw, hh)
        if rng.random() < 0.5
        else np.hypot(u / hw, v / hh) * min(hw, hh) - min(hw, hh)
    )
    return src, coverage(sdf), 0.7 + 0.3 * s


def _perlin_blob(c: Canvas, s: float) -> Painted:
    g, fg, S, rng = c.g, c.fg, c.size, c.rng
    cx, cy = _pick(fg, rng, 0.08 * S)
    xx, yy = grid(S)
    sig = S * (0.05 + 0.1 * rng.random())
    field = 0.55 * fractal(S, 4, rng) + np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sig**2))
    shape = np.clip((field - 0.6) * 8, 0, 1) * (fg > 0.5)
    mode = int(rng.integers(0, 4))
    if mode == 0:  # discoloured
        x = g * rng.uniform(0.55, 1.35, 3).astype(np.float32)
    elif mode == 1:  # darker or lighter
        x = g * (0.55 if rng.random() < 0.5 else 1.45)
    elif mode == 2:  # smeared: the texture is blurred away
        x = ndimage.uniform_filter(g, size=(max(3, S // 24), max(3, S // 24), 1))
    else:  # a foreign grain
        x = g.mean() + 0.5 * fractal(S, 16, rng)[..., None] * np.ones(3, np.float32)
    return x, shape, 0.35 + 0.65 * s


PAINTERS = {
    "scratch": _scratch,
    "stain": _stain,
    "hole": _hole,
    "cut_paste": _cut_paste,
    "perlin_blob": _perlin_blob,
}


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def composite_defect(
    g: np.ndarray, clean: np.ndarray, painted: Painted
) -> tuple[np.ndarray, np.ndarray]:
    """(defective uint8, mask bool) from a painter's output on float image g (clean = its
    uint8): exactly clean outside the mask. Shared with the validation split's painting."""
    x, shape, opacity = painted
    region = shape > 0.3
    blended = _to_u8(g + (x - g) * (shape * opacity)[..., None])
    return np.where(region[..., None], blended, clean), region


def defect_is_visible(bad: np.ndarray, clean: np.ndarray, region: np.ndarray) -> bool:
    """Enough pixels, most of them changed: else the draw is redrawn."""
    changed = (bad != clean).any(axis=2) if bad.ndim == 3 else bad != clean
    return bool(region.sum() >= 6 and changed[region].mean() > 0.7)


def make_pair(
    name: str, defect: str, size: int, seed: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean uint8, defective uint8, mask bool) for one test image. Outside the mask the two
    images are identical; a draw that changes too few pixels is redrawn."""
    rng = np.random.default_rng([*seed, 7])
    g, fg = render(name, size, seed)
    clean = _to_u8(g)
    for _ in range(20):
        s = float(rng.random())
        if defect in PAINTERS:
            painted = PAINTERS[defect](Canvas(g, fg, name, size, rng), s)
        else:
            x, _ = render(name, size, seed, object_edit(name, defect, size, rng, s))
            painted = (x, (np.abs(x - g).max(axis=2) > 0.5 / 255).astype(np.float32), 1.0)
        bad, region = composite_defect(g, clean, painted)
        if defect_is_visible(bad, clean, region):
            break
    return clean, bad, region


# ---------------------------------------------------------------- the cached folder


def _save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG", compress_level=1)  # speed over size


def generate(out: Path, spec: SyntheticSpec) -> None:
    """Write the whole set into `out` (MVTec layout). Every image has its own seed."""
    S = spec.image_size
    for name in CLASSES:
        base = [spec.seed, zlib.crc32(name.encode())]
        for i in range(spec.n_train):
            _save(
                out / name / "train" / "good" / f"{i:03d}.png",
                _to_u8(render(name, S, [*base, 0, i])[0]),
            )
        for i in range(spec.n_test_good):
            _save(
                out / name / "test" / "good" / f"{i:03d}.png",
                _to_u8(render(name, S, [*base, 1, i])[0]),
            )
        for i in range(spec.n_test_defect):
            kinds = DEFECTS[name]
            defect, j = kinds[i % len(kinds)], i // len(kinds)
            _, bad, mask = make_pair(name, defect, S, [*base, 2, i])
            _save(out / name / "test" / defect / f"{j:03d}.png", bad)
            _save(
                out / name / "ground_truth" / defect / f"{j:03d}_mask.png",
                mask.astype(np.uint8) * 255,
            )


def ensure_synthetic(cache_dir: Path, spec: SyntheticSpec = DEFAULT_SPEC) -> Path:
    """Generate the set into cache_dir unless its stamp matches the spec; return cache_dir.
    Any spec with `digest()` and `write(out)` works (synthetic_mvtec.MVTecSizedSpec too).

    Generation goes to a sibling temp folder that is renamed into place with the stamp in
    it, so an interrupted run never leaves a half set behind.
    """
    root = Path(cache_dir).expanduser()
    stamp, digest = root / STAMP_NAME, spec.digest()
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return root
    if root.exists() and not stamp.is_file() and any(root.iterdir()):
        raise DatasetError(f"refusing to overwrite {root}: not a synthetic cache (no {STAMP_NAME})")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        spec.write(tmp)
        (tmp / STAMP_NAME).write_text(digest + "\n")
        if root.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            os.replace(root, old / "set")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, root)
    except OSError:
        if not (stamp.is_file() and stamp.read_text().strip() == digest):
            raise  # not a race lost to another process writing the same set
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def read_synthetic(cache_dir: Path, spec: SyntheticSpec = DEFAULT_SPEC) -> Dataset:
    """The synthetic set as a Dataset, generated first when missing or stale."""
    return read_mvtec_layout(ensure_synthetic(cache_dir, spec), name="synthetic")
