"""Reading and writing RGB images and depth maps in the real datasets' native formats.

Depth files are 16-bit PNGs whose stored integer divided by a per-dataset ``depth_scale``
gives metres (KITTI: 256, NYU-v2 and ScanNet: 1000); 0 means "no measurement". ``.npy``
float arrays in metres are accepted as well (e.g. NYU-v2 exported from the .mat file).
8-bit depth PNGs (the original NYU-v2 release's training maps: 255 = 10 m) are read only with an
explicit 8-bit scale: by default an 8-bit PNG is almost always a visualisation listed by mistake.
Images are decoded with OpenCV (torchvision's decoders are unavailable with the CPU torch). OpenCV
decodes a JPEG cut short with a grey lower half and only a warning, so files are checked for their
end marker first and a truncated one is reported with its name.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lifelong_monodepth.data.errors import DataError

UINT16_MAX = np.iinfo(np.uint16).max
# (start marker, end marker) of the formats whose truncation OpenCV does not report.
END_MARKERS = {
    "jpeg": (b"\xff\xd8", b"\xff\xd9"),
    "png": (b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"),
}


def _read_checked(path: Path) -> np.ndarray:
    """The file's bytes, refused when a JPEG or PNG lacks its end marker (a truncated copy)."""
    data = np.fromfile(path, dtype=np.uint8)
    head = data[:8].tobytes()
    tail = data[-64:].tobytes().rstrip(b"\x00")  # some writers pad the end with zeros
    # Only a file that starts like a JPEG/PNG can be "truncated"; anything else fails to decode.
    if any(head.startswith(start) and not tail.endswith(end) for start, end in END_MARKERS.values()):
        raise DataError(
            f"Image {path} is truncated (no end-of-image marker after {data.size} bytes): an interrupted "
            "download or copy. Copy the file again, remove its row from the index, or set data.on_error=skip."
        )
    return data


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as an ``H×W×3`` uint8 RGB array."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Image file not found: {path}. Check the index CSV and the domain's data root.")
    image = cv2.imdecode(_read_checked(path), cv2.IMREAD_COLOR)
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


def read_depth(
    path: str | Path,
    depth_scale: float,
    depth_scale_uint8: float | None = None,
    key: str = "depth_scale_uint8",
) -> np.ndarray:
    """Read a depth map in metres (float32, 0 = invalid).

    16-bit PNGs are divided by ``depth_scale``; ``.npy`` files hold metres already. An 8-bit PNG
    is divided by ``depth_scale_uint8`` and refused when it is ``None`` (``key`` names the setting
    in that message): without a declared scale it is usually a visualisation listed by mistake.
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
    raw = cv2.imdecode(_read_checked(path), cv2.IMREAD_UNCHANGED)
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
    if raw.dtype == np.uint8:
        if depth_scale_uint8 is None:
            raise DataError(
                f"Depth map {path} is uint8, expected a 16-bit PNG (value / depth_scale = metres). An 8-bit "
                "PNG is usually a visualisation: list the raw depth file in the index. If it really stores "
                f"depth (e.g. the original NYU-v2 release: 255 = 10 m), set `{key}` (25.5 for that "
                "release) or give the row a `depth_scale` column in the index."
            )
        return raw.astype(np.float32) / float(depth_scale_uint8)
    if raw.dtype != np.uint16:
        raise DataError(
            f"Depth map {path} is {raw.dtype}, expected a 16-bit PNG (uint16, value / depth_scale = metres)."
        )
    return raw.astype(np.float32) / float(depth_scale)
