"""Command line of the importers: one sub-command per dataset, shared options for the split files.

    python -m lifelong_monodepth.data.prepare nyu --source /datasets/nyu
    python -m lifelong_monodepth.data.prepare kitti --source /datasets/kitti [--split eigen]
    python -m lifelong_monodepth.data.prepare scannet --source /datasets/scannet

Each writes ``train``/``val``/``test``/``replay`` CSVs and ``prepare.json`` into ``--out`` (default
``$LMD_INDEX_DIR/<domain>`` or ``data_index/<domain>``), prints the counts and every skip with its reason.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lifelong_monodepth.data.prepare.common import PrepareResult, SourceError, format_report, write_result

#: Dataset → (domain folder, domain letter in conf/domains/<domain>.yaml).
DOMAINS = {"nyu": ("nyu", "N"), "kitti": ("kitti", "K"), "scannet": ("scannet", "S")}


def default_index_dir() -> Path:
    """Where ``run.py`` looks for index CSVs: ``$LMD_INDEX_DIR``, else ``data_index/`` of the project."""
    if os.environ.get("LMD_INDEX_DIR"):
        return Path(os.environ["LMD_INDEX_DIR"])
    return Path(os.environ.get("LMD_ROOT", ".")) / "data_index"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lifelong_monodepth.data.prepare",
        description="Write the index CSVs (train/val/test/replay) of a real dataset as downloaded. "
        "Paths in the CSVs are relative to --source, which becomes the domain's data root "
        "(conf/domains/<domain>.yaml: root = $LMD_DATA_DIR/<domain>). See docs/datasets.md.",
    )
    sub = parser.add_subparsers(dest="dataset", required=True, metavar="{nyu,kitti,scannet}")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--source", type=Path, required=True, help="the dataset folder as downloaded")
        p.add_argument(
            "--out",
            type=Path,
            default=None,
            help="folder for the CSVs (default: $LMD_INDEX_DIR/<domain>, else <project>/data_index/<domain>)",
        )
        p.add_argument(
            "--val-fraction",
            type=float,
            default=0.05,
            help="fraction of training pairs held out for validation, as whole scenes/drives (default 0.05)",
        )
        p.add_argument("--replay", type=int, default=500, help="replay exemplars from train (paper: 500)")
        p.add_argument("--seed", type=int, default=0, help="seed of the validation and replay draws")

    nyu = sub.add_parser(
        "nyu",
        help="NYU-v2: the original release (data/nyu2_train.csv) or nyu_depth_v2_labeled.mat + splits.mat",
        description="NYU-v2 from the original Lifelong-MonoDepth/DenseDepth release (data/nyu2_train.csv, "
        "data/nyu2_test.csv: 8-bit training depth, 255 = 10 m; 16-bit test depth in mm) or from the official "
        "labeled set (nyu_depth_v2_labeled.mat + splits.mat, exported once to PNG / 16-bit PNG in mm).",
    )
    common(nyu)
    nyu.add_argument(
        "--layout",
        choices=("auto", "release", "labeled"),
        default="auto",
        help="which download --source holds (default: recognised from its files)",
    )
    nyu.add_argument(
        "--export-dir", type=Path, default=None, help="labeled: where PNGs go (default SOURCE/labeled_export)"
    )
    nyu.add_argument("--force", action="store_true", help="labeled: export again even if the PNGs exist")
    nyu.add_argument(
        "--train-depth-scale",
        type=float,
        default=25.5,
        help="release: stored value / scale = metres for training depth (default 25.5: 255 = 10 m)",
    )

    kitti = sub.add_parser(
        "kitti",
        help="KITTI raw + annotated depth (+ val_selection_cropped / Eigen lists)",
        description="KITTI raw frames with the annotated depth (16-bit, value / 256 = metres). "
        "--split official: train/val of the annotated depth, test = depth_selection/val_selection_cropped "
        "(the paper's test set). --split eigen: eigen_train_files.txt / eigen_test_files.txt.",
    )
    common(kitti)
    kitti.add_argument("--split", choices=("official", "eigen"), default="official")
    kitti.add_argument("--raw", type=Path, default=None, help="raw data root (default: found under --source)")
    kitti.add_argument("--depth", type=Path, default=None, help="annotated depth root (train/, val/)")
    kitti.add_argument("--selection", type=Path, default=None, help="the val_selection_cropped folder")
    kitti.add_argument("--train-list", type=Path, default=None, help="eigen: SOURCE/eigen_train_files.txt")
    kitti.add_argument("--test-list", type=Path, default=None, help="eigen: SOURCE/eigen_test_files.txt")
    kitti.add_argument(
        "--cameras", default="image_02,image_03", help="cameras of the annotated depth to use (default both)"
    )

    scannet = sub.add_parser(
        "scannet",
        help="ScanNet SensReader exports (sceneXXXX_XX/color, depth, intrinsic)",
        description="ScanNet frames exported by SensReader. Defaults reproduce the paper: test = scenes "
        "0707_00-0806_00 every 12th frame from frame 12; train = the other scenes every 48th frame from 12.",
    )
    common(scannet)
    scannet.add_argument("--test-scenes", default="0707_00-0806_00", help="inclusive range of test scenes")
    scannet.add_argument("--test-stride", type=int, default=12)
    scannet.add_argument("--test-offset", type=int, default=12, help="first test frame number")
    scannet.add_argument("--train-stride", type=int, default=48)
    scannet.add_argument("--train-offset", type=int, default=12, help="first training frame number")
    return parser


def run(args: argparse.Namespace) -> PrepareResult:
    """Dispatch to the dataset's importer: each sub-command's options are its keyword arguments
    (one place names an option: the parser). Options given as text become what the importer takes
    here, so that a malformed value is reported like any other source error."""
    options = {k: v for k, v in vars(args).items() if k not in ("dataset", "source", "out")}
    if args.dataset == "kitti":
        options["cameras"] = [c.strip() for c in args.cameras.split(",") if c.strip()]
    if args.dataset == "scannet":
        from lifelong_monodepth.data.prepare.scannet import parse_scene_range

        options["test_scenes"] = parse_scene_range(args.test_scenes)
    return _importer(args.dataset)(args.source.expanduser(), **options)


def _importer(dataset: str) -> Callable[..., PrepareResult]:
    """Imported when used: h5py, for instance, only for the labeled NYU set."""
    if dataset == "nyu":
        from lifelong_monodepth.data.prepare.nyu import prepare_nyu

        return prepare_nyu
    if dataset == "kitti":
        from lifelong_monodepth.data.prepare.kitti import prepare_kitti

        return prepare_kitti
    from lifelong_monodepth.data.prepare.scannet import prepare_scannet

    return prepare_scannet


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    domain, letter = DOMAINS[args.dataset]
    out = args.out or default_index_dir() / domain
    try:
        result = run(args)
        write_result(result, out, ["python", "-m", "lifelong_monodepth.data.prepare", *argv])
    except SourceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_report(result, out, domain, letter))
    return 0
