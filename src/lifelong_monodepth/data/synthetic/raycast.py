"""Vectorised ray casting against axis-aligned boxes, a room seen from inside and a ground plane.

World frame: x right, y up, z forward (metres). Camera frame: x right, y down, z forward.
Primary rays are *not* normalised: each has camera-frame z = 1, so the ray parameter of a
hit is directly the z-depth (distance along the optical axis) that depth sensors report.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

EPS = 1e-6
CORNER_SELECT = np.array([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], dtype=bool)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World-from-camera rotation (radians): yaw > 0 turns right, pitch > 0 looks up, roll about the axis."""
    flip = np.diag([1.0, -1.0, 1.0])  # camera y points down, world y up
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    rz = np.array([[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    return ry @ rx @ rz @ flip


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: intrinsics in pixels, pose as position and world-from-camera rotation."""

    fx: float
    fy: float
    cx: float
    cy: float
    height: int
    width: int
    position: np.ndarray
    rotation: np.ndarray

    def camera_rays(self) -> np.ndarray:
        """``(H·W, 3)`` camera-frame directions through pixel centres, with z = 1 (cached, read-only)."""
        return _camera_rays(self.fx, self.fy, self.cx, self.cy, self.height, self.width)

    def world_rays(self) -> np.ndarray:
        """Camera rays rotated into the world frame (still z-depth parameterised)."""
        return self.camera_rays() @ self.rotation.T

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points ``(N, 3)`` → pixel coordinates ``(N, 2)`` and camera-frame z."""
        cam = (points - self.position) @ self.rotation
        z = cam[:, 2]
        safe = np.where(np.abs(z) < EPS, EPS, z)
        uv = np.stack([self.fx * cam[:, 0] / safe + self.cx, self.fy * cam[:, 1] / safe + self.cy], axis=1)
        return uv, z


@lru_cache(maxsize=8)
def _camera_rays(fx: float, fy: float, cx: float, cy: float, height: int, width: int) -> np.ndarray:
    u = (np.arange(width) + 0.5 - cx) / fx
    v = (np.arange(height) + 0.5 - cy) / fy
    rays = np.empty((height, width, 3))
    rays[..., 0], rays[..., 1], rays[..., 2] = u[None, :], v[:, None], 1.0
    rays = rays.reshape(-1, 3)
    rays.flags.writeable = False
    return rays


def box_corners(bmin: np.ndarray, bmax: np.ndarray) -> np.ndarray:
    """``(B, 8, 3)`` corners of ``B`` boxes."""
    return np.where(CORNER_SELECT[None], bmax[:, None], bmin[:, None])


def _safe_inverse(dirs: np.ndarray) -> np.ndarray:
    return 1.0 / np.where(np.abs(dirs) < 1e-12, 1e-12, dirs)


def slab(
    origins: np.ndarray, inv: np.ndarray, bmin: np.ndarray, bmax: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Entry and exit parameters of rays (``(..., 3)`` or shared ``(3,)`` origins) through one box.

    Works per component (three 1-D passes) because numpy reductions over a length-3 last axis
    are several times slower than elementwise maximum/minimum.
    """
    t1 = (bmin[0] - origins[..., 0]) * inv[..., 0]
    t2 = (bmax[0] - origins[..., 0]) * inv[..., 0]
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    for axis in (1, 2):
        t1 = (bmin[axis] - origins[..., axis]) * inv[..., axis]
        t2 = (bmax[axis] - origins[..., axis]) * inv[..., axis]
        np.maximum(near, np.minimum(t1, t2), out=near)
        np.minimum(far, np.maximum(t1, t2), out=far)
    return near, far


def box_normals(points: np.ndarray, bmin: np.ndarray, bmax: np.ndarray) -> np.ndarray:
    """Outward normal of the box face each hit point lies on (the nearest face plane)."""
    dist = np.concatenate([np.abs(points - bmin), np.abs(points - bmax)], axis=1)
    face = dist.argmin(axis=1)
    normals = np.zeros_like(points)
    normals[np.arange(len(points)), face % 3] = np.where(face < 3, -1.0, 1.0)
    return normals


def intersect_boxes_primary(
    camera: Camera, dirs: np.ndarray, bmin: np.ndarray, bmax: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest box hit for every primary ray: ``(t, box index or -1)``.

    Each box is tested only on the pixels inside its projected bounding rectangle, which keeps a
    street of 60 boxes cheap (most boxes cover a small part of the image).
    """
    height, width = camera.height, camera.width
    best_t = np.full(height * width, np.inf)
    best_i = np.full(height * width, -1, dtype=np.int64)
    if len(bmin) == 0:
        return best_t, best_i
    inv = _safe_inverse(dirs).reshape(height, width, 3)
    best_t2, best_i2 = best_t.reshape(height, width), best_i.reshape(height, width)
    uv, z = camera.project(box_corners(bmin, bmax).reshape(-1, 3))
    uv, z = uv.reshape(-1, 8, 2), z.reshape(-1, 8)
    in_front = np.all(z > EPS, axis=1)
    behind = np.all(z <= EPS, axis=1)
    lo = np.floor(uv.min(axis=1)).astype(np.int64) - 1
    hi = np.ceil(uv.max(axis=1)).astype(np.int64) + 1
    u0s, u1s = np.clip(lo[:, 0], 0, width), np.clip(hi[:, 0], 0, width)
    v0s, v1s = np.clip(lo[:, 1], 0, height), np.clip(hi[:, 1], 0, height)
    for k in range(len(bmin)):
        if behind[k]:
            continue
        if in_front[k]:
            u0, u1, v0, v1 = int(u0s[k]), int(u1s[k]), int(v0s[k]), int(v1s[k])
        else:  # the box straddles the camera plane: its projection is unbounded
            u0, u1, v0, v1 = 0, width, 0, height
        if u1 <= u0 or v1 <= v0:
            continue
        tn, tf = slab(camera.position, inv[v0:v1, u0:u1], bmin[k], bmax[k])
        tn = np.where((tf >= tn) & (tn > EPS), tn, np.inf)
        sub_t = best_t2[v0:v1, u0:u1]
        better = tn < sub_t
        sub_t[better] = tn[better]
        best_i2[v0:v1, u0:u1][better] = k
    return best_t, best_i


def occluded(
    origins: np.ndarray, dirs: np.ndarray, t_max: float, bmin: np.ndarray, bmax: np.ndarray
) -> np.ndarray:
    """Whether each shadow ray hits any box with parameter in ``(0, t_max)``.

    Rays are first culled against each box's bounding sphere (a few cheap ops per ray), so the
    exact slab test only runs on the few rays that pass near the box.
    """
    hit = np.zeros(len(origins), dtype=bool)
    if len(bmin) == 0 or len(origins) == 0:
        return hit
    dd = np.einsum("ij,ij->i", dirs, dirs)
    for k in range(len(bmin)):
        centre = 0.5 * (bmin[k] + bmax[k])
        radius2 = float(np.sum((0.5 * (bmax[k] - bmin[k])) ** 2))
        rel = centre - origins
        s = np.clip(np.einsum("ij,ij->i", rel, dirs) / dd, 0.0, t_max)
        closest = rel - s[:, None] * dirs
        near = np.flatnonzero(np.einsum("ij,ij->i", closest, closest) < radius2)
        if near.size == 0:
            continue
        tn, tf = slab(origins[near], _safe_inverse(dirs[near]), bmin[k], bmax[k])
        hit[near[(tf >= tn) & (tn > EPS) & (tn < t_max)]] = True
    return hit


def intersect_room_inside(
    origin: np.ndarray, dirs: np.ndarray, rmin: np.ndarray, rmax: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rays leaving a box that contains the camera: ``(t, face id, inward normal)``.

    Face ids: 0 x-min wall, 1 x-max wall, 2 floor, 3 ceiling, 4 z-min wall, 5 z-max wall.
    """
    inv = _safe_inverse(dirs)
    t_exit = np.maximum((rmin - origin) * inv, (rmax - origin) * inv)
    axis = t_exit.argmin(axis=1)
    t = t_exit[np.arange(len(dirs)), axis]
    positive = dirs[np.arange(len(dirs)), axis] > 0
    normals = np.zeros_like(dirs)
    normals[np.arange(len(dirs)), axis] = np.where(positive, -1.0, 1.0)
    return t, axis * 2 + positive, normals


def intersect_ground(origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Hits of the plane y = 0 from above (inf where the ray points up)."""
    down = dirs[:, 1] < -EPS
    t = np.full(len(dirs), np.inf)
    t[down] = -origin[1] / dirs[down, 1]
    return t
