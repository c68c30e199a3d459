"""What ``input=`` points at (an image, a folder, a glob or a video) and reading images as a user has them.

Images are read with Pillow: EXIF orientation is applied (``ImageOps.exif_transpose``) so the
depth map matches the image as it is displayed; grayscale is repeated to RGB, alpha is dropped,
16-bit images are scaled by 65535. A file that cannot be decoded raises :class:`DataError`.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lifelong_monodepth.data.errors import ConfigError, DataError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
)
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


@dataclass
class InputSet:
    """The resolved ``input=``: image files (with names relative to ``base``) or one video."""

    kind: str  # "images" or "video"
    files: list[Path]
    base: Path

    def name(self, path: Path) -> str:
        """Output stem of an input file: its path relative to ``base`` without suffix, ``/`` → ``__``."""
        try:
            relative = path.relative_to(self.base)
        except ValueError:
            relative = Path(path.name)
        return "__".join(relative.with_suffix("").parts)


def resolve_inputs(spec: str) -> InputSet:
    """An image or video file, a folder (its images, sorted, not recursive) or a glob pattern."""
    path = Path(spec).expanduser()
    if path.is_file():
        kind = "video" if path.suffix.lower() in VIDEO_SUFFIXES else "images"
        return InputSet(kind, [path], path.parent)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(
                f"input={spec}: the folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})."
            )
        return InputSet("images", files, path)
    if glob.has_magic(spec):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise ConfigError(f"input={spec}: the pattern matches no file.")
        fixed = []
        for part in path.parts:
            if glob.has_magic(part):
                break
            fixed.append(part)
        return InputSet("images", files, Path(*fixed) if fixed else Path("."))
    raise ConfigError(f"input={spec} does not exist (give an image, a folder, a glob pattern or a video).")


def read_image(path: str | Path) -> np.ndarray:
    """An image file → ``H×W×3`` float32 RGB in [0, 1], in its displayed orientation."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb_float(image)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise DataError(f"Cannot read image {path}: {type(err).__name__}: {err}") from err


def _to_rgb_float(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        array = np.asarray(image, dtype=np.float32)
        if mode == "F":
            low, high = float(array.min()), float(array.max())
            array = (array - low) / max(high - low, 1e-12)
        else:
            array = array / (65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0)
        return np.repeat(np.clip(array, 0, 1)[..., None], 3, axis=2)
    if mode != "RGB":
        image = image.convert("RGB")  # L, LA, P, RGBA (alpha dropped), CMYK, YCbCr…
    return np.asarray(image, dtype=np.float32) / 255.0
