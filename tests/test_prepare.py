"""Importers on format-faithful replicas of the real downloads (tests/replicas.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import replicas
from lifelong_monodepth.data.depth_io import read_depth, read_rgb
from lifelong_monodepth.data.index import read_index
from lifelong_monodepth.data.prepare.cli import main
from lifelong_monodepth.data.prepare.kitti import parse_list_line


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _prepare(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_nyu_release_records_each_splits_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = replicas.nyu_release(tmp_path / "nyu")
    out = tmp_path / "index"
    code, printed, _ = _prepare(
        capsys, "nyu", "--source", str(source), "--out", str(out), "--val-fraction", "0.3"
    )
    assert code == 0
    assert "train 3  val 3  test 3  replay 3" in printed
    assert "1 train: listed file missing" in printed and "kitchen_0003_out/1.jpg" in printed
    train, test = _rows(out / "train.csv"), _rows(out / "test.csv")
    assert {r["depth_scale"] for r in train} == {"25.5"} and {r["depth_scale"] for r in test} == {"1000"}
    assert test[0] == {
        "rgb": "data/nyu2_test/00000_colors.png",
        "depth": "data/nyu2_test/00000_depth.png",
        "depth_scale": "1000",
    }
    # Validation holds out a whole scene; replay is drawn from what stays in train.
    val_scenes = {Path(r["rgb"]).parent.name for r in _rows(out / "val.csv")}
    assert len(val_scenes) == 1 and not val_scenes & {Path(r["rgb"]).parent.name for r in train}
    assert {r["rgb"] for r in _rows(out / "replay.csv")} <= {r["rgb"] for r in train}
    # The row's scale turns the 8-bit training value back into metres (255 = 10 m).
    row = read_index(out / "train.csv", source)[0]
    assert row.depth_scale == 25.5 and row.rgb.is_file()
    manifest = json.loads((out / "prepare.json").read_text())
    assert manifest["counts"] == {"train": 3, "val": 3, "test": 3, "replay": 3}
    assert manifest["skipped"] == {"train: listed file missing": 1}


def test_nyu_release_with_16bit_training_depth_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = replicas.nyu_release(tmp_path / "nyu")
    first = source / "data/nyu2_train/living_room_0001a_out/1.png"
    import cv2

    cv2.imwrite(str(first), np.full((4, 4), 1000, np.uint16))
    code, _, err = _prepare(capsys, "nyu", "--source", str(source), "--out", str(tmp_path / "i"))
    assert code == 2 and "8-bit PNG (255 = 10 m)" in err and "uint16" in err


def test_nyu_labeled_mat_is_exported_untransposed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = replicas.nyu_labeled(tmp_path / "nyu")
    out = tmp_path / "index"
    code, printed, _ = _prepare(
        capsys, "nyu", "--source", str(source), "--out", str(out), "--val-fraction", "0.2"
    )
    assert code == 0 and "exported 7 images" in printed
    assert "train 4  val 1  test 2  replay 4" in printed
    test = read_index(out / "test.csv", source)
    assert [r.rgb.name for r in test] == ["00003_rgb.png", "00006_rgb.png"]  # testNdxs 3, 6 (1-based)
    rgb = read_rgb(test[0].rgb)
    depth = read_depth(test[0].depth, 1000.0)  # the domain's default scale: millimetres
    assert rgb.shape == (24, 32, 3) and depth.shape == (24, 32)
    # Image 3 (index 2): red = 20, blue grows along columns; depth 2.0 m + col / 100.
    assert rgb[0, 0, 0] == 20 and rgb[5, 7, 2] == 28
    np.testing.assert_allclose(depth[3], 2.0 + np.arange(32) / 100, atol=1e-3)
    assert all(r.depth_scale is None for r in test)


def test_nyu_wrong_source_names_what_it_expected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "nyu").mkdir()
    code, _, err = _prepare(capsys, "nyu", "--source", str(tmp_path / "nyu"))
    assert code == 2
    assert "data/nyu2_train.csv" in err and "nyu_depth_v2_labeled.mat" in err and "splits.mat" in err


def test_kitti_official_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = replicas.kitti(tmp_path / "kitti")
    out = tmp_path / "index"
    code, printed, _ = _prepare(capsys, "kitti", "--source", str(source), "--out", str(out))
    assert code == 0
    # Train: drive 0001 frames 5..8 × 2 cameras + drive 0002 frames 5..7 × left only (right not downloaded).
    assert "train 11  val 1  test 3  replay 11" in printed
    assert "3 train: raw image missing for annotated depth" in printed
    assert "3 annotated val frames are in val_selection_cropped" in printed
    test = _rows(out / "test.csv")
    assert test[0]["rgb"].endswith("image/2011_09_26_drive_0005_sync_image_0000000005_image_02.png")
    assert test[0]["depth"].endswith(
        "groundtruth_depth/2011_09_26_drive_0005_sync_groundtruth_depth_0000000005_image_02.png"
    )
    val = _rows(out / "val.csv")
    assert val == [
        {
            "rgb": "2011_09_26/2011_09_26_drive_0005_sync/image_03/data/0000000005.png",
            "depth": "data_depth_annotated/val/2011_09_26_drive_0005_sync/proj_depth/groundtruth/image_03/"
            "0000000005.png",
        }
    ]
    frames = {Path(r["depth"]).stem for r in _rows(out / "train.csv")}
    assert min(frames) == "0000000005"  # annotated depth starts at frame 5


def test_kitti_eigen_split_skips_none_rows_and_frames_without_ground_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = replicas.kitti(tmp_path / "kitti")
    out = tmp_path / "index"
    code, printed, _ = _prepare(
        capsys, "kitti", "--source", str(source), "--split", "eigen", "--out", str(out), "--val-fraction", "0"
    )
    assert code == 0
    assert "train 3  val 0  test 2  replay 3" in printed
    assert "2 train: no annotated depth" in printed
    assert "1 test: `None` row in eigen_test_files.txt" in printed
    assert not (out / "val.csv").exists()
    train = _rows(out / "train.csv")
    assert train[1]["rgb"] == "2011_09_26/2011_09_26_drive_0001_sync/image_03/data/0000000006.png"  # "6 r"


def test_eigen_list_line_forms() -> None:
    frame, second = parse_list_line("2011_09_26/2011_09_26_drive_0022_sync 473 r")
    assert (frame.drive, frame.camera, frame.frame, second) == (
        "2011_09_26_drive_0022_sync",
        "image_03",
        "0000000473",
        None,
    )
    frame, second = parse_list_line(
        "2011_09_30/2011_09_30_drive_0028_sync/image_02/data/0000001234.jpg "
        "2011_09_30/2011_09_30_drive_0028_sync/image_03/data/0000001234.jpg"
    )
    assert (frame.camera, frame.frame, second) == ("image_02", "0000001234", None)  # right image: ignored
    assert parse_list_line("a/b/image_02/data/0000000001.png None 721.5")[1] == "None"
    with pytest.raises(ValueError, match="unrecognised"):
        parse_list_line("not a kitti line")


def test_kitti_wrong_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "k").mkdir()
    code, _, err = _prepare(capsys, "kitti", "--source", str(tmp_path / "k"))
    assert code == 2 and "No KITTI raw data" in err and "image_02/data/0000000000.png" in err


def test_scannet_paper_scenes_and_strides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = replicas.scannet(tmp_path / "scannet")
    out = tmp_path / "index"
    code, printed, _ = _prepare(
        capsys,
        "scannet",
        "--source",
        str(source),
        "--out",
        str(out),
        "--train-stride",
        "12",
        "--val-fraction",
        "0.5",
    )
    assert code == 0
    # Test scene 0707_00: frames 12, 24, 36, 48 minus frame 24 (no depth file).
    assert [r["rgb"] for r in _rows(out / "test.csv")] == [
        "scans/scene0707_00/color/12.jpg",
        "scans/scene0707_00/color/36.jpg",
        "scans/scene0707_00/color/48.jpg",
    ]
    assert "1 depth frame missing for a colour frame" in printed
    train, val = _rows(out / "train.csv"), _rows(out / "val.csv")
    assert len(train) == len(val) == 4  # one whole scene each: frames 12, 24, 36, 48
    assert len({Path(r["rgb"]).parts[1] for r in train}) == 1
    assert train[0]["depth"].endswith("depth/12.png")


def test_scannet_wrong_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s" / "scene0001_00").mkdir(parents=True)  # no color/ and depth/
    code, _, err = _prepare(capsys, "scannet", "--source", str(tmp_path / "s"))
    assert code == 2 and "No ScanNet scenes" in err and "scene0707_00/color/0.jpg" in err


def test_index_depth_scale_column_round_trip(tmp_path: Path) -> None:
    from lifelong_monodepth.data.errors import DataError
    from lifelong_monodepth.data.index import write_index

    write_index(tmp_path / "a.csv", [("x.png", "x_d.png", 25.5), ("y.png", "y_d.png", None)])
    rows = read_index(tmp_path / "a.csv", tmp_path)
    assert [r.depth_scale for r in rows] == [25.5, None]
    (tmp_path / "b.csv").write_text("rgb,depth,depth_scale\nx.png,x_d.png,-3\n")
    with pytest.raises(DataError, match=r"b\.csv, line 2: depth_scale must be a positive number"):
        read_index(tmp_path / "b.csv", tmp_path)


def test_a_rows_depth_scale_wins_and_survives_the_replay_checkpoint(tmp_path: Path) -> None:
    from conftest import make_domain
    from lifelong_monodepth.data.dataset import DepthDataset
    from lifelong_monodepth.data.index import IndexRow
    from lifelong_monodepth.lifelong.replay import ReplayBuffer

    domain = make_domain(tmp_path, count=2, depth_scale=1000.0)  # files hold millimetres
    rows = read_index(domain.index_path("test"), domain.root)
    as_metres = DepthDataset(domain, "test").load_pair(0)[1]
    rescaled = [IndexRow(rows[0].rgb, rows[0].depth, depth_scale=500.0)]
    doubled = DepthDataset(domain, "test", rows=rescaled).load_pair(0)[1]
    np.testing.assert_allclose(doubled, 2 * as_metres, rtol=1e-6)

    buffer = ReplayBuffer(capacity_per_domain=2)
    buffer.add_domain("N", rescaled)
    restored = ReplayBuffer()
    restored.load_state_dict(buffer.state_dict())
    assert restored.rows["N"] == rescaled
    restored.load_state_dict({"N": [("a.png", "a_d.png")]})  # checkpoints written before the column
    assert restored.rows["N"][0].depth_scale is None
