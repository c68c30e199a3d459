"""Joint image/depth transforms built from YAML with albumentations.

Depth travels as an albumentations ``mask`` target, so geometric transforms move it with
the image (nearest-neighbour: sparse LiDAR stays sparse, values stay exact) while
photometric ones touch the image only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np

DEPTH_TARGETS = {"depth": "mask"}


def build_transform(
    input_size: Sequence[int], augment: Sequence[Any] | None = None, train: bool = False
) -> A.Compose:
    """Resize to the network input, then (training only) the configured augmentations.

    ``augment`` items are albumentations transforms or ``_target_`` dicts for ``hydra.utils.instantiate``.
    """
    height, width = int(input_size[0]), int(input_size[1])
    steps: list[A.BasicTransform] = [
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
