"""Standard evaluation crops, as fractions of the full frame so they apply at any resolution.

Each crop is ``(top, bottom, left, right)`` as fractions of ``(H, H, W, W)``; pixel bounds are
``int(fraction * size)`` (truncation, as in the reference implementations), half-open like slices.

* ``eigen_nyu``: NYU-v2 crop of Eigen et al. (NeurIPS 2014), rows 45:471 and columns 41:601 of the
  480×640 frame, i.e. the area with valid Kinect depth after the RGB/depth registration border
  (used by BTS, AdaBins, NeWCRFs, ...).
* ``garg``: KITTI crop of Garg et al. (ECCV 2016), rows 0.40810811·H:0.99189189·H and columns
  0.03594771·W:0.96405229·W (the ``--garg_crop`` of Monodepth/Monodepth2/BTS); it drops the sky,
  where the LiDAR has no returns, and the image border.
* ``eigen_kitti``: KITTI crop of Eigen et al. (the ``--eigen_crop`` of the same code bases),
  rows 0.3324324·H:0.91351351·H, columns 0.0359477·W:0.96405229·W.
* ``none``: the whole image.

The fractions refer to the camera's **full frame**. Ground truth that is itself a crop of a full frame
(KITTI's ``val_selection_cropped``: the bottom 352 rows and centred 1216 columns of a ~375×1242 frame,
or the ``bottom_crop`` evaluation window) carries its frame ``(full_h, full_w, top, left)``: the box is
computed on the full frame and moved into the crop's coordinates (:func:`crop_mask_in_frame`), as BTS
does by pasting the prediction back into the full frame. Computing ``garg`` on the 352×1216 crop
itself would give rows 143:349 instead of 130:348 (frame 375×1242).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Crop = tuple[float, float, float, float]

CROPS: dict[str, Crop | None] = {
    "eigen_nyu": (45 / 480, 471 / 480, 41 / 640, 601 / 640),
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    "eigen_kitti": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
    "none": None,
}


def _fractions(name: str) -> Crop | None:
    if name not in CROPS:
        raise ValueError(f"Unknown evaluation crop {name!r}; known crops: {', '.join(sorted(CROPS))}")
    return CROPS[name]


def crop_box(name: str, height: int, width: int) -> tuple[int, int, int, int]:
    """Half-open ``(top, bottom, left, right)`` pixel bounds of crop ``name`` on a ``height×width`` image."""
    fractions = _fractions(name)
    if fractions is None:
        return 0, int(height), 0, int(width)
    top, bottom, left, right = fractions
    return int(top * height), int(bottom * height), int(left * width), int(right * width)


def crop_mask(name: str, height: int, width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(H, W)`` mask, ``True`` inside the crop: multiplied into the valid-pixel mask."""
    top, bottom, left, right = crop_box(name, height, width)
    mask = torch.zeros(int(height), int(width), dtype=torch.bool, device=device)
    mask[top:bottom, left:right] = True
    return mask


def crop_box_in_frame(name: str, height: int, width: int, frame: Sequence[int]) -> tuple[int, int, int, int]:
    """Bounds of crop ``name`` on a ``height×width`` image cut from a full frame at ``(top, left)``.

    ``frame`` is ``(full_h, full_w, top, left)``; the result is clipped to the image.
    """
    full_h, full_w, off_top, off_left = (int(v) for v in frame)
    top, bottom, left, right = crop_box(name, full_h, full_w)
    return (
        min(max(top - off_top, 0), height),
        min(max(bottom - off_top, 0), height),
        min(max(left - off_left, 0), width),
        min(max(right - off_left, 0), width),
    )


def crop_mask_in_frame(
    name: str, height: int, width: int, frames: torch.Tensor, device: torch.device | str | None = None
) -> torch.Tensor:
    """Boolean ``(B, H, W)`` crop masks for a batch whose samples carry ``frames`` (``B×4``)."""
    masks = torch.zeros(len(frames), int(height), int(width), dtype=torch.bool, device=device)
    for i, frame in enumerate(frames.tolist()):
        top, bottom, left, right = crop_box_in_frame(name, height, width, frame)
        masks[i, top:bottom, left:right] = True
    return masks
