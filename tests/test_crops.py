"""Evaluation crops cut the boxes of the reference implementations at their native resolutions."""

import pytest
import torch

from lifelong_monodepth.evaluation.crops import CROPS, crop_box, crop_mask


def test_eigen_nyu_at_480x640_is_the_classic_box() -> None:
    assert crop_box("eigen_nyu", 480, 640) == (45, 471, 41, 601)


def test_garg_at_kitti_resolution() -> None:
    # int(0.40810811*375)=153, int(0.99189189*375)=371, int(0.03594771*1242)=44, int(0.96405229*1242)=1197
    assert crop_box("garg", 375, 1242) == (153, 371, 44, 1197)


def test_eigen_kitti_at_kitti_resolution() -> None:
    expected = (int(0.3324324 * 375), int(0.91351351 * 375), int(0.0359477 * 1242), int(0.96405229 * 1242))
    assert expected == (124, 342, 44, 1197)
    assert crop_box("eigen_kitti", 375, 1242) == expected


def test_crops_scale_with_resolution() -> None:
    assert crop_box("eigen_nyu", 240, 320) == (22, 235, 20, 300)  # int() truncation of the halved box
    assert crop_box("garg", 352, 1216) == (143, 349, 43, 1172)


def test_none_is_whole_image() -> None:
    assert CROPS["none"] is None
    assert crop_box("none", 7, 9) == (0, 7, 0, 9)
    assert crop_mask("none", 7, 9).all()


def test_mask_matches_box() -> None:
    mask = crop_mask("eigen_nyu", 480, 640)
    assert mask.shape == (480, 640) and mask.dtype == torch.bool
    assert int(mask.sum()) == (471 - 45) * (601 - 41)
    assert mask[45, 41] and mask[470, 600]
    assert not mask[44, 41] and not mask[471, 600] and not mask[45, 40] and not mask[470, 601]


def test_mask_device() -> None:
    assert crop_mask("garg", 20, 30, device="cpu").device.type == "cpu"


def test_unknown_crop_lists_known_names() -> None:
    with pytest.raises(ValueError, match="eigen_nyu") as info:
        crop_box("eigen", 10, 10)
    for name in CROPS:
        assert name in str(info.value)
    with pytest.raises(ValueError):
        crop_mask("nope", 10, 10)
