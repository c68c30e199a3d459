"""NYU-v2 (Silberman et al. 2012) from either of the two downloads people have.

``release``: the original Lifelong-MonoDepth / DenseDepth data release (``nyu_data.zip``), a folder
``data/`` with ``nyu2_train.csv`` and ``nyu2_test.csv`` (no header, rows ``rgb,depth`` relative to the
folder above ``data/``). Its training depth is an 8-bit PNG where 255 = 10 m (the original code
multiplies by 10), its test depth a 16-bit PNG in millimetres: the two splits need different scales, so
every row is written with its own ``depth_scale`` (see ``data/index.py``).

``labeled``: the official ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3, i.e. HDF5: ``images`` stored
transposed as N×3×W×H uint8, ``depths`` as N×W×H float metres) with ``splits.mat`` (``trainNdxs`` /
``testNdxs``, 1-based: 795 / 654 images). The images are exported once to PNG (RGB) and 16-bit PNG
(millimetres, the domain's default scale 1000).
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from lifelong_monodepth.data.depth_io import write_depth_png, write_rgb
from lifelong_monodepth.data.prepare.common import (
    Pair,
    PrepareResult,
    SourceError,
    hold_out_val,
    sample_replay,
)

RELEASE_FILES = ("nyu2_train.csv", "nyu2_test.csv")
LABELED_FILE = "nyu_depth_v2_labeled.mat"
SPLITS_FILE = "splits.mat"
#: Millimetres: the scale of the release's test depth and of the labeled export.
MM_SCALE = 1000.0
#: The release's training depth: 8-bit, 255 = 10 m.
RELEASE_TRAIN_SCALE = 255.0 / 10.0


def detect_layout(source: Path) -> str:
    """``release`` or ``labeled`` from the files in ``source``; a clear error when it is neither."""
    if _release_csv_dir(source) is not None:
        return "release"
    if (source / LABELED_FILE).is_file():
        return "labeled"
    raise SourceError(
        f"{source} is not an NYU-v2 download: expected either the original release "
        f"(data/{RELEASE_FILES[0]} and data/{RELEASE_FILES[1]}, from nyu_data.zip) or the official labeled "
        f"set ({LABELED_FILE} with {SPLITS_FILE} beside it)."
    )


def prepare_nyu(
    source: Path,
    layout: str = "auto",
    val_fraction: float = 0.05,
    replay: int = 500,
    seed: int = 0,
    export_dir: Path | None = None,
    train_depth_scale: float = RELEASE_TRAIN_SCALE,
    test_depth_scale: float = MM_SCALE,
    force: bool = False,
) -> PrepareResult:
    """Pairs for train/val/test/replay from either NYU-v2 download (see the module docstring)."""
    if not source.is_dir():
        raise SourceError(f"--source {source} is not a folder.")
    layout = detect_layout(source) if layout == "auto" else layout
    result = PrepareResult(dataset=f"nyu ({layout})", source=source)
    if layout == "release":
        train = _read_release(source, "train", train_depth_scale, np.uint8, result)
        test = _read_release(source, "test", test_depth_scale, np.uint16, result)
    elif layout == "labeled":
        train, test = _export_labeled(source, export_dir or source / "labeled_export", force, result)
    else:
        raise SourceError(f"Unknown NYU layout {layout!r}: choose auto, release or labeled.")
    train, val = hold_out_val(train, val_fraction, seed)
    result.splits = {"train": train, "val": val, "test": test, "replay": sample_replay(train, replay, seed)}
    return result


# -------------------------------------------------------------------------------------------- release
def _release_csv_dir(source: Path) -> Path | None:
    for folder in (source / "data", source):
        if all((folder / name).is_file() for name in RELEASE_FILES):
            return folder
    return None


def _read_release(source: Path, split: str, scale: float, dtype: type, result: PrepareResult) -> list[Pair]:
    """Rows of ``nyu2_<split>.csv`` whose files exist; the first depth file's encoding is checked."""
    folder = _release_csv_dir(source)
    if folder is None:
        raise SourceError(f"{source} has no data/{RELEASE_FILES[0]} and data/{RELEASE_FILES[1]}.")
    csv_path = folder / f"nyu2_{split}.csv"
    bases = [folder.parent, folder, source]  # rows are "data/nyu2_train/..." (relative to data/..)
    pairs: list[Pair] = []
    with csv_path.open(newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            row = [cell.strip() for cell in row if cell.strip()]
            if not row:
                continue
            if len(row) < 2:
                result.skip(f"{csv_path.name}: malformed row (expected rgb,depth)", f"line {line_number}")
                continue
            base = next((b for b in bases if (b / row[0]).is_file()), None)
            if base is None or not (base / row[1]).is_file():
                result.skip(f"{split}: listed file missing", row[0] if base is None else row[1])
                continue
            rgb, depth = base / row[0], base / row[1]
            # The scene folder (e.g. "basement_0001a_out") groups the frames of one video.
            pairs.append(Pair(rgb, depth, group=rgb.parent.name, depth_scale=scale))
    if pairs:
        _check_depth_encoding(pairs[0].depth, dtype, split)
    return pairs


def _check_depth_encoding(path: Path, dtype: type, split: str) -> None:
    """Refuse a release whose depth files are not what the scales written for them assume."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    expected = "8-bit PNG (255 = 10 m)" if dtype is np.uint8 else "16-bit PNG in millimetres"
    if raw is None or raw.ndim != 2 or raw.dtype != dtype:
        found = "unreadable" if raw is None else f"{raw.dtype}, {raw.ndim} dim(s)"
        raise SourceError(
            f"{path}: the original NYU release stores {split} depth as {expected}, this file is {found}. "
            "Is this the nyu_data.zip release? Otherwise list your files in an index CSV yourself."
        )


# -------------------------------------------------------------------------------------------- labeled
def _export_labeled(
    source: Path, export_dir: Path, force: bool, result: PrepareResult
) -> tuple[list[Pair], list[Pair]]:
    """Write each image as PNG + 16-bit PNG (mm) once; pairs of the official train/test split."""
    import h5py

    splits_path = source / SPLITS_FILE
    if not splits_path.is_file():
        raise SourceError(
            f"{source} has {LABELED_FILE} but no {SPLITS_FILE}: download the official train/test split "
            "(splits.mat, with trainNdxs and testNdxs) next to it."
        )
    train_ids, test_ids = _read_splits(splits_path)
    try:
        mat = h5py.File(source / LABELED_FILE, "r")
    except OSError as err:
        raise SourceError(
            f"Cannot open {source / LABELED_FILE} as MATLAB v7.3 (HDF5): {err}. Re-download the file."
        ) from err
    with mat:
        for key in ("images", "depths"):
            if key not in mat:
                raise SourceError(f"{source / LABELED_FILE} has no `{key}` dataset (found {sorted(mat)}).")
        images, depths = mat["images"], mat["depths"]
        count = images.shape[0]
        if images.ndim != 4 or images.shape[1] != 3 or depths.shape != (count, *images.shape[2:]):
            raise SourceError(
                f"{source / LABELED_FILE}: expected images N×3×W×H and depths N×W×H, got "
                f"{images.shape} and {depths.shape}."
            )
        out_of_range = [i for i in (*train_ids, *test_ids) if not 1 <= i <= count]
        if out_of_range:
            raise SourceError(f"{splits_path} lists image {out_of_range[0]} but the .mat holds {count}.")
        split_pairs: dict[str, list[Pair]] = {"train": [], "test": []}
        for split, ids in (("train", train_ids), ("test", test_ids)):
            for number in ids:  # 1-based, as MATLAB writes them
                rgb = export_dir / split / f"{number:05d}_rgb.png"
                depth = export_dir / split / f"{number:05d}_depth.png"
                if force or not (rgb.is_file() and depth.is_file()):
                    # HDF5 keeps MATLAB's column-major layout: transpose back to H×W(×3).
                    write_rgb(rgb, np.ascontiguousarray(images[number - 1].transpose(2, 1, 0)))
                    write_depth_png(depth, np.asarray(depths[number - 1], dtype=np.float64).T, MM_SCALE)
                split_pairs[split].append(Pair(rgb, depth, group=f"{number:05d}"))
    result.notes.append(f"exported {len(train_ids) + len(test_ids)} images to {export_dir}")
    return split_pairs["train"], split_pairs["test"]


def _read_splits(path: Path) -> tuple[list[int], list[int]]:
    """``trainNdxs`` / ``testNdxs`` (1-based) from ``splits.mat`` (MATLAB v5, or v7.3 via h5py)."""
    try:
        from scipy.io import loadmat

        data = {key: np.asarray(value) for key, value in loadmat(path).items() if not key.startswith("__")}
    except (NotImplementedError, ValueError):  # v7.3 files are HDF5
        import h5py

        with h5py.File(path, "r") as handle:
            data = {key: np.asarray(handle[key]) for key in handle}
    missing = [key for key in ("trainNdxs", "testNdxs") if key not in data]
    if missing:
        raise SourceError(f"{path} lacks {missing}; found {sorted(data)}.")
    return (
        [int(i) for i in data["trainNdxs"].ravel()],
        [int(i) for i in data["testNdxs"].ravel()],
    )
