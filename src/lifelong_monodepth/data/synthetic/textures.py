"""Procedural surface textures in world coordinates, box-filtered over each pixel's footprint.

Textures are attached to the world (not the image), so their projected frequency grows with
distance and slant: the texture gradient a network can learn depth from. Every periodic
pattern is integrated analytically over the pixel footprint, so distant floors and roads fade
to their mean colour instead of aliasing into moiré.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Color = tuple[float, float, float]


@dataclass
class Material:
    """Surface appearance: a pattern mixing ``a`` and ``b`` (sRGB in [0, 1]) at a world ``scale``."""

    pattern: str
    a: Color
    b: Color = (0.0, 0.0, 0.0)
    scale: float = 1.0
    params: dict = field(default_factory=dict)
    waves: np.ndarray | None = None  # (K, 4): frequency, angle, phase, amplitude of the noise
    emissive: bool = False  # lamps, windows: shown as is, not lit


def make_waves(
    rng: np.random.Generator, base_freq: float, octaves: int = 5, per_octave: int = 2
) -> np.ndarray:
    """Random sinusoids for ``noise``: several orientations per octave, amplitude falling like 1/f."""
    octave = np.repeat(np.arange(octaves), per_octave)
    freqs = base_freq * 2.0**octave * rng.uniform(0.75, 1.3, octave.size)
    angles = rng.uniform(0, np.pi, octave.size)
    phases = rng.uniform(0, 2 * np.pi, octave.size)
    amps = 1.0 / (1.0 + octave)
    return np.stack([freqs, angles, phases, amps], axis=1)


def surface_coords(points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2-D texture coordinates on axis-aligned faces: ``(s, t)`` with ``t`` vertical on walls."""
    axis = np.abs(normals).argmax(axis=1)
    s = np.where(axis == 0, points[:, 2], points[:, 0])
    t = np.where(axis == 1, points[:, 2], points[:, 1])
    return s, t, axis


def _integ(y: np.ndarray, duty: float | np.ndarray) -> np.ndarray:
    floor = np.floor(y)
    return floor * duty + np.minimum(y - floor, duty)


def pulse(x: np.ndarray, width: np.ndarray, duty: float | np.ndarray = 0.5) -> np.ndarray:
    """Box-filtered square wave (period 1, value 1 where ``frac(x) < duty``) over ``[x ± width/2]``."""
    width = np.maximum(width, 1e-4)
    return (_integ(x + width / 2, duty) - _integ(x - width / 2, duty)) / width


def lines(x: np.ndarray, period: float, line_width: float, footprint: np.ndarray) -> np.ndarray:
    """Coverage of thin lines (grout, seams) centred on multiples of ``period``."""
    duty = line_width / period
    return pulse(x / period + duty / 2, footprint / period, duty)


def fade(period: float | np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """1 where a feature of this period spans ≥3 pixels, 0 at ≤1 pixel: hides per-cell aliasing."""
    return np.clip(period / np.maximum(footprint, 1e-6) / 2 - 0.5, 0.0, 1.0)


def cell_hash(i: np.ndarray, j: np.ndarray | float = 0.0, seed: float = 0.0) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer cell."""
    x = np.sin(i * 127.1 + j * 311.7 + seed * 74.7 + 0.5) * 43758.5453
    return x - np.floor(x)


def noise(waves: np.ndarray, s: np.ndarray, t: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Sum of oriented sinusoids, each octave faded out once it is finer than the pixel footprint."""
    out = np.zeros_like(s)
    fp_min = float(footprint.min()) if footprint.size else 0.0
    for freq, angle, phase, amp in waves:
        if 2.0 * freq * fp_min >= 1.0:  # finer than every pixel: averages to zero
            continue
        weight = np.clip(1.0 - 2.0 * freq * footprint, 0.0, 1.0)
        out += amp * weight * np.sin(2 * np.pi * freq * (np.cos(angle) * s + np.sin(angle) * t) + phase)
    return out / np.sqrt(np.sum(waves[:, 3] ** 2)) * 0.75


def _mix(a: Color | np.ndarray, b: Color | np.ndarray, m: np.ndarray) -> np.ndarray:
    return np.asarray(a) * (1 - m[:, None]) + np.asarray(b) * m[:, None]


def _n(mat: Material, s: np.ndarray, t: np.ndarray, fp: np.ndarray) -> np.ndarray:
    return noise(mat.waves, s, t, fp) if mat.waves is not None else np.zeros_like(s)


def _flat(mat, s, t, fp, points, axis):
    return np.asarray(mat.a) * (1 + mat.params.get("var", 0.05) * _n(mat, s, t, fp))[:, None]


def _noise(mat, s, t, fp, points, axis):
    return _mix(mat.a, mat.b, np.clip(0.5 + 0.6 * _n(mat, s, t, fp), 0, 1))


def _stripes(mat, s, t, fp, points, axis):
    m = pulse(s / mat.scale, fp / mat.scale, mat.params.get("duty", 0.5))
    return _mix(mat.b, mat.a, m) * (1 + 0.04 * _n(mat, s, t, fp))[:, None]


def _checker(mat, s, t, fp, points, axis):
    ps, pt = pulse(s / mat.scale, fp / mat.scale), pulse(t / mat.scale, fp / mat.scale)
    m = ps * pt + (1 - ps) * (1 - pt)
    return _mix(mat.a, mat.b, m) * (1 + 0.05 * _n(mat, s, t, fp))[:, None]


def _tiles(mat, s, t, fp, points, axis):
    sc = mat.scale
    grout = 1 - (1 - lines(s, sc, 0.012 * sc / 0.3, fp)) * (1 - lines(t, sc, 0.012 * sc / 0.3, fp))
    var = (cell_hash(np.floor(s / sc), np.floor(t / sc)) - 0.5) * mat.params.get("var", 0.12) * fade(sc, fp)
    tile = np.asarray(mat.a) * (1 + var + 0.04 * _n(mat, s, t, fp))[:, None]
    return _mix(tile, mat.b, grout)


def _planks(mat, s, t, fp, points, axis):
    width, length = mat.scale, mat.params.get("length", 1.2)
    row = np.floor(s / width)
    offset = cell_hash(row, 3.0) * length
    col = np.floor((t + offset) / length)
    var = (cell_hash(row, col) - 0.5) * 0.35 * fade(width, fp)
    grain = noise(mat.waves, s * 6.0, t * 0.5, fp) if mat.waves is not None else 0.0
    plank = _mix(mat.a, mat.b, np.clip(0.5 + var + 0.3 * grain, 0, 1))
    seam = 1 - (1 - lines(s, width, 0.006, fp)) * (1 - lines(t + offset, length, 0.006, fp))
    return plank * (1 - 0.5 * seam)[:, None]


def _bricks(mat, s, t, fp, points, axis):
    h = mat.scale
    row = np.floor(t / h)
    shifted = s / (2 * h) + 0.5 * (row % 2)
    var = (cell_hash(np.floor(shifted), row) - 0.5) * 0.3 * fade(h, fp)
    brick = np.asarray(mat.a) * (1 + var + 0.05 * _n(mat, s, t, fp))[:, None]
    mortar = 1 - (1 - lines(t, h, 0.15 * h, fp)) * (1 - lines(shifted * 2 * h, 2 * h, 0.15 * h, fp))
    return _mix(brick, mat.b, mortar)


def _windows(mat, s, t, fp, points, axis):
    """Building facade: a grid of windows on vertical faces, plain roof on top."""
    px, py = mat.scale, mat.params.get("floor_height", 3.0)
    wx, wy = mat.params.get("window_frac", (0.5, 0.5))
    base = np.asarray(mat.a) * (1 + 0.06 * _n(mat, s, t, fp))[:, None]
    glass_var = 0.6 + 0.8 * cell_hash(np.floor(s / px), np.floor(t / py), 7.0)
    glass = np.asarray(mat.b) * (1 + (glass_var - 1) * fade(px, fp))[:, None]
    y0 = mat.params.get("ground_floor", 1.0)
    m = pulse(s / px, fp / px, wx) * pulse((t - y0) / py, fp / py, wy) * (t > y0 + 0.5)
    m = np.where(axis == 1, 0.0, m)
    return _mix(base, glass, m)


def _books(mat, s, t, fp, points, axis):
    """Bookshelf front: shelf boards (colour ``a``) holding rows of book spines of varied colour."""
    shelf = mat.params.get("shelf", 0.36)
    row = np.floor(t / shelf)
    book = np.floor(s / 0.04 + cell_hash(row, 5.0) * 7)
    h = cell_hash(book, row)
    palette = np.array(mat.params.get("palette", [(0.6, 0.1, 0.1), (0.1, 0.2, 0.5), (0.8, 0.7, 0.5)]))
    spine = (
        palette[(h * len(palette)).astype(int) % len(palette)]
        * (0.7 + 0.5 * cell_hash(book, row, 2.0))[:, None]
    )
    spine = _mix(spine, palette.mean(axis=0), 1 - fade(0.04, fp))
    height_frac = 0.6 + 0.3 * cell_hash(book, row, 9.0)
    board = (t / shelf - row) > height_frac * fade(0.04, fp) + (1 - fade(0.04, fp)) * 0.75
    front = np.where(board[:, None], np.asarray(mat.b), spine)
    return np.where((axis == mat.params.get("front_axis", 2))[:, None], front, np.asarray(mat.a))


def _road(mat, s, t, fp, points, axis):
    """Ground of the street: asphalt with lane markings, sidewalks, then grass or pavement."""
    p = mat.params
    x, z = points[:, 0], points[:, 2]
    n = _n(mat, x, z, fp)
    asphalt = np.asarray(p["asphalt"]) * (1 + 0.18 * n)[:, None]
    walk = np.asarray(p["sidewalk"]) * (1 + 0.06 * n)[:, None]
    grout = 1 - (1 - lines(x, 0.6, 0.02, fp)) * (1 - lines(z, 0.6, 0.02, fp))
    walk = _mix(walk, np.asarray(p["sidewalk"]) * 0.7, grout)
    verge = _mix(p["verge"], np.asarray(p["verge"]) * 0.6, np.clip(0.5 + 0.8 * n, 0, 1))
    half, sidewalk, lanes_half = p["road_half"], p["sidewalk_width"], p["lanes_half"]
    ax = np.abs(x)
    out = np.where((ax < half)[:, None], asphalt, np.where((ax < half + sidewalk)[:, None], walk, verge))
    paint = np.zeros_like(x)
    for k in range(1, p["lanes"]):  # dashed lane separators: 3 m dash, 6 m gap
        paint = np.maximum(
            paint,
            _paint_line(x, -lanes_half + k * p["lane_width"], 0.075, fp) * pulse(z / 9.0, fp / 9.0, 1 / 3),
        )
    for edge in (-lanes_half, lanes_half):  # solid edge lines
        paint = np.maximum(paint, _paint_line(x, edge, 0.06, fp))
    out = _mix(out, (0.85, 0.85, 0.82), paint)
    return _mix(out, (0.72, 0.71, 0.69), 0.6 * _paint_line(ax, half, 0.1, fp))


def _paint_line(x: np.ndarray, centre: float, half_width: float, fp: np.ndarray) -> np.ndarray:
    """Coverage of a single line of ``half_width`` at ``centre`` (box filter of the pixel footprint)."""
    fp = np.maximum(fp, 1e-4)
    lo = np.maximum(-half_width, x - centre - fp / 2)
    hi = np.minimum(half_width, x - centre + fp / 2)
    return np.clip(hi - lo, 0.0, None) / fp


PATTERNS: dict[str, Callable[..., np.ndarray]] = {
    "flat": _flat,
    "noise": _noise,
    "stripes": _stripes,
    "checker": _checker,
    "tiles": _tiles,
    "planks": _planks,
    "bricks": _bricks,
    "windows": _windows,
    "books": _books,
    "road": _road,
}


def albedo(mat: Material, points: np.ndarray, normals: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """sRGB albedo ``(M, 3)`` of ``mat`` at the given surface points."""
    s, t, axis = surface_coords(points, normals)
    return np.clip(PATTERNS[mat.pattern](mat, s, t, footprint, points, axis), 0.0, 1.0)
