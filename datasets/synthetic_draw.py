"""Drawing for the synthetic set: Perlin noise, signed-distance shapes, and the normal
images of each class (scikit-image textures, a woven plaid, a capsule, a circuit board).

Everything is a pure function of (class, size, seed), so a defective image can be drawn as
the same clean image with one edit (a part missing or moved).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

CLASSES: tuple[str, ...] = ("brick", "capsule", "circuit", "grass", "gravel", "plaid")

PLAID = np.array(
    [[0.10, 0.15, 0.35], [0.90, 0.85, 0.70], [0.10, 0.35, 0.20], [0.65, 0.12, 0.12]], np.float32
)
PLAID_BOUNDS = np.array([0.4, 0.5, 0.8], np.float32)  # stripe ends, as a fraction of the period

# ---------------------------------------------------------------- drawing primitives


@lru_cache(maxsize=4)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    return xx, yy


def perlin(size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """Gradient (Perlin) noise, roughly in [-1, 1], with `cells` lattice cells per side."""
    ang = rng.uniform(0, 2 * np.pi, (cells + 1, cells + 1))
    gy, gx = np.sin(ang).astype(np.float32), np.cos(ang).astype(np.float32)
    t = (np.arange(size, dtype=np.float32) + 0.5) * cells / size
    i = t.astype(int)
    f = t - i
    u = f * f * f * (f * (f * 6 - 15) + 10)

    def corner(di: int, dj: int) -> np.ndarray:
        r, c = i[:, None] + di, i[None, :] + dj
        return gy[r, c] * (f[:, None] - di) + gx[r, c] * (f[None, :] - dj)

    n0 = corner(0, 0) * (1 - u[None, :]) + corner(0, 1) * u[None, :]
    n1 = corner(1, 0) * (1 - u[None, :]) + corner(1, 1) * u[None, :]
    return (n0 * (1 - u[:, None]) + n1 * u[:, None]) * np.float32(np.sqrt(2))


def fractal(size: int, cells: int, rng: np.random.Generator, octaves: int = 3) -> np.ndarray:
    """Sum of Perlin octaves (each twice as fine, half as strong), roughly in [-1, 1]."""
    weights = [0.5**o for o in range(octaves)]
    total = sum(w * perlin(size, cells * 2**o, rng) for o, w in enumerate(weights))
    return total / np.float32(sum(weights))


def coverage(sdf: np.ndarray) -> np.ndarray:
    """Coverage of a shape from its signed distance (px): 1 inside, 0 outside, 1 px ramp."""
    return np.clip(0.5 - sdf, 0.0, 1.0)


def local_coords(
    size: int, cx: float, cy: float, ang: float, win: tuple[slice, slice] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates relative to (cx, cy), turned by ang; only inside `win` when given."""
    xx, yy = grid(size)
    if win is not None:
        xx, yy = xx[win], yy[win]
    c, s = np.float32(np.cos(ang)), np.float32(np.sin(ang))
    return (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c


def box_sdf(u: np.ndarray, v: np.ndarray, hw: float, hh: float, r: float = 0.0) -> np.ndarray:
    qx, qy = np.abs(u) - hw + r, np.abs(v) - hh + r
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0) - r


def polyline_dist(size: int, pts: np.ndarray) -> np.ndarray:
    """Distance (px) from every pixel to a polyline."""
    xx, yy = grid(size)
    best = np.full((size, size), np.inf, np.float32)
    for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:], strict=True):
        dx, dy = bx - ax, by - ay
        t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
        best = np.minimum(best, np.hypot(xx - ax - t * dx, yy - ay - t * dy))
    return best


def paint(img: np.ndarray, colour: np.ndarray | tuple, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return img * (1 - a) + np.asarray(colour, np.float32) * a


# ---------------------------------------------------------------- normal images


@lru_cache(maxsize=3)
def _texture_source(name: str) -> np.ndarray:
    import skimage.data  # imported late: only the generator needs scikit-image

    return getattr(skimage.data, name)().astype(np.float32) / 255.0


def _texture(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random 256 px crop of a scikit-image texture, flipped/rotated, resized to size."""
    src = _texture_source(name)
    y0, x0 = rng.integers(0, src.shape[0] - 256 + 1, 2)
    crop = src[y0 : y0 + 256, x0 : x0 + 256]
    k = (
        int(rng.integers(0, 4)) if name != "brick" else 2 * int(rng.integers(0, 2))
    )  # bricks stay level
    crop = np.rot90(crop, k)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    small = np.asarray(
        Image.fromarray(np.ascontiguousarray(crop), "F").resize((size, size), Image.BILINEAR)
    )
    small = small * np.float32(1 + rng.normal(0, 0.03)) + np.float32(rng.normal(0, 0.015))
    return np.repeat(small[..., None], 3, axis=2)


def _plaid(size: int, rng: np.random.Generator) -> np.ndarray:
    """A twill-woven tartan: warp colour by column, weft colour by row, jittered phase/colour."""
    xx, yy = grid(size)
    period = size / 2.5
    ox, oy = rng.uniform(0, period, 2)
    palette = PLAID * (1 + rng.normal(0, 0.03, PLAID.shape)).astype(np.float32)
    warp = palette[np.searchsorted(PLAID_BOUNDS, ((xx + ox) % period) / period)]
    weft = palette[np.searchsorted(PLAID_BOUNDS, ((yy + oy) % period) / period)]
    ix, iy = xx.astype(int), yy.astype(int)
    twill = ((ix + iy + int(rng.integers(0, 4))) // 2) % 4 < 2
    img = np.where(twill[..., None], warp, weft) * (0.9 + 0.1 * (ix % 2))[..., None]
    return img + 0.03 * fractal(size, 8, rng)[..., None]


def _capsule(
    size: int, rng: np.random.Generator, edit: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two-tone capsule with a printed mark on a dark, slightly mottled background."""
    S, edit = size, edit or {}
    img = np.float32([0.20, 0.22, 0.25]) + 0.02 * fractal(S, 4, rng)[..., None]
    cx, cy = S / 2 + rng.normal(0, 0.02 * S, 2)
    L, R = 0.30 * S, 0.15 * S
    u, v = local_coords(S, cx, cy, rng.normal(0, 0.04))
    body = coverage(np.hypot(np.maximum(np.abs(u) - L, 0), v) - R)
    tone = np.where(
        (u < 0)[..., None], np.float32([0.85, 0.35, 0.20]), np.float32([0.93, 0.90, 0.82])
    )
    shade = (
        1 - 0.35 * np.clip(v / R, -1, 1) ** 2 + 0.18 * np.exp(-(((v + 0.45 * R) / (0.18 * R)) ** 2))
    )
    img = paint(img, tone * (shade[..., None] * (1 + rng.normal(0, 0.02))), body)
    pu, pv = 0.5 * L + rng.normal(0, 0.01 * S), rng.normal(0, 0.01 * S)
    du, dv, turn = edit.get("print_move", (0.0, 0.0, 0.0))
    c, s = np.cos(turn), np.sin(turn)  # the mark turns around its own centre
    mu, mv = (u - pu - du) * c + (v - pv - dv) * s, -(u - pu - du) * s + (v - pv - dv) * c
    ring = np.abs(np.hypot(mu, mv) - 0.05 * S) - 0.011 * S
    bar = box_sdf(mu, mv, 0.035 * S, 0.011 * S)
    return paint(img, (0.22, 0.20, 0.30), coverage(np.minimum(ring, bar)) * body), body


CIRCUIT_PARTS = (
    ("chip", 0.36, 0.36),
    ("res", 0.76, 0.24),
    ("res", 0.76, 0.48),
    ("cap", 0.30, 0.76),
    ("led", 0.74, 0.76),
)
TRACES = ((0, 1), (0, 2), (0, 3), (2, 4), (3, 4))


def _rect(img: np.ndarray, colour: tuple, u: np.ndarray, v: np.ndarray, *box: float) -> np.ndarray:
    return paint(img, colour, coverage(box_sdf(u, v, *box)))


def _disc(img: np.ndarray, colour: tuple, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    return paint(img, colour, coverage(np.hypot(u, v) - r))


def _part(img: np.ndarray, kind: str, x: float, y: float, turn: float, S: int) -> np.ndarray:
    """One component centred at (x, y), turned by `turn`; each has a mark that shows a turn.
    Drawn inside a window around it (speed); coverage outside the window is zero anyway."""
    r = int(0.2 * S) + 2
    win = (slice(max(int(y) - r, 0), int(y) + r), slice(max(int(x) - r, 0), int(x) + r))
    img = img.copy()
    img[win] = _draw_part(img[win], kind, *local_coords(S, x, y, turn, win), S)
    return img


def _draw_part(img: np.ndarray, kind: str, u: np.ndarray, v: np.ndarray, S: int) -> np.ndarray:
    if kind == "chip":  # pins, body, pin-1 dot
        for k in range(4):
            for side in (-1, 1):
                pin = (u - (k - 1.5) * 0.06 * S, v - side * 0.12 * S, 0.013 * S, 0.03 * S)
                img = _rect(img, (0.70, 0.70, 0.72), *pin)
        img = _rect(img, (0.08, 0.08, 0.09), u, v, 0.14 * S, 0.11 * S, 0.01 * S)
        return _disc(img, (0.80, 0.80, 0.80), u + 0.09 * S, v + 0.06 * S, 0.018 * S)
    if kind == "res":  # beige body with three colour bands off-centre
        body = coverage(box_sdf(u, v, 0.08 * S, 0.03 * S, 0.012 * S))
        img = paint(img, (0.82, 0.72, 0.52), body)
        bands = ((-0.04, (0.45, 0.25, 0.1)), (-0.015, (0.05, 0.05, 0.05)), (0.015, (0.8, 0.1, 0.1)))
        for off, col in bands:
            img = paint(img, col, coverage(box_sdf(u - off * S, v, 0.007 * S, 0.03 * S)) * body)
        return img
    if kind == "cap":  # can with a polarity stripe on one side and a rim
        disc = coverage(np.hypot(u, v) - 0.075 * S)
        img = paint(img, (0.74, 0.75, 0.78), disc)
        img = paint(img, (0.30, 0.32, 0.40), disc * coverage(-(u + 0.045 * S)))
        ring = np.abs(np.hypot(u, v) - 0.05 * S) - 0.006 * S
        return paint(img, (0.55, 0.56, 0.60), coverage(ring))
    img = _rect(img, (0.85, 0.10, 0.10), u, v, 0.04 * S, 0.04 * S, 0.012 * S)  # LED
    return _disc(img, (1.0, 0.75, 0.75), u + 0.015 * S, v + 0.015 * S, 0.01 * S)


def _circuit(
    size: int, rng: np.random.Generator, edit: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A small board: chip, two resistors, capacitor, LED on pads, joined by copper traces."""
    S, edit = size, edit or {}
    img = np.float32([0.10, 0.35, 0.18]) * (1 + 0.08 * fractal(S, 6, rng))[..., None]
    jx, jy = rng.normal(0, 0.015 * S, 2)
    pos = [
        (x * S + jx + rng.normal(0, 0.006 * S), y * S + jy + rng.normal(0, 0.006 * S))
        for _, x, y in CIRCUIT_PARTS
    ]
    for a, b in TRACES:  # Manhattan traces: horizontal, then vertical
        (ax, ay), (bx, by) = pos[a], pos[b]
        img = paint(
            img,
            (0.75, 0.60, 0.30),
            coverage(polyline_dist(S, np.array([[ax, ay], [bx, ay], [bx, by]])) - 0.012 * S),
        )
    for x, y in pos:  # solder pads stay when a part goes missing or moves
        for side in (-1, 1):
            pad = local_coords(S, x + side * 0.075 * S, y, 0)
            img = _rect(img, (0.78, 0.78, 0.80), *pad, 0.025 * S, 0.03 * S)
    for k, ((kind, _, _), (x, y)) in enumerate(zip(CIRCUIT_PARTS, pos, strict=True)):
        if edit.get("missing") == k:
            continue
        dx, dy, turn = edit.get("move", {}).get(k, (0.0, 0.0, 0.0))
        img = _part(img, kind, x + dx, y + dy, turn, S)
    return img, np.ones((S, S), np.float32)


def render(
    name: str, size: int, seed: list[int], edit: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A clean image of a class (float RGB) and its foreground coverage; same seed, same image."""
    rng = np.random.default_rng(seed)
    if name == "capsule":
        return _capsule(size, rng, edit)
    if name == "circuit":
        return _circuit(size, rng, edit)
    img = _plaid(size, rng) if name == "plaid" else _texture(name, size, rng)
    return img, np.ones((size, size), np.float32)


def object_edit(name: str, defect: str, S: int, rng: np.random.Generator, s: float) -> dict:
    """How a missing or misplaced part changes the object's drawing."""
    if name == "capsule":  # the printed mark moves, or turns
        if rng.random() < 0.3:
            return {"print_move": (0.0, 0.0, rng.choice([0.5, 1.0, 1.5]) * np.pi)}
        d, a = S * (0.05 + 0.15 * s), rng.uniform(0, 2 * np.pi)
        return {
            "print_move": (
                d * np.cos(a) - (0.3 * S if rng.random() < 0.5 else 0),
                0.4 * d * np.sin(a),
                0.0,
            )
        }
    k = int(rng.integers(0, len(CIRCUIT_PARTS)))
    if defect == "missing_part":
        return {"missing": k}
    if rng.random() < 0.4:
        return {"move": {k: (0.0, 0.0, float(rng.choice([0.5, 1.0]) * np.pi))}}
    d, a = S * (0.03 + 0.08 * s), rng.uniform(0, 2 * np.pi)
    return {"move": {k: (d * np.cos(a), d * np.sin(a), 0.0)}}
