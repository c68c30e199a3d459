"""Tiny, format-faithful replicas of the real downloads (file names, folder layouts, encodings).

Each builder writes into a temporary folder what a user has on disk after downloading the dataset,
with a few small images (the importers never depend on the image size) and the quirks that matter:
the NYU release's 8-bit training depth, the labeled ``.mat`` as MATLAB v7.3 (HDF5 with the 512-byte
MATLAB header, arrays stored transposed), KITTI's annotated depth starting at frame 5, the
val_selection_cropped naming and Eigen lists with a ``None`` row, ScanNet's SensReader export.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lifelong_monodepth.data.depth_io import write_depth_png, write_rgb

RNG = np.random.default_rng(0)


def _image(height: int, width: int) -> np.ndarray:
    return RNG.integers(0, 255, size=(height, width, 3), dtype=np.uint8)


def _depth(height: int, width: int, max_depth: float) -> np.ndarray:
    ramp = np.linspace(0.5, max_depth * 0.9, height, dtype=np.float32)[:, None].repeat(width, 1)
    return ramp


# ------------------------------------------------------------------------------------------------ NYU
def nyu_release(root: Path, size: tuple[int, int] = (48, 64)) -> Path:
    """``data/nyu2_train.csv`` (8-bit depth, 255 = 10 m) and ``data/nyu2_test.csv`` (16-bit mm).

    Two training scenes of three frames, one listed training row whose files are missing, three test
    images. Returns the source folder (the one holding ``data/``).
    """
    h, w = size
    train_rows = []
    for scene in ("living_room_0001a_out", "bedroom_0002b_out"):
        for frame in (1, 2, 3):
            rgb, depth = f"data/nyu2_train/{scene}/{frame}.jpg", f"data/nyu2_train/{scene}/{frame}.png"
            write_rgb(root / rgb, _image(h, w))
            stored = np.clip(np.round(_depth(h, w, 10.0) * 25.5), 1, 255).astype(np.uint8)
            (root / depth).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / depth), stored)
            train_rows.append(f"{rgb},{depth}")
    train_rows.append("data/nyu2_train/kitchen_0003_out/1.jpg,data/nyu2_train/kitchen_0003_out/1.png")
    test_rows = []
    for i in (0, 1, 8):
        rgb, depth = f"data/nyu2_test/{i:05d}_colors.png", f"data/nyu2_test/{i:05d}_depth.png"
        write_rgb(root / rgb, _image(h, w))
        write_depth_png(root / depth, _depth(h, w, 10.0), 1000.0)
        test_rows.append(f"{rgb},{depth}")
    (root / "data" / "nyu2_train.csv").write_text("\n".join(train_rows) + "\n")
    (root / "data" / "nyu2_test.csv").write_text("\n".join(test_rows) + "\n")
    return root


MATLAB_HEADER = (
    b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
)


def nyu_labeled(root: Path, count: int = 7, size: tuple[int, int] = (24, 32)) -> Path:
    """``nyu_depth_v2_labeled.mat`` as MATLAB v7.3 writes it (HDF5, N×3×W×H / N×W×H) + ``splits.mat``.

    Image ``i`` (0-based) has a distinct constant colour and depth ``1 + i/2`` m at pixel (row, col) plus
    ``col / 100``, so a test can check the transposition. Train = images 1, 2, 4, 5, 7 (1-based).
    """
    import h5py
    from scipy.io import savemat

    h, w = size
    images = np.zeros((count, 3, w, h), dtype=np.uint8)
    depths = np.zeros((count, w, h), dtype=np.float32)
    for i in range(count):
        hwc = np.zeros((h, w, 3), dtype=np.uint8)
        hwc[..., 0], hwc[..., 1], hwc[..., 2] = 10 * i, 100, np.arange(w)[None, :] * 4
        images[i] = hwc.transpose(2, 1, 0)
        depth = 1.0 + i / 2 + np.arange(w, dtype=np.float32)[None, :].repeat(h, 0) / 100
        depths[i] = depth.T
    root.mkdir(parents=True, exist_ok=True)
    path = root / "nyu_depth_v2_labeled.mat"
    with h5py.File(path, "w", userblock_size=512) as handle:
        handle["images"] = images
        handle["depths"] = depths
        handle["rawDepths"] = depths  # present in the real file, unused
    with path.open("r+b") as handle:  # MATLAB's text header lives in the HDF5 user block
        handle.write(MATLAB_HEADER.ljust(116) + b"\x00" * 8 + b"\x00\x02IM")
    savemat(
        root / "splits.mat",
        {"trainNdxs": np.array([[1], [2], [4], [5], [7]]), "testNdxs": np.array([[3], [6]])},
    )
    return root


# ---------------------------------------------------------------------------------------------- KITTI
KITTI_DRIVES = {
    # drive: (size (H, W), raw frames, annotated part)
    "2011_09_26_drive_0001_sync": ((30, 99), 14, "train"),
    "2011_09_28_drive_0002_sync": ((29, 98), 13, "train"),
    "2011_09_26_drive_0005_sync": ((30, 99), 12, "val"),
}


def kitti(root: Path, drives: dict | None = None) -> Path:
    """Raw drives (two dates, different frame sizes), annotated depth (frames 5 … n-6, both cameras),
    ``depth_selection/val_selection_cropped`` (3 frames of the val drive) and Eigen lists.

    The right camera of the 2011_09_28 drive has no raw images (a partly downloaded drive).
    """
    drives = drives or KITTI_DRIVES
    for drive, ((h, w), frames, part) in drives.items():
        date = drive[:10]
        for camera in ("image_02", "image_03"):
            for frame in range(frames):
                name = f"{frame:010d}.png"
                if not (camera == "image_03" and date == "2011_09_28"):
                    write_rgb(root / date / drive / camera / "data" / name, _image(h, w))
                if 5 <= frame < frames - 5:
                    gt = (
                        root
                        / "data_depth_annotated"
                        / part
                        / drive
                        / "proj_depth"
                        / "groundtruth"
                        / camera
                        / name
                    )
                    depth = _depth(h, w, 80.0)
                    depth[::2] = 0  # sparse
                    write_depth_png(gt, depth, 256.0)
    selection = root / "depth_selection" / "val_selection_cropped"
    for frame, camera in ((5, "image_02"), (6, "image_03"), (6, "image_02")):
        drive = "2011_09_26_drive_0005_sync"
        write_rgb(selection / "image" / f"{drive}_image_{frame:010d}_{camera}.png", _image(22, 76))
        write_depth_png(
            selection / "groundtruth_depth" / f"{drive}_groundtruth_depth_{frame:010d}_{camera}.png",
            _depth(22, 76, 80.0),
            256.0,
        )
    # Eigen lists: monodepth2 form for train (frames 0 and 13 have no ground truth), BTS form for test.
    (root / "eigen_train_files.txt").write_text(
        "2011_09_26/2011_09_26_drive_0001_sync 5 l\n"
        "2011_09_26/2011_09_26_drive_0001_sync 6 r\n"
        "2011_09_26/2011_09_26_drive_0001_sync 0 l\n"
        "2011_09_28/2011_09_28_drive_0002_sync 7 l\n"
        "2011_09_28/2011_09_28_drive_0002_sync 12 l\n"
    )
    (root / "eigen_test_files.txt").write_text(
        "2011_09_26/2011_09_26_drive_0005_sync/image_02/data/0000000005.png "
        "2011_09_26_drive_0005_sync/proj_depth/groundtruth/image_02/0000000005.png 721.5377\n"
        "2011_09_26/2011_09_26_drive_0005_sync/image_02/data/0000000006.png "
        "2011_09_26_drive_0005_sync/proj_depth/groundtruth/image_02/0000000006.png 721.5377\n"
        "2011_09_26/2011_09_26_drive_0005_sync/image_02/data/0000000000.png None 721.5377\n"
    )
    return root


# -------------------------------------------------------------------------------------------- ScanNet
def scannet(
    root: Path,
    scenes: tuple[str, ...] = ("scene0000_00", "scene0001_01", "scene0707_00"),
    frames: int = 50,
    color_size: tuple[int, int] = (24, 33),
    depth_size: tuple[int, int] = (12, 16),
) -> Path:
    """SensReader exports under ``scans/``: ``color/<n>.jpg``, ``depth/<n>.png`` (16-bit mm), intrinsics.

    Real sizes are 968×1296 (colour) and 480×640 (depth); the replica keeps the two differing. Frame 24
    of the test scene has no depth file.
    """
    for scene in scenes:
        folder = root / "scans" / scene
        for n in range(frames):
            write_rgb(folder / "color" / f"{n}.jpg", _image(*color_size))
            if not (scene == "scene0707_00" and n == 24):
                write_depth_png(folder / "depth" / f"{n}.png", _depth(*depth_size, 6.0), 1000.0)
        (folder / "intrinsic").mkdir(parents=True, exist_ok=True)
        for which, f in (("color", 1170.2), ("depth", 577.6)):
            matrix = np.array([[f, 0, 647.8, 0], [0, f, 483.8, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
            np.savetxt(folder / "intrinsic" / f"intrinsic_{which}.txt", matrix, fmt="%f")
    return root
