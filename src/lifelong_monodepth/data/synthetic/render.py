"""Scene container and the renderer: nearest hit wins, Lambertian shading with hard shadows, sky and haze.

Colours are shaded in linear light and handed to the sensor models (``sensors.py``) as linear
RGB; the z-depth of every hit comes straight from the ray parameter (see ``raycast.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lifelong_monodepth.data.synthetic.raycast import (
    Camera,
    box_corners,
    box_normals,
    intersect_boxes_primary,
    intersect_ground,
    intersect_room_inside,
    occluded,
)
from lifelong_monodepth.data.synthetic.textures import Color, Material, albedo

GAMMA = 2.2


@dataclass
class Light:
    """A point light (indoor: ``vector`` is its position) or the sun (``vector`` points towards it)."""

    kind: str
    vector: np.ndarray
    color: Color = (1.0, 1.0, 1.0)
    intensity: float = 1.0
    ambient: float = 0.3
    falloff: float = 3.0  # point light: distance (m) at which irradiance halves


@dataclass
class Scene:
    """Boxes (grouped so shadow rays can skip whole objects), an optional room or ground, a light."""

    light: Light
    materials: list[Material] = field(default_factory=list)
    boxes: list[tuple[np.ndarray, np.ndarray, int, bool]] = field(default_factory=list)
    groups: list[tuple[int, int]] = field(default_factory=list)
    room: tuple[np.ndarray, np.ndarray, list[int]] | None = None
    ground: int | None = None
    sky: tuple[Color, Color] | None = None
    fog: float | None = None
    _open: int | None = None

    def material(self, mat: Material) -> int:
        self.materials.append(mat)
        return len(self.materials) - 1

    def box(self, lo: tuple[float, ...], hi: tuple[float, ...], mat: int, shadow: bool = True) -> None:
        """Add a box; boxes added outside ``begin``/``end`` form their own group."""
        lo_a = np.array([float(min(a, b)) for a, b in zip(lo, hi, strict=True)])
        hi_a = np.array([float(max(a, b)) for a, b in zip(lo, hi, strict=True)])
        self.boxes.append((lo_a, hi_a, mat, shadow))
        if self._open is None:
            self.groups.append((len(self.boxes) - 1, len(self.boxes)))

    def begin(self) -> None:
        self._open = len(self.boxes)

    def end(self) -> None:
        if self._open is not None and self._open < len(self.boxes):
            self.groups.append((self._open, len(self.boxes)))
        self._open = None


@dataclass
class Render:
    """Linear RGB ``(H, W, 3)``, z-depth ``(H, W)`` (inf = sky), albedo luminance, material ids."""

    rgb: np.ndarray
    depth: np.ndarray
    albedo_luma: np.ndarray
    material: np.ndarray


def _group_boxes(scene: Scene) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shadow-casting boxes of each object group as ``(bmin, bmax)`` arrays."""
    groups = []
    for start, stop in scene.groups:
        members = [b for b in scene.boxes[start:stop] if b[3]]
        if members:
            groups.append((np.array([b[0] for b in members]), np.array([b[1] for b in members])))
    return groups


def _shadowed_point(scene: Scene, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Shadow rays towards a point light (``t`` in (0, 1)), culled per object.

    Points and objects below the light are projected from the light onto the floor plane: a point
    can only be shaded by an object whose projected rectangle contains its own projection. Points
    are sorted along x once so each object only looks at a slice of them. Objects reaching above
    the light fall back to a bounding-sphere test.
    """
    hit = np.zeros(len(origins), dtype=bool)
    light = scene.light.vector
    drop = light[1] - origins[:, 1]
    below = drop > 1e-3
    scale = np.where(below, light[1] / np.maximum(drop, 1e-3), 0.0)
    qx = light[0] - (light[0] - origins[:, 0]) * scale
    qz = light[2] - (light[2] - origins[:, 2]) * scale
    order = np.flatnonzero(below)[np.argsort(qx[below], kind="stable")]
    qx_sorted = qx[order]
    dd = np.einsum("ij,ij->i", dirs, dirs)
    for bmin, bmax in _group_boxes(scene):
        lo, hi = bmin.min(axis=0), bmax.max(axis=0)
        if hi[1] < light[1] - 1e-3:
            corners = box_corners(lo[None], hi[None])[0]
            c_scale = light[1] / (light[1] - corners[:, 1])
            cx = light[0] - (light[0] - corners[:, 0]) * c_scale
            cz = light[2] - (light[2] - corners[:, 2]) * c_scale
            i0, i1 = np.searchsorted(qx_sorted, [cx.min(), cx.max()])
            cand = order[i0:i1]
            near = cand[(qz[cand] >= cz.min()) & (qz[cand] <= cz.max()) & ~hit[cand]]
        else:
            centre, radius2 = 0.5 * (lo + hi), float(np.sum((0.5 * (hi - lo)) ** 2))
            rel = centre - origins
            s = np.clip(np.einsum("ij,ij->i", rel, dirs) / dd, 0.0, 1.0)
            closest = rel - s[:, None] * dirs
            near = np.flatnonzero((np.einsum("ij,ij->i", closest, closest) < radius2) & ~hit)
        if near.size:
            hit[near] = occluded(origins[near], dirs[near], 1.0, bmin, bmax)
    return hit


def _shadowed_sun(scene: Scene, origins: np.ndarray, sun: np.ndarray) -> np.ndarray:
    """Shadow rays towards the sun, culled per object in a projection along the sun direction.

    A point can only be shaded by an object if its projection onto the plane orthogonal to the sun
    falls inside the object's projected rectangle and it lies below the object's top along the sun.
    """
    hit = np.zeros(len(origins), dtype=bool)
    e1 = np.cross(sun, [0.0, 0.0, 1.0] if abs(sun[2]) < 0.9 else [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    basis = np.stack([e1, np.cross(sun, e1), sun], axis=1)
    proj = origins @ basis
    order = np.argsort(proj[:, 0], kind="stable")
    u_sorted = proj[order, 0]
    dirs = np.broadcast_to(sun, origins.shape)
    for bmin, bmax in _group_boxes(scene):
        corners = box_corners(bmin, bmax).reshape(-1, 3) @ basis
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        i0, i1 = np.searchsorted(u_sorted, [lo[0], hi[0]])
        cand = order[i0:i1]
        near = cand[
            (proj[cand, 1] >= lo[1]) & (proj[cand, 1] <= hi[1]) & (proj[cand, 2] < hi[2]) & ~hit[cand]
        ]
        if near.size:
            hit[near] = occluded(origins[near], dirs[near], 1e4, bmin, bmax)
    return hit


def sky_color(dirs_unit: np.ndarray, sky: tuple[Color, Color]) -> np.ndarray:
    """Linear sky colour: horizon colour blending to the zenith colour with elevation."""
    horizon, zenith = (np.asarray(c) ** GAMMA for c in sky)
    up = np.clip(dirs_unit[:, 1], 0.0, 1.0) ** 0.6
    return horizon * (1 - up[:, None]) + zenith * up[:, None]


def render(scene: Scene, camera: Camera) -> Render:
    """Cast one ray per pixel, keep the nearest hit, shade it."""
    cam_dirs = camera.camera_rays()
    dirs = cam_dirs @ camera.rotation.T
    origin = camera.position
    n_px = len(dirs)
    t = np.full(n_px, np.inf)
    mat = np.full(n_px, -1, dtype=np.int64)
    normals = np.zeros((n_px, 3))

    if scene.room is not None:
        rmin, rmax, face_mats = scene.room
        t, face, normals = intersect_room_inside(origin, dirs, rmin, rmax)
        mat = np.asarray(face_mats)[face]
    if scene.ground is not None:
        tg = intersect_ground(origin, dirs)
        better = tg < t
        t[better], mat[better] = tg[better], scene.ground
        normals[better] = (0.0, 1.0, 0.0)
    if scene.boxes:
        bmin = np.array([b[0] for b in scene.boxes])
        bmax = np.array([b[1] for b in scene.boxes])
        tb, idx = intersect_boxes_primary(camera, dirs, bmin, bmax)
        better = np.flatnonzero(tb < t)
        t[better] = tb[better]
        mat[better] = np.array([b[2] for b in scene.boxes])[idx[better]]
        points = origin + tb[better, None] * dirs[better]
        normals[better] = box_normals(points, bmin[idx[better]], bmax[idx[better]])

    hit = np.isfinite(t)
    points = origin + np.where(hit, t, 0.0)[:, None] * dirs
    ray_len = np.linalg.norm(dirs, axis=1)
    unit = dirs / ray_len[:, None]
    cos = np.abs(np.einsum("ij,ij->i", normals, unit))
    footprint = np.where(hit, t, 0.0) * ray_len / camera.fx / np.maximum(cos, 0.15)

    alb = np.zeros((n_px, 3))
    emissive = np.zeros(n_px, dtype=bool)
    for m in np.unique(mat[hit]):
        sel = np.flatnonzero(mat == m)
        material = scene.materials[m]
        alb[sel] = albedo(material, points[sel], normals[sel], footprint[sel])
        emissive[sel] = material.emissive
    lin = alb**GAMMA

    light = scene.light
    lit = hit & ~emissive
    irradiance = np.zeros(n_px)
    if light.kind == "point":
        to_light = light.vector - points
        dist = np.linalg.norm(to_light, axis=1) + 1e-9
        ndl = np.clip(np.einsum("ij,ij->i", normals, to_light) / dist, 0.0, None)
        cand = np.flatnonzero(lit & (ndl > 0))
        vis = np.ones(n_px)
        vis[cand[_shadowed_point(scene, points[cand] + 1e-3 * normals[cand], to_light[cand])]] = 0.0
        irradiance = light.intensity * ndl * vis / (1.0 + (dist / light.falloff) ** 2)
        ambient = light.ambient * (0.75 + 0.25 * normals[:, 1] ** 2)
    else:
        sun = light.vector / np.linalg.norm(light.vector)
        ndl = np.clip(normals @ sun, 0.0, None)
        cand = np.flatnonzero(lit & (ndl > 0))
        vis = np.ones(n_px)
        vis[cand[_shadowed_sun(scene, points[cand] + 1e-3 * normals[cand], sun)]] = 0.0
        irradiance = light.intensity * ndl * vis
        ambient = light.ambient * (0.7 + 0.3 * normals[:, 1])
    color = lin * (ambient + irradiance)[:, None] * np.asarray(light.color) ** GAMMA
    color[emissive] = lin[emissive] * 1.3

    if scene.fog is not None and scene.sky is not None:
        haze = sky_color(np.array([[0.0, 0.05, 1.0]]), scene.sky)  # the colour of the horizon
        keep = np.exp(-np.where(hit, t * ray_len, 0.0) / scene.fog)[:, None]
        color = color * keep + haze * (1 - keep)
    if scene.sky is not None:
        color[~hit] = sky_color(unit[~hit], scene.sky)
    else:
        color[~hit] = 0.0

    shape = (camera.height, camera.width)
    luma = alb @ np.array([0.299, 0.587, 0.114])
    return Render(
        rgb=color.reshape(*shape, 3),
        depth=t.reshape(shape),
        albedo_luma=luma.reshape(shape),
        material=mat.reshape(shape),
    )
