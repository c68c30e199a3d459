"""Sensor models: how each real dataset's camera and depth sensor degrade the ideal render.

N (NYU-v2) ships inpainted, dense depth; K (KITTI) projects a rotating LiDAR, so only pixels on
scan lines carry depth and the sky never does; S (ScanNet) uses a structured-light sensor with
depth-proportional noise and holes on dark, bright, far and boundary pixels, and blurry RGB.
"""

from __future__ import annotations

import cv2
import numpy as np

from lifelong_monodepth.data.synthetic.raycast import Camera
from lifelong_monodepth.data.synthetic.render import GAMMA, Render
from lifelong_monodepth.data.synthetic.specs import DomainSpec

LUMA = np.array([0.2126, 0.7152, 0.0722])


def finish_rgb(render: Render, rng: np.random.Generator, spec: DomainSpec) -> np.ndarray:
    """Auto-exposure, white balance, optics (vignetting, blur), noise and gamma → uint8 RGB."""
    lin = render.rgb
    height, width = lin.shape[:2]
    key = float(np.exp(np.mean(np.log(lin @ LUMA + 1e-4))))
    target = {"N": 0.2, "K": 0.2, "S": 0.24}[spec.letter]
    lin = lin * np.clip(target / key * rng.uniform(0.8, 1.2), 0.3, 8.0)
    lin = lin * rng.uniform(0.95, 1.05, 3)  # white balance
    yy, xx = np.mgrid[0:height, 0:width]
    r2 = ((xx + 0.5 - width / 2) / (width / 2)) ** 2 + ((yy + 0.5 - height / 2) / (height / 2)) ** 2
    vignette = {"N": 0.12, "K": 0.18, "S": 0.28}[spec.letter]
    lin = lin * (1 - vignette * r2 / 2)[..., None]
    srgb = np.clip(lin, 0.0, 1.0) ** (1 / GAMMA)
    if spec.letter == "K":  # KITTI's colour cameras look washed out
        grey = srgb @ LUMA
        srgb = grey[..., None] + 0.75 * (srgb - grey[..., None])
    if spec.letter == "S":  # hand-held scanning: defocus and a little motion blur
        sigma = rng.uniform(0.6, 1.1) * min(height, width) / 120
        srgb = cv2.GaussianBlur(srgb.astype(np.float32), (0, 0), sigma).astype(np.float64)
    noise_sigma = {"N": 1.5, "K": 2.0, "S": 3.0}[spec.letter] / 255
    srgb = srgb + rng.normal(0.0, noise_sigma, srgb.shape)
    return np.clip(np.round(srgb * 255), 0, 255).astype(np.uint8)


def dense_depth(render: Render, spec: DomainSpec) -> np.ndarray:
    """NYU-v2 style: every pixel valid (the toolbox inpaints holes), inside the sensor range."""
    lo, hi = spec.depth_range
    depth = np.where(np.isfinite(render.depth), render.depth, hi)
    return np.clip(depth, lo, hi)


def lidar_depth(render: Render, camera: Camera, rng: np.random.Generator, spec: DomainSpec) -> np.ndarray:
    """KITTI style: depth only where one of 16–32 scan lines (evenly spaced elevations) hits a surface.

    Lines span +2°…−24.8° like a Velodyne HDL-64E, so the upper image (sky, building tops) has no
    ground truth; returns are subsampled along each line, randomly dropped (more on dark
    surfaces such as glass and tyres), and lost beyond 80 m.
    """
    height, width = render.depth.shape
    dirs = camera.world_rays().reshape(height, width, 3)
    elevation = np.arctan2(dirs[..., 1], np.hypot(dirs[..., 0], dirs[..., 2]))
    n_lines = int(rng.integers(16, 33))
    angles = np.radians(np.linspace(2.0, -24.8, n_lines) + rng.uniform(-0.3, 0.3))
    # elevation falls monotonically down each column: find each line's nearest row per column
    rows = np.empty((width, n_lines), dtype=np.int64)
    for col in range(width):
        rows[col] = np.searchsorted(-elevation[:, col], -angles).clip(1, height - 1)
    cols = np.broadcast_to(np.arange(width)[:, None], rows.shape)
    above, below = elevation[rows - 1, cols], elevation[rows, cols]
    rows = np.where(np.abs(above - angles) < np.abs(below - angles), rows - 1, rows)
    on_line = np.abs(elevation[rows, cols] - angles) < 0.6 / camera.fy
    stride = int(rng.integers(2, 4))
    phase = rng.integers(0, stride, n_lines)[None, :]
    keep = on_line & ((cols + phase) % stride == 0) & (rng.random(rows.shape) > rng.uniform(0.05, 0.2))
    mask = np.zeros((height, width), dtype=bool)
    mask[rows[keep], cols[keep]] = True
    z = render.depth
    lo, hi = spec.depth_range
    dark = render.albedo_luma < 0.1
    mask &= np.isfinite(z) & (z >= lo) & (z <= hi) & ~(dark & (rng.random(z.shape) < 0.5))
    depth = np.zeros((height, width))
    depth[mask] = z[mask] + rng.normal(0.0, 0.02, int(mask.sum()))
    return np.where(depth >= lo, np.minimum(depth, hi), 0.0)


def structured_light_depth(
    render: Render, emissive: np.ndarray, rng: np.random.Generator, spec: DomainSpec
) -> np.ndarray:
    """ScanNet style: σ ∝ z gaussian noise, holes on blobs, dark/bright surfaces, far range and edges."""
    z = np.where(np.isfinite(render.depth), render.depth, 0.0)
    height, width = z.shape
    lo, hi = spec.depth_range
    depth = z * (1.0 + rng.normal(0.0, rng.uniform(0.004, 0.012), z.shape))
    holes = (z < lo) | (z > hi) | emissive
    holes |= (z > 0.75 * hi) & (rng.random(z.shape) < (z - 0.75 * hi) / (0.25 * hi) * 0.6)
    holes |= (render.albedo_luma < 0.09) & (rng.random(z.shape) < 0.7)
    gy, gx = np.gradient(np.log(np.maximum(z, 1e-3)))
    holes |= (np.hypot(gx, gy) > 0.08) & (rng.random(z.shape) < 0.6)
    coarse = rng.random((height // 10 + 2, width // 10 + 2)).astype(np.float32)
    field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    blob_fraction = rng.uniform(0.0, 0.06)
    if blob_fraction > 0.005:
        holes |= field > np.quantile(field, 1 - blob_fraction)
    return np.where(holes, 0.0, np.clip(depth, lo, hi))
