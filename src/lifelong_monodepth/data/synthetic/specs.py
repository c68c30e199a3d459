"""The three synthetic domains in one table: what each mimics, its camera and its native file format.

Everything that differs between domains at the file or camera level lives here, so the
difference between N, K and S can be read in one place (scene content lives in ``scenes.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DomainSpec:
    """Per-domain constants; ``size`` is the default ``(H, W)``, angles in degrees, lengths in metres."""

    letter: str
    name: str
    mimics: str
    size: tuple[int, int]
    depth_scale: float  # stored uint16 = metres × depth_scale (the real dataset's convention)
    rgb_ext: str
    hfov_deg: float
    principal: tuple[float, float]  # (cx / W, cy / H): real rigs are not perfectly centred
    depth_range: tuple[float, float]  # valid ground truth lies inside [min, max]
    camera_height: tuple[float, float]
    ground_truth: str  # "dense", "lidar" or "structured-light"


DOMAINS: dict[str, DomainSpec] = {
    spec.letter: spec
    for spec in (
        DomainSpec(
            letter="N",
            name="synthetic_n",
            mimics="NYU-v2: indoor rooms, dense (inpainted) Kinect depth",
            size=(120, 160),
            depth_scale=1000.0,
            rgb_ext=".jpg",
            hfov_deg=63.0,
            principal=(0.5, 0.5),
            depth_range=(0.5, 10.0),
            camera_height=(1.2, 1.6),
            ground_truth="dense",
        ),
        DomainSpec(
            letter="K",
            name="synthetic_k",
            mimics="KITTI: driving, sparse projected-LiDAR depth, sky invalid",
            size=(96, 320),
            depth_scale=256.0,
            rgb_ext=".png",
            hfov_deg=81.0,
            principal=(0.49, 0.46),
            depth_range=(1.0, 80.0),
            camera_height=(1.6, 1.7),
            ground_truth="lidar",
        ),
        DomainSpec(
            letter="S",
            name="synthetic_s",
            mimics="ScanNet: small rooms, noisy depth with holes, blurry RGB",
            size=(120, 160),
            depth_scale=1000.0,
            rgb_ext=".png",
            hfov_deg=56.0,
            principal=(0.52, 0.47),
            depth_range=(0.3, 6.0),
            camera_height=(1.0, 1.7),
            ground_truth="structured-light",
        ),
    )
}

# Fixed positions used in the per-image RNG key, so generating a subset of domains or splits
# produces exactly the same files as generating everything.
DOMAIN_ORDER = "NKS"
SPLITS = ("train", "val", "test")
DEFAULT_COUNTS = {"train": 320, "val": 48, "test": 96, "replay": 64}


def intrinsics(spec: DomainSpec, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` in pixels for an image of ``size``; square pixels, FOV fixed by the spec."""
    height, width = size
    fx = 0.5 * width / np.tan(np.radians(spec.hfov_deg) / 2)
    return float(fx), float(fx), spec.principal[0] * width, spec.principal[1] * height
