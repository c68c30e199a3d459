"""KITTI (Geiger et al. 2012; depth by Uhrig et al. 2017): raw frames + annotated depth, three splits.

Layout under ``--source`` (each part can live elsewhere: ``--raw``, ``--depth``, ``--selection``):

* raw frames: ``<date>/<date>_drive_XXXX_sync/image_02/data/0000000123.png`` (``image_03``: right camera);
* annotated depth (``data_depth_annotated.zip``): ``{train,val}/<drive>/proj_depth/groundtruth/image_02/
  0000000123.png``, 16-bit, metres = value / 256, 0 = no LiDAR point. It starts at frame 5 and stops 5
  frames before the end of each drive, so the first and last raw frames have no ground truth;
* ``depth_selection/val_selection_cropped/{image,groundtruth_depth}/`` (``data_depth_selection.zip``):
  1,000 frames cropped to 1216×352, named ``<drive>_image_<frame>_image_02.png`` ↔
  ``<drive>_groundtruth_depth_<frame>_image_02.png``.

Splits: ``official`` (the depth-prediction benchmark: train = annotated train, val = annotated val minus
the frames of val_selection_cropped, test = val_selection_cropped: the paper's test set) or ``eigen``
(the Eigen et al. lists ``eigen_train_files.txt`` / ``eigen_test_files.txt`` as distributed with
monodepth/monodepth2/BTS; frames without annotated depth and ``None`` rows are skipped and counted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lifelong_monodepth.data.prepare.common import (
    Pair,
    PrepareResult,
    SourceError,
    hold_out_val,
    sample_replay,
)

SPLITS = ("official", "eigen")
SELECTION_NAME = re.compile(r"^(?P<drive>.+_sync)_image_(?P<frame>\d+)_(?P<camera>image_0[23])\.png$")
DRIVE = re.compile(r"^(?P<date>\d{4}_\d{2}_\d{2})_drive_\d{4}_sync$")
SIDE_TO_CAMERA = {"l": "image_02", "r": "image_03"}
RGB_SUFFIXES = (".png", ".jpg")


@dataclass(frozen=True)
class Frame:
    """One camera frame of a raw drive."""

    drive: str
    camera: str
    frame: str

    @property
    def date(self) -> str:
        return self.drive[:10]


def prepare_kitti(
    source: Path,
    split: str = "official",
    raw: Path | None = None,
    depth: Path | None = None,
    selection: Path | None = None,
    train_list: Path | None = None,
    test_list: Path | None = None,
    cameras: Sequence[str] = ("image_02", "image_03"),
    val_fraction: float = 0.05,
    replay: int = 500,
    seed: int = 0,
) -> PrepareResult:
    """Pairs for train/val/test/replay (see the module docstring)."""
    if split not in SPLITS:
        raise SourceError(f"Unknown KITTI split {split!r}: choose one of {SPLITS}.")
    if not source.is_dir():
        raise SourceError(f"--source {source} is not a folder.")
    raw = raw or _find_raw(source)
    depth = depth or _find_depth(source)
    result = PrepareResult(dataset=f"kitti ({split} split)", source=source)
    if split == "official":
        selection = selection or _find_selection(source)
        train = [p for p in _annotated(depth, "train", raw, cameras, result)]
        val = [p for p in _annotated(depth, "val", raw, cameras, result)]
        if selection is None:
            raise SourceError(
                f"No depth_selection/val_selection_cropped under {source}: the official split tests on it "
                "(data_depth_selection.zip; give --selection DIR), or use --split eigen."
            )
        test, in_test = _selection(selection, result)
        # An annotated depth path ends in <drive>/proj_depth/groundtruth/<camera>/<frame>.png.
        held = [p for p in val if (p.group, p.depth.parent.name, p.depth.stem) not in in_test]
        if len(held) < len(val):
            result.notes.append(
                f"{len(val) - len(held)} annotated val frames are in val_selection_cropped: kept out of val"
            )
        val = held
        if not val:
            train, val = hold_out_val(train, val_fraction, seed)
    else:
        lists = [train_list or source / "eigen_train_files.txt", test_list or source / "eigen_test_files.txt"]
        for path in lists:
            if not path.is_file():
                raise SourceError(
                    f"Eigen split list not found: {path}. Put eigen_train_files.txt and eigen_test_files.txt "
                    "in --source or give --train-list/--test-list."
                )
        train = _from_list(lists[0], raw, depth, "train", result)
        test = _from_list(lists[1], raw, depth, "test", result)
        train, val = hold_out_val(train, val_fraction, seed)
    result.splits = {"train": train, "val": val, "test": test, "replay": sample_replay(train, replay, seed)}
    return result


# ----------------------------------------------------------------------------------------- locating
def _is_raw_root(folder: Path) -> bool:
    date = re.compile(r"\d{4}_\d{2}_\d{2}")
    return any(child.is_dir() and date.fullmatch(child.name) for child in _children(folder))


def _children(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _find_raw(source: Path) -> Path:
    # imgs/: the original Lifelong-MonoDepth layout (replay_kitti.csv lists imgs/<date>/<drive>/...).
    for candidate in (source, source / "raw", source / "raw_data", source / "kitti_raw", source / "imgs"):
        if _is_raw_root(candidate):
            return candidate
    raise SourceError(
        f"No KITTI raw data under {source}: expected date folders such as "
        f"{source}/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000000.png "
        "(or in raw/; give --raw DIR)."
    )


def _find_depth(source: Path) -> Path:
    for candidate in (source, source / "data_depth_annotated", source / "depth", source / "annotated"):
        if any((candidate / part).is_dir() for part in ("train", "val")):
            return candidate
    raise SourceError(
        f"No KITTI annotated depth under {source}: expected "
        "train/<drive>/proj_depth/groundtruth/image_02/*.png "
        "(data_depth_annotated.zip, in --source or data_depth_annotated/; give --depth DIR)."
    )


def _find_selection(source: Path) -> Path | None:
    for candidate in (
        source / "depth_selection" / "val_selection_cropped",
        source / "val_selection_cropped",
        source / "val_selection",  # the original Lifelong-MonoDepth layout (kitti_val_select.csv)
        source / "data_depth_selection" / "depth_selection" / "val_selection_cropped",
    ):
        if (candidate / "image").is_dir():
            return candidate
    return None


def _rgb_path(raw: Path, frame: Frame) -> Path | None:
    stem = raw / frame.date / frame.drive / frame.camera / "data" / frame.frame
    return next((stem.with_suffix(s) for s in RGB_SUFFIXES if stem.with_suffix(s).is_file()), None)


def _gt_path(depth: Path, frame: Frame) -> Path | None:
    for part in ("train", "val"):
        path = depth / part / frame.drive / "proj_depth" / "groundtruth" / frame.camera / f"{frame.frame}.png"
        if path.is_file():
            return path
    return None


# ------------------------------------------------------------------------------------------ splits
def _annotated(
    depth: Path, part: str, raw: Path, cameras: Iterable[str], result: PrepareResult
) -> list[Pair]:
    """Every annotated frame of ``depth/<part>`` with its raw image (skipped when the image is missing)."""
    pairs = []
    for drive_dir in _children(depth / part):
        if not DRIVE.match(drive_dir.name):
            continue
        for camera in cameras:
            for gt in sorted((drive_dir / "proj_depth" / "groundtruth" / camera).glob("*.png")):
                frame = Frame(drive_dir.name, camera, gt.stem)
                rgb = _rgb_path(raw, frame)
                if rgb is None:
                    result.skip(f"{part}: raw image missing for annotated depth (drive not downloaded?)", gt)
                    continue
                pairs.append(Pair(rgb, gt, group=frame.drive))
    return pairs


def _selection(selection: Path, result: PrepareResult) -> tuple[list[Pair], set[tuple[str, str, str]]]:
    """val_selection_cropped: ``image/<drive>_image_<frame>_<cam>.png`` ↔ ``groundtruth_depth/...``.

    Also returns the (drive, camera, frame) of each pair, to keep these frames out of validation.
    """
    pairs, keys = [], set()
    for image in sorted((selection / "image").glob("*.png")):
        match = SELECTION_NAME.match(image.name)
        if not match:
            result.skip("val_selection_cropped: unexpected image name", image.name)
            continue
        gt_name = f"{match['drive']}_groundtruth_depth_{match['frame']}_{match['camera']}.png"
        gt = selection / "groundtruth_depth" / gt_name
        if not gt.is_file():
            result.skip("val_selection_cropped: no groundtruth_depth file", gt_name)
            continue
        pairs.append(Pair(image, gt, group=match["drive"]))
        keys.add((match["drive"], match["camera"], match["frame"]))
    return pairs, keys


def parse_list_line(line: str) -> tuple[Frame | None, str | None]:
    """One line of an Eigen list → (frame, explicit depth path or ``"None"``), or (None, None) if blank.

    Accepted forms: ``<date>/<drive> <frame> l|r`` (monodepth2), ``<date>/<drive>/image_02/data/<frame>.png
    <second path> [focal]`` (monodepth, BTS: the second path is the right image, a depth path or ``None``).
    """
    tokens = line.split()
    if not tokens:
        return None, None
    if len(tokens) >= 3 and tokens[2] in SIDE_TO_CAMERA and tokens[1].isdigit():
        drive = tokens[0].rstrip("/").split("/")[-1]
        return Frame(drive, SIDE_TO_CAMERA[tokens[2]], f"{int(tokens[1]):010d}"), None
    parts = Path(tokens[0]).parts
    if len(parts) >= 4 and parts[-2] == "data" and parts[-3].startswith("image_0"):
        frame = Frame(parts[-4], parts[-3], Path(parts[-1]).stem)
        second = tokens[1] if len(tokens) > 1 else None
        return frame, second if second in ("None",) or (second and "proj_depth" in second) else None
    raise ValueError(f"unrecognised Eigen list line: {line.strip()!r}")


def _from_list(path: Path, raw: Path, depth: Path, split: str, result: PrepareResult) -> list[Pair]:
    pairs = []
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            frame, second = parse_list_line(line)
        except ValueError as err:
            raise SourceError(f"{path}, line {line_number}: {err}") from err
        if frame is None:
            continue
        name = f"{frame.drive}/{frame.camera}/{frame.frame}"
        if second == "None":
            result.skip(f"{split}: `None` row in {path.name} (no ground truth listed)", name)
            continue
        rgb = _rgb_path(raw, frame)
        if rgb is None:
            result.skip(f"{split}: raw image missing", name)
            continue
        gt = _gt_path(depth, frame)
        if second and gt is None:
            for base in (depth, depth / "train", depth / "val"):
                if (base / second).is_file():
                    gt = base / second
                    break
        if gt is None:
            result.skip(f"{split}: no annotated depth (none for the first/last 5 frames of a drive)", name)
            continue
        pairs.append(Pair(rgb, gt, group=frame.drive))
    return pairs
