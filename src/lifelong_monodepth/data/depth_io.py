"""Reading and writing RGB images and depth maps in the real datasets' native formats.

Depth files are 16-bit PNGs whose stored integer divided by a per-dataset ``depth_scale``
gives metres (KITTI: 256, NYU-v2 and ScanNet: 1000); 0 means "no measurement". ``.npy``
float arrays in metres are accepted as well (e.g. NYU-v2 exported from the .mat file).
Images are decoded with OpenCV (torchvision's decoders are unavailable with the CPU torch).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lifelong_monodepth.data.errors import DataError

UINT16_MAX = np.iinfo(np.uint16).max


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as an ``H×W×3`` uint8 RGB array."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Image file not found: {path}. Check the index CSV and the domain's data root.")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(
            f"Cannot decode image {path}: the file is corrupt or not an image. "
            "Replace it, remove its row from the index, or set data.on_error=skip."
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_rgb(path: str | Path, rgb: np.ndarray, jpeg_quality: int = 95) -> None:
    """Write an ``H×W×3`` uint8 RGB array as PNG or JPEG (by extension)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if path.suffix.lower() in {".jpg", ".jpeg"} else []
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), params):
        raise DataError(f"Could not write image {path}.")


def encode_depth(depth_m: np.ndarray, depth_scale: float) -> np.ndarray:
    """Metres → uint16 with the dataset's scale; invalid (≤0, non-finite) → 0; clipped to 65535."""
    depth = np.asarray(depth_m, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    stored = np.zeros(depth.shape, dtype=np.uint16)
    stored[valid] = np.clip(np.round(depth[valid] * depth_scale), 1, UINT16_MAX).astype(np.uint16)
    return stored


def write_depth_png(path: str | Path, depth_m: np.ndarray, depth_scale: float) -> None:
    """Write metric depth as a 16-bit PNG in the native format of a dataset (value = metres × scale)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), encode_depth(depth_m, depth_scale)):
        raise DataError(f"Could not write depth map {path}.")


def read_depth(path: str | Path, depth_scale: float) -> np.ndarray:
    """Read a depth map in metres (float32, 0 = invalid).

    16-bit PNGs are divided by ``depth_scale``; ``.npy`` files hold metres already.
    An 8-bit PNG is refused: it cannot carry metric depth and usually means a visualisation
    was listed instead of the raw depth file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Depth file not found: {path}. Check the index CSV and the domain's data root.")
    if path.suffix.lower() == ".npy":
        try:
            depth = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise DataError(f"Cannot read depth array {path}: {err}. Replace or remove the file.") from err
        if depth.ndim == 3 and depth.shape[-1] == 1:
            depth = depth[..., 0]
        if depth.ndim != 2:
            raise DataError(f"Depth array {path} has shape {depth.shape}; expected H×W metres.")
        depth = depth.astype(np.float32)
        depth[~np.isfinite(depth) | (depth < 0)] = 0.0
        return depth
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataError(
            f"Cannot decode depth map {path}: the file is corrupt or not an image. "
            "Replace it, remove its row from the index, or set data.on_error=skip."
        )
    if raw.ndim != 2:
        raise DataError(
            f"Depth map {path} has {raw.shape[2]} channels; expected a single-channel 16-bit PNG "
            "(is this a coloured visualisation instead of the raw depth?)."
        )
    if raw.dtype != np.uint16:
        raise DataError(
            f"Depth map {path} is {raw.dtype}, expected a 16-bit PNG (uint16, value / depth_scale = metres). "
            "An 8-bit PNG cannot hold metric depth: list the raw depth file in the index."
        )
    return raw.astype(np.float32) / float(depth_scale)
