"""Evaluation at native resolution for any frame sizes, crops in full-frame coordinates, the
original test geometry of evaluation=paper, and the KITTI bottom-crop input fit."""

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_domain
from lifelong_monodepth.data.collate import eval_collate
from lifelong_monodepth.data.datamodule import LifelongDataModule
from lifelong_monodepth.data.dataset import DepthDataset
from lifelong_monodepth.data.depth_io import write_depth_png, write_rgb
from lifelong_monodepth.data.domain import DomainConfig, Precropped
from lifelong_monodepth.data.index import read_index
from lifelong_monodepth.evaluation.crops import crop_box, crop_box_in_frame
from lifelong_monodepth.evaluation.metrics import DepthMetrics
from lifelong_monodepth.evaluation.scoring import paper_view, score_batch


def _with(domain: DomainConfig, **changes) -> DomainConfig:
    return DomainConfig(**{**domain.__dict__, **changes})


def _resize_frames(domain: DomainConfig, sizes: dict[int, tuple[int, int]]) -> None:
    """Rewrite some rows at other sizes (like raw KITTI drives: 375×1242 next to 374×1238)."""
    rng = np.random.default_rng(0)
    for i, row in enumerate(read_index(domain.index["test"], domain.root)):
        if i in sizes:
            h, w = sizes[i]
            write_rgb(row.rgb, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
            write_depth_png(row.depth, rng.uniform(1, 70, (h, w)).astype(np.float32), domain.depth_scale)


def test_mixed_frame_sizes_are_scored_at_native_size(tmp_path: Path) -> None:
    # 1/25 of KITTI: 375×1242 → 15×50, 374×1238 → 14×49 (sizes differ the same way).
    domain = make_domain(tmp_path, "K", size=(15, 50), count=5, depth_scale=256.0, max_depth=80.0)
    _resize_frames(domain, {1: (14, 49), 3: (14, 49)})
    domain = _with(domain, input_size=(16, 48), eval_crop="garg")
    loader = LifelongDataModule({"K": domain}, eval_batch_size=5).eval_loader("K", "test")
    (batch,) = list(loader)
    assert isinstance(batch["depth"], list) and [tuple(d.shape) for d in batch["depth"]] == [
        (1, 15, 50), (1, 14, 49), (1, 15, 50), (1, 14, 49), (1, 15, 50)]  # fmt: skip
    assert batch["image"].shape == (5, 3, 16, 48)
    pred = torch.rand(5, 1, 8, 24) * 60 + 1
    pooled = DepthMetrics(min_depth=0.001, max_depth=80.0, crop="garg")
    score_batch(pooled, pred, batch)
    one_by_one = DepthMetrics(min_depth=0.001, max_depth=80.0, crop="garg")
    for i, target in enumerate(batch["depth"]):
        up = torch.nn.functional.interpolate(pred[i : i + 1], size=target.shape[-2:], mode="bilinear")
        one_by_one.update(up, target[None])
    for name, value in pooled.compute().items():
        assert float(value) == pytest.approx(float(one_by_one.compute()[name]), rel=1e-6), name
    # Automatic selection scores each head's rows separately: the same sums as the whole batch.
    routed = DepthMetrics(min_depth=0.001, max_depth=80.0, crop="garg")
    for rows in ([0, 3, 4], [1, 2]):
        score_batch(routed, pred[rows], batch, rows=rows)
    for name, value in pooled.compute().items():
        assert float(value) == pytest.approx(float(routed.compute()[name]), rel=1e-6), name


def test_garg_crop_lands_on_precropped_kitti_frames() -> None:
    # val_selection_cropped: bottom 352 rows and centred 1216 columns of a 375×1242 frame.
    pre = Precropped(size=(352, 1216), frame_size=(375, 1242))
    assert pre.offset() == (23, 13)
    full = crop_box("garg", 375, 1242)
    assert full == (153, 371, 44, 1197)
    assert crop_box_in_frame("garg", 352, 1216, (375, 1242, 23, 13)) == (130, 348, 31, 1184)
    assert crop_box("garg", 352, 1216) == (143, 349, 43, 1172)  # the old, wrong result
    # The metric with frames = the metric on the full frame where the crop was cut from.
    full_gt = torch.rand(1, 1, 375, 1242) * 70 + 1
    full_pred = full_gt * 1.1
    window = (slice(None), slice(None), slice(23, 375), slice(13, 13 + 1216))
    on_crop = DepthMetrics(max_depth=80.0, crop="garg")
    on_crop.update(full_pred[window], full_gt[window], frames=torch.tensor([[375, 1242, 23, 13]]))
    on_full = DepthMetrics(max_depth=80.0, crop="garg")
    on_full.update(full_pred, full_gt)
    assert float(on_crop.count) == float(on_full.count) == (371 - 153) * (1197 - 44)
    assert float(on_crop.compute()["abs_rel"]) == pytest.approx(float(on_full.compute()["abs_rel"]))


def test_precropped_samples_carry_their_frame(tmp_path: Path) -> None:
    domain = make_domain(tmp_path, "K", size=(14, 48), count=2, depth_scale=256.0, max_depth=80.0)
    domain = _with(domain, precropped=Precropped(size=(14, 48), frame_size=(15, 50)))
    assert DepthDataset(domain, "test")[0]["frame"].tolist() == [15, 50, 1, 1]
    other = _with(domain, precropped=Precropped(size=(9, 9), frame_size=(15, 50)))
    assert DepthDataset(other, "test")[0]["frame"].tolist() == [14, 48, 0, 0]  # not that size: own frame


def test_bottom_crop_keeps_scale_in_training_and_evaluation(tmp_path: Path) -> None:
    domain = make_domain(tmp_path, "K", size=(15, 50), count=3, depth_scale=256.0, max_depth=80.0)
    _resize_frames(domain, {0: (15, 50)})  # random depth: every window differs
    domain = _with(domain, input_size=(8, 16), input_fit="bottom_crop")
    depth = DepthDataset(domain, "test")[0]["depth"]  # evaluation: centred window of the bottom rows
    full = DepthDataset(_with(domain, input_fit="stretch"), "test")[0]["depth"]
    torch.testing.assert_close(depth, full[:, 7:15, 17:33])
    assert DepthDataset(domain, "test")[0]["frame"].tolist() == [15, 50, 7, 17]
    train = DepthDataset(domain, "train", train=True)
    windows = set()
    for epoch in range(6):
        train.set_epoch(epoch)
        sample = train[0]["depth"][0]
        assert sample.shape == (8, 16)
        starts = [c for c in range(35) if torch.equal(full[0, 7:15, c : c + 16], sample)]
        assert starts, "not an unscaled window of the bottom rows"
        windows.add(starts[0])
    assert len(windows) > 1  # the window moves


def test_paper_view_is_the_original_resize_and_centre_crop() -> None:
    rows, cols = torch.meshgrid(torch.arange(480.0), torch.arange(640.0), indexing="ij")
    target = (rows * 1000 + cols + 1)[None, None]
    pred, gt = paper_view(torch.ones(1, 1, 60, 80), target, {"resize_short": 240, "center_crop": (228, 304)})
    assert gt.shape == pred.shape == (1, 1, 228, 304)
    # PIL NEAREST 480×640 → 240×320 takes source pixel 2i+1; the crop starts at (6, 8).
    assert float(gt[0, 0, 0, 0]) == (2 * 6 + 1) * 1000 + (2 * 8 + 1) + 1
    assert float(gt[0, 0, -1, -1]) == (2 * 233 + 1) * 1000 + (2 * 311 + 1) + 1


def test_paper_protocol_uses_the_domain_geometry(tmp_path: Path) -> None:
    domain = make_domain(tmp_path, size=(48, 64), count=2)
    batch = eval_collate([DepthDataset(domain, "test")[i] for i in range(2)])
    metric = DepthMetrics(protocol="paper")
    score_batch(metric, torch.ones(2, 1, 12, 16), batch, {"resize_short": 24, "center_crop": (20, 28)})
    assert float(metric.count) == 2 * 20 * 28
