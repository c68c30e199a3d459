"""Procedural scenes: NYU-like homes (N), KITTI-like streets (K) and ScanNet-like small rooms (S).

Each builder draws everything from the image's own RNG and returns the scene and the camera
that looks at it. The domains differ in layout, palette and camera on purpose, so that a
network can tell them apart from the RGB image alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lifelong_monodepth.data.synthetic.raycast import Camera, rotation
from lifelong_monodepth.data.synthetic.render import Light, Scene
from lifelong_monodepth.data.synthetic.specs import DomainSpec, intrinsics
from lifelong_monodepth.data.synthetic.textures import Color, Material, make_waves

Rect = tuple[float, float, float, float]  # x0, x1, z0, z1 (floor footprint)


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _jitter(rng: np.random.Generator, color: Color, amount: float = 0.06) -> Color:
    return tuple(float(c) for c in np.clip(np.asarray(color) * (1 + rng.uniform(-amount, amount, 3)), 0, 1))


def _camera(
    spec: DomainSpec, size: tuple[int, int], position: Sequence[float], yaw: float, pitch: float, roll: float
) -> Camera:
    fx, fy, cx, cy = intrinsics(spec, size)
    return Camera(
        fx,
        fy,
        cx,
        cy,
        size[0],
        size[1],
        np.asarray(position, dtype=float),
        rotation(np.radians(yaw), np.radians(pitch), np.radians(roll)),
    )


# --------------------------------------------------------------------------------------------
# Indoor rooms (N and S share the furniture kit; palettes, room sizes and cameras differ)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoomStyle:
    """What makes a home (N) look unlike a scanned office/dorm (S)."""

    width: tuple[float, float]
    depth: tuple[float, float]
    height: tuple[float, float]
    cam_z: tuple[float, float]
    yaw: float
    pitch: tuple[float, float]
    roll: float
    clearance: float
    walls: tuple[Color, ...]
    wall_patterns: tuple[str, ...]
    floors: tuple[tuple[str, Color, Color, float], ...]
    ceiling: tuple[str, Color, Color, float]
    fabrics: tuple[Color, ...]
    woods: tuple[Color, ...]
    light_color: Color
    rooms: tuple[str, ...]


HOME = RoomStyle(
    width=(3.6, 6.4),
    depth=(4.5, 7.5),
    height=(2.5, 3.1),
    cam_z=(0.3, 0.9),
    yaw=22.0,
    pitch=(-14.0, 3.0),
    roll=1.5,
    clearance=0.9,
    walls=(
        (0.86, 0.80, 0.68),
        (0.80, 0.72, 0.60),
        (0.90, 0.86, 0.76),
        (0.80, 0.62, 0.52),
        (0.72, 0.76, 0.62),
        (0.88, 0.76, 0.66),
        (0.76, 0.68, 0.72),
        (0.60, 0.68, 0.74),
    ),
    wall_patterns=("flat", "flat", "stripes", "noise"),
    floors=(
        ("planks", (0.55, 0.35, 0.18), (0.36, 0.21, 0.10), 0.16),
        ("planks", (0.68, 0.50, 0.30), (0.50, 0.34, 0.18), 0.2),
        ("checker", (0.85, 0.80, 0.70), (0.45, 0.30, 0.20), 0.45),
        ("tiles", (0.75, 0.62, 0.48), (0.45, 0.38, 0.30), 0.4),
    ),
    ceiling=("flat", (0.93, 0.90, 0.84), (0.0, 0.0, 0.0), 1.0),
    fabrics=(
        (0.62, 0.16, 0.12),
        (0.20, 0.38, 0.24),
        (0.70, 0.55, 0.25),
        (0.35, 0.25, 0.45),
        (0.80, 0.78, 0.70),
    ),
    woods=((0.36, 0.20, 0.10), (0.52, 0.33, 0.16), (0.25, 0.14, 0.08), (0.62, 0.45, 0.26)),
    light_color=(1.0, 0.92, 0.8),
    rooms=("bedroom", "living", "kitchen", "study"),
)

SCAN = RoomStyle(
    width=(2.6, 4.2),
    depth=(3.0, 4.8),
    height=(2.4, 2.75),
    cam_z=(0.25, 0.7),
    yaw=28.0,
    pitch=(-34.0, -6.0),
    roll=6.0,
    clearance=0.55,
    walls=(
        (0.88, 0.90, 0.92),
        (0.76, 0.78, 0.82),
        (0.70, 0.80, 0.90),
        (0.74, 0.86, 0.80),
        (0.92, 0.92, 0.88),
    ),
    wall_patterns=("flat", "flat", "flat", "bricks"),
    floors=(
        ("noise", (0.42, 0.44, 0.48), (0.30, 0.32, 0.38), 1.0),
        ("noise", (0.36, 0.40, 0.52), (0.24, 0.28, 0.38), 1.0),
        ("tiles", (0.80, 0.80, 0.78), (0.55, 0.55, 0.55), 0.3),
        ("planks", (0.76, 0.66, 0.52), (0.62, 0.52, 0.40), 0.12),
    ),
    ceiling=("tiles", (0.92, 0.93, 0.94), (0.60, 0.62, 0.64), 0.6),
    fabrics=((0.12, 0.12, 0.14), (0.18, 0.30, 0.60), (0.55, 0.58, 0.62), (0.10, 0.45, 0.50)),
    woods=((0.90, 0.90, 0.88), (0.62, 0.64, 0.66), (0.72, 0.62, 0.48), (0.30, 0.30, 0.32)),
    light_color=(0.90, 0.95, 1.0),
    rooms=("office", "office", "dorm", "lounge", "storage"),
)


class RoomBuilder:
    """Places furniture on the floor of a box room without overlaps or blocking the camera."""

    def __init__(
        self,
        rng: np.random.Generator,
        scene: Scene,
        style: RoomStyle,
        dims: tuple[float, float, float],
        cam_xz: tuple[float, float],
    ) -> None:
        self.rng, self.scene, self.style = rng, scene, style
        self.width, self.depth, self.height = dims
        self.cam_xz = cam_xz
        self.taken: list[Rect] = []

    def mat(
        self,
        pattern: str,
        a: Color,
        b: Color = (0.0, 0.0, 0.0),
        scale: float = 1.0,
        base_freq: float = 1.5,
        **params,
    ) -> int:
        waves = make_waves(self.rng, base_freq)
        return self.scene.material(
            Material(pattern, _jitter(self.rng, a), _jitter(self.rng, b), scale, params, waves)
        )

    def fabric(self) -> int:
        c = _pick(self.rng, self.style.fabrics)
        return self.mat("noise", c, tuple(0.75 * x for x in c), base_freq=4.0)

    def wood(self) -> int:
        c = _pick(self.rng, self.style.woods)
        return self.mat("flat", c, var=0.08, base_freq=3.0)

    def free(self, rect: Rect, margin: float = 0.05) -> bool:
        x0, x1, z0, z1 = rect
        half_w = self.width / 2
        if x0 < -half_w - 1e-6 or x1 > half_w + 1e-6 or z0 < 0 or z1 > self.depth + 1e-6:
            return False
        cx, cz = self.cam_xz
        dx, dz = max(x0 - cx, 0.0, cx - x1), max(z0 - cz, 0.0, cz - z1)
        if np.hypot(dx, dz) < self.style.clearance:
            return False
        return all(
            x1 + margin <= a0 or x0 >= a1 + margin or z1 + margin <= b0 or z0 >= b1 + margin
            for a0, a1, b0, b1 in self.taken
        )

    def against_wall(
        self, along: float, across: float, walls: str = "lrb", tries: int = 12
    ) -> tuple[Rect, str] | None:
        """A free footprint of ``along`` × ``across`` metres, its back to a wall (l, r or b = far wall)."""
        half_w = self.width / 2
        for _ in range(tries):
            wall = walls[int(self.rng.integers(len(walls)))]
            if wall == "b":
                x0 = self.rng.uniform(-half_w, half_w - along)
                rect = (x0, x0 + along, self.depth - across, self.depth)
            else:
                z0 = self.rng.uniform(0.3, self.depth - along)
                rect = (
                    (-half_w, -half_w + across, z0, z0 + along)
                    if wall == "l"
                    else (half_w - across, half_w, z0, z0 + along)
                )
            if self.free(rect):
                self.taken.append(rect)
                return rect, wall
        return None

    def in_room(self, sx: float, sz: float, tries: int = 12) -> Rect | None:
        half_w = self.width / 2
        for _ in range(tries):
            x0 = self.rng.uniform(-half_w + 0.4, half_w - sx - 0.4)
            z0 = self.rng.uniform(1.0, self.depth - sz - 0.4)
            rect = (x0, x0 + sx, z0, z0 + sz)
            if self.free(rect, margin=0.3):
                self.taken.append(rect)
                return rect
        return None

    # ---- furniture kit: each piece is a group of boxes ----------------------------------------

    def block(self, rect: Rect, y0: float, y1: float, mat: int) -> None:
        self.scene.box((rect[0], y0, rect[2]), (rect[1], y1, rect[3]), mat)

    def cabinet(self, rect: Rect, height: float) -> None:
        self.scene.begin()
        wood = self.wood()
        self.block(rect, 0.0, height, wood)
        top = self.mat("flat", _pick(self.rng, self.style.woods), var=0.1)
        self.block(_grow(rect, 0.02), height, height + 0.03, top)
        self.scene.end()

    def bookshelf(self, rect: Rect, wall: str, height: float) -> None:
        front_axis = 2 if wall == "b" else 0
        wood = _pick(self.rng, self.style.woods)
        books = [(0.6, 0.1, 0.1), (0.1, 0.2, 0.5), (0.8, 0.7, 0.5), (0.2, 0.45, 0.25), (0.9, 0.9, 0.85)]
        mat = self.scene.material(
            Material(
                "books",
                _jitter(self.rng, wood),
                _jitter(self.rng, wood),
                1.0,
                {"front_axis": front_axis, "palette": books, "shelf": self.rng.uniform(0.3, 0.42)},
            )
        )
        self.block(rect, 0.0, height, mat)

    def table(self, rect: Rect, height: float, top: int | None = None, legs: int | None = None) -> None:
        self.scene.begin()
        top = self.wood() if top is None else top
        legs = top if legs is None else legs
        x0, x1, z0, z1 = rect
        self.scene.box((x0, height - 0.04, z0), (x1, height, z1), top)
        for lx in (x0 + 0.03, x1 - 0.08):
            for lz in (z0 + 0.03, z1 - 0.08):
                self.scene.box((lx, 0.0, lz), (lx + 0.05, height - 0.04, lz + 0.05), legs)
        self.scene.end()

    def chair(self, cx: float, cz: float, back_side: str, seat_mat: int, leg_mat: int) -> None:
        rect = (cx - 0.22, cx + 0.22, cz - 0.22, cz + 0.22)
        if not self.free(rect, margin=0.02):
            return
        self.taken.append(rect)
        self.scene.begin()
        x0, x1, z0, z1 = rect
        self.scene.box((x0, 0.42, z0), (x1, 0.47, z1), seat_mat)
        back = {
            "n": (x0, x1, z1 - 0.05, z1),
            "s": (x0, x1, z0, z0 + 0.05),
            "e": (x1 - 0.05, x1, z0, z1),
            "w": (x0, x0 + 0.05, z0, z1),
        }[back_side]
        self.scene.box((back[0], 0.47, back[2]), (back[1], 0.92, back[3]), seat_mat)
        for lx in (x0, x1 - 0.04):
            for lz in (z0, z1 - 0.04):
                self.scene.box((lx, 0.0, lz), (lx + 0.04, 0.42, lz + 0.04), leg_mat)
        self.scene.end()

    def bed(self) -> None:
        placed = self.against_wall(self.rng.uniform(1.4, 1.8), self.rng.uniform(1.9, 2.1), walls="b")
        if placed is None:
            placed = self.against_wall(self.rng.uniform(1.9, 2.1), self.rng.uniform(1.2, 1.6), walls="lr")
        if placed is None:
            return
        rect, wall = placed
        self.scene.begin()
        frame, sheet = self.wood(), self.fabric()
        self.block(rect, 0.0, 0.3, frame)
        self.block(_shrink(rect, 0.03), 0.3, 0.55, sheet)
        head = _side(rect, wall, 0.08)
        self.block(head, 0.0, 1.05, frame)
        pillow = self.mat("flat", (0.92, 0.92, 0.90), var=0.05)
        self.block(_shrink(_side(rect, wall, 0.45), 0.15), 0.55, 0.68, pillow)
        self.scene.end()

    def sofa(self) -> None:
        placed = self.against_wall(self.rng.uniform(1.8, 2.6), 0.9, walls="lrb")
        if placed is None:
            return
        rect, wall = placed
        self.scene.begin()
        cloth = self.fabric()
        self.block(rect, 0.0, 0.45, cloth)
        self.block(_side(rect, wall, 0.25), 0.45, 0.85, cloth)
        for arm in _ends(rect, wall, 0.2):
            self.block(arm, 0.45, 0.65, cloth)
        self.scene.end()

    def picture(self, wall: str, frame_color: Color, bright: bool = False) -> None:
        """Something flat on a wall (picture, poster, whiteboard, window): a thin protruding box."""
        w, h = self.rng.uniform(0.4, 1.3), self.rng.uniform(0.35, 0.9)
        y0 = self.rng.uniform(1.0, max(1.05, self.height - h - 0.3))
        if bright:
            mat = self.scene.material(
                Material(
                    "noise",
                    (0.92, 0.95, 1.0),
                    (0.75, 0.85, 0.95),
                    1.0,
                    {},
                    make_waves(self.rng, 0.8),
                    emissive=True,
                )
            )
        else:
            a, b = tuple(self.rng.uniform(0.1, 0.9, 3)), tuple(self.rng.uniform(0.1, 0.9, 3))
            mat = self.mat(
                _pick(self.rng, ("noise", "stripes", "checker")),
                a,
                b,
                scale=self.rng.uniform(0.05, 0.2),
                base_freq=3.0,
            )
        frame = self.mat("flat", frame_color)
        half_w = self.width / 2
        self.scene.begin()
        if wall == "b":
            x0 = self.rng.uniform(-half_w + 0.2, half_w - w - 0.2)
            self.scene.box(
                (x0 - 0.04, y0 - 0.04, self.depth - 0.03), (x0 + w + 0.04, y0 + h + 0.04, self.depth), frame
            )
            self.scene.box((x0, y0, self.depth - 0.04), (x0 + w, y0 + h, self.depth), mat)
        else:
            z0 = self.rng.uniform(1.0, max(1.05, self.depth - w - 0.2))
            x_wall, sign = (-half_w, 1) if wall == "l" else (half_w, -1)
            self.scene.box(
                (x_wall, y0 - 0.04, z0 - 0.04), (x_wall + sign * 0.03, y0 + h + 0.04, z0 + w + 0.04), frame
            )
            self.scene.box((x_wall, y0, z0), (x_wall + sign * 0.04, y0 + h, z0 + w), mat)
        self.scene.end()

    def door(self, wall: str) -> None:
        half_w = self.width / 2
        mat = self.wood()
        if wall == "b":
            x0 = self.rng.uniform(-half_w + 0.1, half_w - 1.0)
            self.scene.box((x0, 0.0, self.depth - 0.04), (x0 + 0.9, 2.05, self.depth), mat)
        else:
            z0 = self.rng.uniform(1.2, max(1.25, self.depth - 1.0))
            x_wall, sign = (-half_w, 1) if wall == "l" else (half_w, -1)
            self.scene.box((x_wall, 0.0, z0), (x_wall + sign * 0.04, 2.05, z0 + 0.9), mat)

    def rug(self) -> None:
        rect = (
            self.rng.uniform(-1.5, -0.5),
            self.rng.uniform(0.5, 1.5),
            self.rng.uniform(1.2, 2.5),
            self.rng.uniform(3.0, 4.5),
        )
        rect = (
            max(rect[0], -self.width / 2 + 0.3),
            min(rect[1], self.width / 2 - 0.3),
            rect[2],
            min(rect[3], self.depth - 0.3),
        )
        a, b = _pick(self.rng, self.style.fabrics), _pick(self.rng, self.style.fabrics)
        mat = self.mat(
            _pick(self.rng, ("stripes", "checker")), a, b, scale=self.rng.uniform(0.1, 0.3), base_freq=4.0
        )
        self.block(rect, 0.0, 0.012, mat)


def _grow(rect: Rect, d: float) -> Rect:
    return (rect[0] - d, rect[1] + d, rect[2] - d, rect[3] + d)


def _shrink(rect: Rect, d: float) -> Rect:
    return _grow(rect, -d)


def _side(rect: Rect, wall: str, thickness: float) -> Rect:
    """The strip of ``rect`` touching its wall."""
    x0, x1, z0, z1 = rect
    return {
        "b": (x0, x1, z1 - thickness, z1),
        "l": (x0, x0 + thickness, z0, z1),
        "r": (x1 - thickness, x1, z0, z1),
    }[wall]


def _ends(rect: Rect, wall: str, thickness: float) -> list[Rect]:
    x0, x1, z0, z1 = rect
    if wall == "b":
        return [(x0, x0 + thickness, z0, z1), (x1 - thickness, x1, z0, z1)]
    return [(x0, x1, z0, z0 + thickness), (x0, x1, z1 - thickness, z1)]


def _furnish(b: RoomBuilder, kind: str, scan: bool) -> None:
    """Room-type specific furniture: homes for N, offices/dorms/storage for S."""
    rng = b.rng
    if kind in ("bedroom", "dorm"):
        b.bed()
        for _ in range(2):
            placed = b.against_wall(rng.uniform(0.9, 1.4), 0.55, walls="lrb")
            if placed:
                b.cabinet(placed[0], rng.uniform(0.5, 1.9))
    if kind in ("living", "lounge"):
        b.sofa()
        rect = b.in_room(rng.uniform(0.8, 1.3), rng.uniform(0.5, 0.8))
        if rect:
            b.table(rect, 0.42)
        placed = b.against_wall(rng.uniform(1.2, 1.8), 0.45, walls="lrb")
        if placed:
            b.cabinet(placed[0], 0.5)
            tv = b.mat("flat", (0.05, 0.05, 0.06), var=0.0)
            x0, x1, z0, z1 = _shrink(placed[0], 0.1)
            b.scene.box((x0, 0.53, z0), (x1, 1.2, z1), tv)
    if kind in ("kitchen",):
        counter = b.against_wall(rng.uniform(1.8, 3.0), 0.6, walls="lrb")
        if counter:
            rect, wall = counter
            b.cabinet(rect, 0.9)
            upper = b.wood()
            b.block(_side(rect, wall, 0.35), 1.5, 2.2, upper)
        rect = b.in_room(rng.uniform(1.0, 1.6), rng.uniform(0.8, 1.0))
        if rect:
            b.table(rect, 0.75)
            seat, legs = b.wood(), b.wood()
            x0, x1, z0, z1 = rect
            for cx in np.linspace(x0 + 0.3, x1 - 0.3, 2):
                b.chair(cx, z0 - 0.3, "s", seat, legs)
                b.chair(cx, z1 + 0.3, "n", seat, legs)
    if kind in ("study", "office", "dorm"):
        for _ in range(int(rng.integers(1, 3)) if scan else 1):
            placed = b.against_wall(rng.uniform(1.1, 1.6), 0.7, walls="lrb")
            if not placed:
                continue
            rect, wall = placed
            b.table(rect, 0.74, top=b.wood(), legs=b.mat("flat", (0.2, 0.2, 0.22)))
            if scan:  # a monitor and a box on the desk
                screen = b.mat("flat", (0.04, 0.04, 0.05), var=0.0)
                x0, x1, z0, z1 = _shrink(_side(rect, wall, 0.3), 0.25)
                b.scene.box((x0, 0.78, z0), (x1, 1.15, z1), screen) if wall == "b" else b.scene.box(
                    (x0, 0.78, z0 + 0.2), (x1, 1.15, z1 - 0.2), screen
                )
            cx, cz = (
                (0.5 * (rect[0] + rect[1]), rect[2] - 0.45)
                if wall == "b"
                else (
                    (rect[1] + 0.45, 0.5 * (rect[2] + rect[3]))
                    if wall == "l"
                    else (rect[0] - 0.45, 0.5 * (rect[2] + rect[3]))
                )
            )
            b.chair(
                cx, cz, {"b": "s", "l": "e", "r": "w"}[wall], b.fabric(), b.mat("flat", (0.15, 0.15, 0.15))
            )
    if kind in ("living", "study", "office", "storage") or rng.random() < 0.4:
        placed = b.against_wall(rng.uniform(0.8, 1.6), 0.35, walls="lrb")
        if placed:
            b.bookshelf(placed[0], placed[1], rng.uniform(1.2, 2.1))
    if scan and kind in ("storage", "office", "dorm", "lounge"):  # clutter: cardboard boxes, bins
        for _ in range(int(rng.integers(2, 7))):
            size = rng.uniform(0.3, 0.7)
            rect = b.against_wall(size, size * rng.uniform(0.7, 1.3), walls="lrb", tries=6) or (
                b.in_room(size, size),
                None,
            )
            if rect[0] is None:
                continue
            card = b.mat("noise", (0.62, 0.47, 0.30), (0.52, 0.38, 0.24), base_freq=5.0)
            b.block(rect[0], 0.0, size * rng.uniform(0.6, 1.2), card)
    for _ in range(int(rng.integers(1, 4))):
        placed = b.against_wall(rng.uniform(0.4, 1.0), rng.uniform(0.4, 0.6), walls="lrb", tries=4)
        if placed:
            b.cabinet(placed[0], rng.uniform(0.4, 1.0))


def build_room(
    rng: np.random.Generator, spec: DomainSpec, size: tuple[int, int], style: RoomStyle
) -> tuple[Scene, Camera]:
    """A furnished box room and a camera standing near one end, looking in."""
    width, depth, height = (rng.uniform(*style.width), rng.uniform(*style.depth), rng.uniform(*style.height))
    cam_y = rng.uniform(*spec.camera_height)
    cam_x = rng.uniform(-width / 2 + 0.9, width / 2 - 0.9)
    cam_z = rng.uniform(*style.cam_z)
    yaw = rng.uniform(-style.yaw, style.yaw) - 12.0 * cam_x / (width / 2)  # look towards the room centre
    pitch, roll = rng.uniform(*style.pitch), rng.uniform(-style.roll, style.roll)

    light_pos = np.array(
        [rng.uniform(-width / 4, width / 4), height - 0.35, rng.uniform(depth * 0.35, depth * 0.7)]
    )
    scan = style is SCAN
    light = Light(
        "point",
        light_pos,
        style.light_color,
        intensity=rng.uniform(2.2, 3.2),
        ambient=rng.uniform(0.25, 0.4),
        falloff=max(width, depth) * 0.6,
    )
    scene = Scene(light=light)
    b = RoomBuilder(rng, scene, style, (width, depth, height), (cam_x, cam_z))

    wall_color = _pick(rng, style.walls)
    pattern = _pick(rng, style.wall_patterns)
    wall = b.mat(
        pattern,
        wall_color,
        tuple(0.85 * c for c in wall_color),
        scale=rng.uniform(0.08, 0.25) if pattern != "bricks" else 0.2,
        base_freq=0.8,
        var=0.08,
        duty=rng.uniform(0.3, 0.7),
    )
    accent = wall if rng.random() < 0.6 else b.mat("flat", _pick(rng, style.walls), var=0.06, base_freq=0.8)
    floor_pattern, fa, fb, fscale = _pick(rng, style.floors)
    floor = b.mat(
        floor_pattern,
        fa,
        fb,
        scale=fscale,
        base_freq=2.0 if floor_pattern != "noise" else 6.0,
        length=rng.uniform(0.8, 1.6),
    )
    cpat, ca, cb, cscale = style.ceiling
    ceiling = b.mat(cpat, ca, cb, scale=cscale, base_freq=0.5, var=0.02)
    faces = [wall, wall, floor, ceiling, wall, accent]  # x-min, x-max, floor, ceiling, z-min, z-max
    scene.room = (np.array([-width / 2, 0.0, 0.0]), np.array([width / 2, height, depth]), faces)

    # ceiling light fixture just above the point light: a panel (S) or a lamp shade (N)
    lamp = scene.material(
        Material("flat", (1.0, 0.98, 0.92) if not scan else (0.97, 0.99, 1.0), emissive=True)
    )
    lx, lz = light_pos[0], light_pos[2]
    half = (0.3, 0.6) if scan else (0.18, 0.18)
    scene.box(
        (lx - half[0], height - (0.03 if scan else 0.25), lz - half[1]),
        (lx + half[0], height, lz + half[1]),
        lamp,
        shadow=False,
    )

    kind = _pick(rng, style.rooms)
    _furnish(b, kind, scan)
    if not scan and rng.random() < 0.5:
        b.rug()
    frame = (0.2, 0.15, 0.1) if not scan else (0.6, 0.6, 0.62)
    for wall_name in rng.permutation(list("lrb"))[: int(rng.integers(1, 4))]:
        choice = rng.random()
        if choice < 0.25:
            b.picture(str(wall_name), (0.9, 0.9, 0.9), bright=True)  # window
        elif choice < 0.45:
            b.door(str(wall_name))
        else:
            b.picture(str(wall_name), frame)
    if scan and rng.random() < 0.5:  # whiteboard
        board = b.mat("noise", (0.95, 0.95, 0.95), (0.85, 0.86, 0.88), base_freq=2.0)
        half_w = width / 2
        x0 = rng.uniform(-half_w + 0.2, max(-half_w + 0.25, half_w - 1.8))
        scene.box((x0, 0.9, depth - 0.03), (x0 + 1.5, 1.9, depth), board)
    camera = _camera(spec, size, (cam_x, cam_y, cam_z), yaw, pitch, roll)
    return scene, camera


# --------------------------------------------------------------------------------------------
# Streets (K)
# --------------------------------------------------------------------------------------------

FACADES: tuple[tuple[Color, Color], ...] = (
    ((0.78, 0.72, 0.60), (0.20, 0.24, 0.30)),
    ((0.62, 0.34, 0.26), (0.18, 0.20, 0.24)),
    ((0.66, 0.66, 0.64), (0.16, 0.20, 0.26)),
    ((0.88, 0.86, 0.80), (0.22, 0.28, 0.34)),
    ((0.72, 0.60, 0.44), (0.25, 0.25, 0.28)),
    ((0.55, 0.56, 0.58), (0.30, 0.36, 0.42)),
)
CAR_COLORS: tuple[Color, ...] = (
    (0.9, 0.9, 0.9),
    (0.08, 0.08, 0.09),
    (0.6, 0.62, 0.64),
    (0.55, 0.08, 0.06),
    (0.10, 0.18, 0.45),
    (0.35, 0.36, 0.38),
    (0.7, 0.7, 0.68),
    (0.15, 0.3, 0.2),
)


def _car(scene: Scene, rng: np.random.Generator, x: float, z: float, glass: int, black: int) -> None:
    """A car as chassis, body, cabin and four wheels (one shadow group)."""
    w, length = rng.uniform(1.7, 1.88), rng.uniform(3.9, 4.8)
    paint = scene.material(Material("flat", _jitter(rng, _pick(rng, CAR_COLORS), 0.05), params={"var": 0.0}))
    roof = rng.uniform(1.38, 1.55)
    scene.begin()
    x0, z0 = x - w / 2, z - length / 2
    scene.box((x0 + 0.05, 0.15, z0 + 0.1), (x0 + w - 0.05, 0.4, z0 + length - 0.1), black)
    scene.box((x0, 0.35, z0), (x0 + w, 0.95, z0 + length), paint)
    cab0 = z0 + length * rng.uniform(0.25, 0.35)
    scene.box((x0 + 0.1, 0.95, cab0), (x0 + w - 0.1, roof - 0.06, cab0 + length * 0.48), glass)
    scene.box((x0 + 0.1, roof - 0.06, cab0 + 0.05), (x0 + w - 0.1, roof, cab0 + length * 0.48 - 0.05), paint)
    for wx in (x0 - 0.02, x0 + w - 0.2):
        for wz in (z0 + 0.5, z0 + length - 1.1):
            scene.box((wx, 0.0, wz), (wx + 0.22, 0.62, wz + 0.62), black)
    scene.end()


def build_street(rng: np.random.Generator, spec: DomainSpec, size: tuple[int, int]) -> tuple[Scene, Camera]:
    """A straight road with lanes, sidewalks, buildings or trees on both sides, parked and moving cars."""
    lanes = int(rng.choice([2, 2, 3, 4]))
    lane_w = rng.uniform(3.0, 3.6)
    lanes_half = lanes * lane_w / 2
    parking = rng.uniform(2.0, 2.5) if rng.random() < 0.7 else 0.0
    road_half = lanes_half + parking
    sidewalk = rng.uniform(1.5, 3.5)
    sun_elev, sun_az = np.radians(rng.uniform(20, 60)), rng.uniform(0, 2 * np.pi)
    sun = np.array([np.cos(sun_elev) * np.sin(sun_az), np.sin(sun_elev), np.cos(sun_elev) * np.cos(sun_az)])
    overcast = rng.random() < 0.3
    light = Light(
        "sun",
        sun,
        (1.0, 0.96, 0.88),
        intensity=0.6 if overcast else rng.uniform(1.0, 1.3),
        ambient=0.75 if overcast else rng.uniform(0.35, 0.5),
    )
    sky = (
        ((0.82, 0.84, 0.86), (0.66, 0.69, 0.74))
        if overcast
        else (_jitter(rng, (0.78, 0.86, 0.95), 0.04), _jitter(rng, (0.32, 0.52, 0.86), 0.08))
    )
    scene = Scene(light=light, sky=sky, fog=rng.uniform(250, 500))
    ground = scene.material(
        Material(
            "road",
            (0.3, 0.3, 0.3),
            params={
                "asphalt": _jitter(rng, (0.30, 0.30, 0.32), 0.1),
                "sidewalk": _jitter(rng, (0.62, 0.60, 0.57)),
                "verge": _jitter(
                    rng, _pick(rng, ((0.30, 0.42, 0.18), (0.42, 0.40, 0.30), (0.36, 0.46, 0.22))), 0.1
                ),
                "road_half": road_half,
                "sidewalk_width": sidewalk,
                "lanes": lanes,
                "lane_width": lane_w,
                "lanes_half": lanes_half,
            },
            waves=make_waves(rng, 0.8, 8),
        )
    )
    scene.ground = ground
    glass = scene.material(Material("flat", (0.12, 0.15, 0.2), params={"var": 0.0}))
    black = scene.material(Material("flat", (0.05, 0.05, 0.05), params={"var": 0.0}))
    green = [
        scene.material(
            Material(
                "noise", _jitter(rng, c, 0.15), tuple(0.55 * x for x in c), 1.0, {}, make_waves(rng, 1.2)
            )
        )
        for c in ((0.25, 0.42, 0.16), (0.32, 0.45, 0.2))
    ]
    bark = scene.material(Material("flat", (0.3, 0.22, 0.15)))
    pole = scene.material(Material("flat", (0.45, 0.46, 0.48)))

    for side in (-1.0, 1.0):
        inner = road_half + sidewalk
        city = rng.random() < 0.7
        z = rng.uniform(-12, 0)
        while z < 180:
            if city:
                length = rng.uniform(8, 30)
                if rng.random() < 0.15:
                    z += rng.uniform(3, 12)
                    continue
                setback = rng.uniform(0.0, 4.0)
                height = rng.uniform(5, 22)
                face_a, face_b = _pick(rng, FACADES)
                mat = scene.material(
                    Material(
                        "windows",
                        _jitter(rng, face_a),
                        _jitter(rng, face_b),
                        rng.uniform(2.4, 4.0),
                        {
                            "floor_height": rng.uniform(2.8, 3.4),
                            "window_frac": (rng.uniform(0.35, 0.6), rng.uniform(0.4, 0.6)),
                        },
                        make_waves(rng, 0.3),
                    )
                )
                x_in = side * (inner + setback)
                scene.box((x_in, 0.0, z), (x_in + side * rng.uniform(8, 16), height, z + length), mat)
                z += length + rng.uniform(0.0, 2.0)
            else:  # suburban / rural side: hedges and trees
                length = rng.uniform(6, 20)
                x_in = side * (inner + rng.uniform(0.5, 3.0))
                if rng.random() < 0.5:
                    scene.box(
                        (x_in, 0.0, z),
                        (x_in + side * rng.uniform(0.6, 1.5), rng.uniform(0.8, 2.0), z + length),
                        _pick(rng, green),
                    )
                z += length
        for tz in np.arange(rng.uniform(-5, 8), 150, rng.uniform(8, 18)):
            if rng.random() < (0.35 if city else 0.8):
                tx = side * (
                    road_half + sidewalk * rng.uniform(0.4, 0.8) + (0 if city else rng.uniform(1.5, 5))
                )
                trunk_h, crown = rng.uniform(1.8, 3.2), rng.uniform(2.2, 4.5)
                scene.begin()
                scene.box((tx - 0.15, 0.0, tz - 0.15), (tx + 0.15, trunk_h, tz + 0.15), bark)
                scene.box(
                    (tx - crown / 2, trunk_h, tz - crown / 2),
                    (tx + crown / 2, trunk_h + crown * 0.9, tz + crown / 2),
                    _pick(rng, green),
                )
                scene.box(
                    (tx - crown / 3, trunk_h + crown * 0.9, tz - crown / 3),
                    (tx + crown / 3, trunk_h + crown * 1.3, tz + crown / 3),
                    _pick(rng, green),
                )
                scene.end()
        for pz in np.arange(rng.uniform(0, 20), 150, rng.uniform(25, 40)):
            px = side * (road_half + 0.4)
            scene.box((px - 0.08, 0.0, pz - 0.08), (px + 0.08, rng.uniform(6, 8), pz + 0.08), pole)
        if parking:
            for cz in np.arange(rng.uniform(3, 8), 90, rng.uniform(5.5, 7.0)):
                if rng.random() < 0.6:
                    _car(
                        scene,
                        rng,
                        side * (lanes_half + parking / 2 + rng.uniform(-0.15, 0.15)),
                        cz,
                        glass,
                        black,
                    )

    lane = lanes - 1 - int(rng.integers(0, max(1, lanes // 2)))  # drive in a right-hand lane
    cam_x = -lanes_half + (lane + 0.5) * lane_w + rng.uniform(-0.3, 0.3)
    for _ in range(int(rng.integers(0, 4))):
        other = int(rng.integers(lanes))
        cz = rng.uniform(12 if other == lane else 6, 70)
        _car(scene, rng, -lanes_half + (other + 0.5) * lane_w + rng.uniform(-0.3, 0.3), cz, glass, black)

    camera = _camera(
        spec,
        size,
        (cam_x, rng.uniform(*spec.camera_height), 0.0),
        rng.uniform(-6, 6),
        rng.uniform(-2.5, 1.0),
        rng.uniform(-1.0, 1.0),
    )
    return scene, camera
