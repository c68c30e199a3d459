"""Joint image/depth geometry: size alignment, the network-input fit, augmentations (albumentations).

Depth travels as an albumentations ``mask`` target, so geometric transforms move it with
the image (nearest-neighbour: sparse LiDAR stays sparse, values stay exact, no value is ever
interpolated across a hole) while photometric ones touch the image only.

Two ways to bring an image to the network's ``input_size`` (a domain's ``input_fit``):
``stretch`` resizes the whole frame; ``bottom_crop`` keeps the pixels' scale and cuts the bottom
rows and a window (random in training, centred in evaluation), as the original KITTI code did, so
the focal length seen by the network does not change between drives of different frame sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np

from lifelong_monodepth.data.errors import DataError

DEPTH_TARGETS = {"depth": "mask"}


class BottomWindowCrop(A.DualTransform):
    """The bottom ``height`` rows and a random ``width``-wide window (the original KITTI training crop)."""

    def __init__(self, height: int, width: int, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.height, self.width = int(height), int(width)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, int]:
        height, width = params["shape"][:2]
        return {
            "top": max(0, height - self.height),
            "left": self.py_random.randint(0, max(0, width - self.width)),
        }

    def apply(self, img: np.ndarray, top: int = 0, left: int = 0, **params: Any) -> np.ndarray:
        return img[top : top + self.height, left : left + self.width]

    def apply_to_mask(self, mask: np.ndarray, top: int = 0, left: int = 0, **params: Any) -> np.ndarray:
        return mask[top : top + self.height, left : left + self.width]

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("height", "width")


def build_transform(
    input_size: Sequence[int],
    augment: Sequence[Any] | None = None,
    train: bool = False,
    input_fit: str = "stretch",
) -> A.Compose:
    """Fit to the network input (``input_fit``), then (training only) the configured augmentations.

    ``augment`` items are albumentations transforms or ``_target_`` dicts for ``hydra.utils.instantiate``.
    """
    height, width = int(input_size[0]), int(input_size[1])
    if input_fit == "bottom_crop":
        steps: list[A.BasicTransform] = [
            # Frames smaller than the window are padded with 0 = "no ground truth".
            A.PadIfNeeded(height, width, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
            BottomWindowCrop(height, width),
        ]
    else:
        steps = [
            A.Resize(height, width, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST)
        ]
    if train:
        steps += [_instantiate(item) for item in (augment or [])]
    return A.Compose(steps, additional_targets=dict(DEPTH_TARGETS))


def _instantiate(item: Any) -> A.BasicTransform:
    if isinstance(item, A.BasicTransform):
        return item
    from hydra.utils import instantiate

    return instantiate(item)


def resize_image(image: np.ndarray, input_size: Sequence[int]) -> np.ndarray:
    """Evaluation path: only the image is resized; depth stays at its native resolution."""
    height, width = int(input_size[0]), int(input_size[1])
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def bottom_center_window(shape: Sequence[int], input_size: Sequence[int]) -> tuple[int, int, int, int]:
    """Evaluation counterpart of :class:`BottomWindowCrop`: ``(top, left, height, width)``, centred."""
    height, width = min(int(input_size[0]), shape[0]), min(int(input_size[1]), shape[1])
    return shape[0] - height, (shape[1] - width) // 2, height, width


def align_pair(
    image: np.ndarray, depth: np.ndarray, mode: str, rgb_path: Path, depth_path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Bring an RGB/depth pair of different sizes to one size (a domain's ``align`` option).

    ``resize_rgb_to_depth`` (ScanNet: 1296×968 colour, 640×480 depth) resizes the image, which
    keeps the depth sensor's intrinsics; ``resize_depth_to_rgb`` resizes depth nearest-neighbour.
    """
    if depth.shape == image.shape[:2]:
        return image, depth
    if mode == "resize_rgb_to_depth":
        return cv2.resize(image, depth.shape[::-1], interpolation=cv2.INTER_AREA), depth
    if mode == "resize_depth_to_rgb":
        return image, cv2.resize(depth, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    raise DataError(
        f"Depth {depth_path} is {depth.shape[1]}×{depth.shape[0]} but image {rgb_path} is "
        f"{image.shape[1]}×{image.shape[0]} (W×H); the pair must have the same size. Fix the index row "
        "or the files, or set the domain's `align: resize_rgb_to_depth` (or `resize_depth_to_rgb`)."
    )
