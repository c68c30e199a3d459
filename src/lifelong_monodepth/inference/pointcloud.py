"""Camera intrinsics (``fx,fy,cx,cy`` or a KITTI / ScanNet calibration file) and coloured ``.ply`` clouds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lifelong_monodepth.data.errors import ConfigError


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    size: tuple[int, int] | None = None  # (height, width) the values are for; None: the image's own

    def for_size(self, height: int, width: int) -> Intrinsics:
        """Scaled to an image of another size (calibration of the full frame, resized input)."""
        if self.size is None or self.size == (height, width):
            return self
        sy, sx = height / self.size[0], width / self.size[1]
        return Intrinsics(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, (height, width))


def parse_intrinsics(spec: str) -> Intrinsics:
    """``"fx,fy,cx,cy"``, a KITTI ``calib_cam_to_cam.txt`` (``P_rect_02``, scaled with ``S_rect_02``) or a
    ScanNet ``intrinsic_color.txt`` (4×4 matrix, values for the image as given)."""
    path = Path(spec).expanduser()
    if path.is_file():
        text = path.read_text()
        if "P_rect_02" in text:
            return _kitti(text, path)
        try:
            matrix = np.array(
                [[float(v) for v in line.split()] for line in text.splitlines() if line.strip()]
            )
        except ValueError as err:
            raise ConfigError(f"intrinsics={spec}: not a KITTI or ScanNet calibration file ({err}).") from err
        if matrix.shape[0] < 3 or matrix.shape[1] < 3:
            raise ConfigError(f"intrinsics={spec}: expected a 3×3 or 4×4 matrix, got shape {matrix.shape}.")
        return Intrinsics(matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2])
    try:
        values = [float(v) for v in str(spec).split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or min(values[:2]) <= 0:
        raise ConfigError(
            f"intrinsics={spec}: give fx,fy,cx,cy in pixels (e.g. 518.9,519.5,325.6,253.7) or a calibration "
            "file (KITTI calib_cam_to_cam.txt, ScanNet intrinsic_color.txt)."
        )
    return Intrinsics(*values)


def _kitti(text: str, path: Path) -> Intrinsics:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.split()
    p = np.array([float(v) for v in fields["P_rect_02"]]).reshape(3, 4)
    size = None
    if "S_rect_02" in fields:
        width, height = (int(round(float(v))) for v in fields["S_rect_02"])
        size = (height, width)
    if p[0, 0] <= 0:
        raise ConfigError(f"intrinsics={path}: P_rect_02 has no focal length.")
    return Intrinsics(p[0, 0], p[1, 1], p[0, 2], p[1, 2], size)


def backproject(depth: np.ndarray, intrinsics: Intrinsics, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Depth (z, metres) → ``N×3`` camera-frame points (x right, y down, z forward) and pixel indices."""
    height, width = depth.shape
    k = intrinsics.for_size(height, width)
    v, u = np.mgrid[0:height:stride, 0:width:stride]
    z = depth[v, u]
    valid = np.isfinite(z) & (z > 0)
    u, v, z = u[valid], v[valid], z[valid]
    points = np.stack([(u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z], axis=1).astype(np.float32)
    return points, np.stack([v, u], axis=1)


def write_ply(path: Path, points: np.ndarray, colors: np.ndarray) -> None:
    """Binary little-endian PLY with ``x y z`` (float) and ``red green blue`` (uchar) per vertex."""
    vertex = np.empty(
        len(points),
        dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")],
    )
    vertex["x"], vertex["y"], vertex["z"] = points[:, 0], points[:, 1], points[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = colors[:, 0], colors[:, 1], colors[:, 2]
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment lifelong-monodepth predict\n"
        f"element vertex {len(points)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    with path.open("wb") as handle:
        handle.write(header.encode("ascii"))
        handle.write(vertex.tobytes())
