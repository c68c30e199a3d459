"""Real datasets as they come: 8-bit depth with a declared scale, per-row scales, size alignment,
truncated images, foreign checkpoints."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from conftest import make_domain
from lifelong_monodepth.data.dataset import DepthDataset
from lifelong_monodepth.data.depth_io import read_depth, read_rgb, write_depth_png, write_rgb
from lifelong_monodepth.data.domain import DomainConfig
from lifelong_monodepth.data.errors import ConfigError, DataError
from lifelong_monodepth.data.index import read_index, write_index


def _with(domain: DomainConfig, **changes) -> DomainConfig:
    return DomainConfig(**{**domain.__dict__, **changes})


def test_8bit_depth_needs_a_declared_scale(tmp_path: Path) -> None:
    path = tmp_path / "d.png"
    cv2.imwrite(str(path), np.array([[255, 51], [0, 128]], np.uint8))
    with pytest.raises(DataError, match=r"d\.png is uint8.*set `domains\.N\.depth_scale_uint8` \(25\.5"):
        read_depth(path, 1000.0, key="domains.N.depth_scale_uint8")
    metres = read_depth(path, 1000.0, depth_scale_uint8=25.5)  # the original NYU release: 255 = 10 m
    np.testing.assert_allclose(metres, [[10.0, 2.0], [0.0, 128 / 25.5]], rtol=1e-6)


def test_index_depth_scale_column_mixes_8_and_16_bit_rows(tmp_path: Path) -> None:
    """The original NYU release: 8-bit training maps (×10/255) next to 16-bit millimetres."""
    image = np.full((4, 6, 3), 90, np.uint8)
    write_rgb(tmp_path / "a.png", image)
    write_rgb(tmp_path / "b.png", image)
    cv2.imwrite(str(tmp_path / "a_d.png"), np.full((4, 6), 51, np.uint8))  # 2 m at 25.5
    write_depth_png(tmp_path / "b_d.png", np.full((4, 6), 3.0, np.float32), 1000.0)
    index = tmp_path / "train.csv"
    write_index(index, [("a.png", "a_d.png", "25.5"), ("b.png", "b_d.png")])
    assert index.read_text().splitlines()[0] == "rgb,depth,depth_scale"
    rows = read_index(index, tmp_path)
    assert [r.depth_scale for r in rows] == [25.5, None]
    domain = make_domain(tmp_path / "x", size=(4, 6), count=1)
    dataset = DepthDataset(domain, "train", rows=rows)
    assert float(dataset[0]["depth"].mean()) == pytest.approx(2.0)
    assert float(dataset[1]["depth"].mean()) == pytest.approx(3.0)  # the domain's 1000
    (tmp_path / "bad.csv").write_text("rgb,depth,depth_scale\na.png,a_d.png,ten\n")
    with pytest.raises(
        DataError, match=r"bad\.csv, line 2: depth_scale must be a positive number, got 'ten'"
    ):
        read_index(tmp_path / "bad.csv", tmp_path)


def test_scannet_sizes_are_aligned_as_the_domain_says(tmp_path: Path) -> None:
    """Colour 1296×968 and depth 640×480 in ScanNet exports: a tiny analogue with the same mismatch."""
    domain = make_domain(tmp_path, size=(12, 16), count=2)
    rows = read_index(domain.index["test"], domain.root)
    write_rgb(rows[0].rgb, np.random.default_rng(0).integers(0, 255, (24, 33, 3), dtype=np.uint8))
    depth = read_depth(rows[0].depth, 1000.0)
    with pytest.raises(DataError, match=r"000_depth\.png is 16×12 but image .*000_rgb\.png is 33×24.*align"):
        DepthDataset(domain, "test")[0]
    sample = DepthDataset(_with(domain, align="resize_rgb_to_depth"), "test")[0]
    assert sample["depth"].shape == (1, 12, 16)
    np.testing.assert_array_equal(sample["depth"][0].numpy(), depth)  # depth untouched
    up = DepthDataset(_with(domain, align="resize_depth_to_rgb", input_size=(24, 32)), "test")[0]
    assert up["depth"].shape == (1, 24, 33)
    assert set(np.unique(up["depth"].numpy())) <= set(np.unique(depth))  # nearest: no new values
    with pytest.raises(ConfigError, match=r"`domains\.N\.align` is 'stretch'"):
        from lifelong_monodepth.data.domain import domains_from_config

        base = {"letter": "N", "name": "n", "root": ".", "index": {"train": "a", "test": "b"}}
        domains_from_config({"N": {**base, "depth_scale": 1, "min_depth": 0, "max_depth": 1,
                                   "input_size": [32, 32], "align": "stretch"}})  # fmt: skip


def test_truncated_jpeg_is_reported_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "frame.jpg"
    write_rgb(path, np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    assert read_rgb(path).shape == (48, 64, 3)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert cv2.imread(str(path)) is not None  # what OpenCV alone does: a grey lower half, no error
    with pytest.raises(DataError, match=r"Image .*frame\.jpg is truncated"):
        read_rgb(path)
    path.write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"Cannot decode image .*frame\.jpg"):
        read_rgb(path)


def test_foreign_checkpoint_points_to_the_converter(tmp_path: Path) -> None:
    from lifelong_monodepth.training.loading import load_module

    path = tmp_path / "NKS.pth.tar"
    torch.save({"epoch": 20, "state_dict": {"E.conv1.weight": torch.zeros(1)}}, path)
    with pytest.raises(ConfigError, match=r"NKS\.pth\.tar is not a lifelong-monodepth checkpoint.*"
                       r"python -m lifelong_monodepth\.convert"):  # fmt: skip
        load_module(path)


def test_replay_memory_keeps_a_rows_own_depth_scale() -> None:
    from lifelong_monodepth.data.index import IndexRow
    from lifelong_monodepth.lifelong.replay import ReplayBuffer

    buffer = ReplayBuffer(capacity_per_domain=2, selection="first")
    buffer.add_domain("N", [IndexRow(Path("a.png"), Path("a_d.png"), 25.5), IndexRow(Path("b"), Path("c"))])
    restored = ReplayBuffer()
    restored.load_state_dict(buffer.state_dict())
    assert restored.rows == buffer.rows and restored.rows["N"][0].depth_scale == 25.5
