"""ScanNet (Dai et al. 2017) frames exported by its SensReader (``reader.py --export_color_images
--export_depth_images --export_intrinsics``).

Layout: ``<source>/scene0707_00/color/12.jpg`` (1296×968 JPEG), ``depth/12.png`` (640×480, 16-bit,
millimetres, 0 = invalid), ``intrinsic/intrinsic_color.txt`` and ``intrinsic_depth.txt`` (4×4). Scene
folders may also sit one level down (``scans/``, ``scans_test/``, ``scannet_train/`` …).

The paper tests on scenes scene0707_00–scene0806_00 (ScanNet's test scans), every 12th frame from frame
12 on, and trains on the other scenes every 48th frame from frame 12 on (the original lists). The colour
and depth frames differ in size; the ``scannet`` domain's ``align`` option resizes them consistently.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lifelong_monodepth.data.prepare.common import (
    Pair,
    PrepareResult,
    SourceError,
    hold_out_val,
    sample_replay,
)

SCENE = re.compile(r"^scene(?P<id>\d{4})_(?P<scan>\d{2})$")
#: The paper's test scenes: scene0707_00 – scene0806_00, inclusive.
PAPER_TEST_SCENES = ("0707_00", "0806_00")


def parse_scene_range(text: str) -> tuple[str, str]:
    """``"0707_00-0806_00"`` → (first, last), both ``NNNN_NN``."""
    match = re.fullmatch(r"(?:scene)?(\d{4}_\d{2})-(?:scene)?(\d{4}_\d{2})", text.strip())
    if not match:
        raise SourceError(f"--test-scenes must look like 0707_00-0806_00, got {text!r}.")
    return match[1], match[2]


def find_scenes(source: Path) -> list[Path]:
    """Scene folders (``sceneNNNN_NN`` with ``color/`` and ``depth/``) in ``source`` or one level down."""
    found = []
    for folder in [source, *sorted(p for p in source.iterdir() if p.is_dir())]:
        for child in sorted(folder.iterdir()) if folder.is_dir() else []:
            if SCENE.match(child.name) and (child / "color").is_dir() and (child / "depth").is_dir():
                found.append(child)
    return sorted(set(found), key=lambda p: (p.name, str(p)))


def prepare_scannet(
    source: Path,
    test_scenes: tuple[str, str] = PAPER_TEST_SCENES,
    test_stride: int = 12,
    test_offset: int = 12,
    train_stride: int = 48,
    train_offset: int = 12,
    val_fraction: float = 0.05,
    replay: int = 500,
    seed: int = 0,
    check_intrinsics: bool = True,
) -> PrepareResult:
    """Pairs for train/val/test/replay from SensReader exports (see the module docstring)."""
    if not source.is_dir():
        raise SourceError(f"--source {source} is not a folder.")
    scenes = find_scenes(source)
    if not scenes:
        raise SourceError(
            f"No ScanNet scenes under {source}: expected SensReader exports such as "
            f"{source}/scene0707_00/color/0.jpg with depth/0.png (in --source or one folder below it)."
        )
    result = PrepareResult(dataset="scannet", source=source)
    first, last = test_scenes
    train: list[Pair] = []
    test: list[Pair] = []
    incomplete: list[str] = []
    for scene in scenes:
        is_test = first <= scene.name.removeprefix("scene") <= last
        stride, offset = (test_stride, test_offset) if is_test else (train_stride, train_offset)
        if check_intrinsics and not _has_intrinsics(scene):
            incomplete.append(scene.name)
        pairs = _frames(scene, stride, offset, result)
        (test if is_test else train).extend(pairs)
    if incomplete:
        result.notes.append(
            f"{len(incomplete)} scene(s) lack intrinsic/intrinsic_{{color,depth}}.txt as 4×4 matrices "
            f"(e.g. {', '.join(incomplete[:3])}): export them with SensReader --export_intrinsics"
        )
    if not test:
        result.notes.append(f"no scene in the test range scene{first}–scene{last}: test.csv not written")
    train, val = hold_out_val(train, val_fraction, seed)
    result.splits = {"train": train, "val": val, "test": test, "replay": sample_replay(train, replay, seed)}
    result.notes.append(
        f"{len(scenes)} scenes; test = scene{first}–scene{last} every {test_stride}th frame "
        f"from {test_offset}, "
        f"train = the others every {train_stride}th frame from {train_offset}"
    )
    return result


def _frames(scene: Path, stride: int, offset: int, result: PrepareResult) -> list[Pair]:
    """Frames ``offset, offset + stride, …`` of a scene that have both a colour and a depth file."""
    numbers = sorted(int(p.stem) for p in (scene / "color").glob("*.jpg") if p.stem.isdigit())
    pairs = []
    for number in numbers:
        if number < offset or (number - offset) % max(stride, 1):
            continue
        depth = scene / "depth" / f"{number}.png"
        if not depth.is_file():
            result.skip("depth frame missing for a colour frame", depth)
            continue
        pairs.append(Pair(scene / "color" / f"{number}.jpg", depth, group=scene.name))
    return pairs


def _has_intrinsics(scene: Path) -> bool:
    """Both intrinsic files exist and hold 4×4 matrices (an incomplete export lacks them)."""
    for which in ("color", "depth"):
        try:
            if intrinsics(scene, which).shape != (4, 4):
                return False
        except (OSError, ValueError):
            return False
    return True


def intrinsics(scene: Path, which: str = "color") -> np.ndarray:
    """The 4×4 intrinsic matrix of a scene's colour or depth camera, as exported by SensReader."""
    return np.loadtxt(scene / "intrinsic" / f"intrinsic_{which}.txt").reshape(4, 4)


__all__: Sequence[str] = ("prepare_scannet", "find_scenes", "parse_scene_range", "intrinsics")
