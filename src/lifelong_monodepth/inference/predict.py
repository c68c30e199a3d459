"""Depth for your own images: ``python -m lifelong_monodepth.predict ckpt=NKS.ckpt input=photos/``.

Per image ``<name>``: ``<name>_depth.npy`` (metres, float32, the image's resolution),
``<name>_depth.png`` (uint16 in the chosen domain's native scale: value / depth_scale = metres),
``<name>_depth_color.png`` (colour map with a legend in metres), ``<name>_uncertainty.npy`` /
``.png`` (predicted log-variance), optionally ``<name>.ply`` (coloured point cloud, with
``intrinsics=``), and one row in ``predictions.csv``. A video gives ``<name>_depth.mp4``
(RGB | depth side by side, one colour range for all frames) and one CSV row per frame.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lifelong_monodepth.data.errors import ConfigError, DataError
from lifelong_monodepth.inference.inputs import InputSet, read_image, resolve_inputs
from lifelong_monodepth.inference.loading import LoadedModel, load_model
from lifelong_monodepth.inference.options import option, run_cli
from lifelong_monodepth.inference.outputs import PredictionsCsv, color_range, prediction_row, write_prediction
from lifelong_monodepth.inference.pointcloud import Intrinsics, backproject, parse_intrinsics, write_ply
from lifelong_monodepth.inference.predictor import DepthPredictor, Prediction

log = logging.getLogger(__name__)
PROG = "lifelong_monodepth.predict"


@dataclass
class PredictOptions:
    ckpt: str | None = option(None, "stage checkpoint (e.g. outputs/runs/.../checkpoints/NKS.ckpt)", True)
    input: str | None = option(
        None, "an image, a folder of images, a glob pattern ('photos/*.jpg') or a video", True
    )
    output: str = option("predictions", "output folder (created)")
    domain: str = option("auto", "auto (the checkpoint's selector picks a head per image) or a domain letter")
    selector: str | None = option(None, "override the selector: prototype, classifier or uncertainty")
    batch_size: int = option(8, "images per forward pass")
    device: str = option("auto", "auto (cuda if available), cpu or cuda[:N]")
    precision: str = option("auto", "auto (bf16 on GPUs that support it, else fp32), fp32 or bf16")
    channels_last: str = option("auto", "auto (on CPU and CUDA), true or false")
    compile: str = option("auto", "torch.compile the encoder: auto (on CUDA), true or false")
    color_range: str = option("image", "image (1st-99th percentile), domain (head's range) or lo,hi metres")
    colormap: str = option("turbo", "matplotlib colour map of the depth images")
    intrinsics: str | None = option(
        None, "fx,fy,cx,cy or a KITTI/ScanNet calibration file: writes .ply clouds"
    )
    ply_stride: int = option(1, "keep every N-th pixel in each direction in the .ply")


@dataclass
class PredictSummary:
    written: int
    skipped: list[tuple[str, str]]
    seconds: float  # network time (resize, forward, resize back)
    total_seconds: float = 0.0  # including reading and writing files

    @property
    def images_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else float("nan")


def _fixed_range(spec: str) -> tuple[float, float] | None:
    if spec in ("image", "domain"):
        return None
    try:
        low, high = (float(v) for v in spec.split(","))
    except ValueError:
        low = high = float("nan")
    if not low < high:
        raise ConfigError(f"color_range={spec!r}: use image, domain or lo,hi in metres (e.g. 0.5,10).")
    return low, high


def predict(options: PredictOptions) -> PredictSummary:
    """Run prediction as the command line asked; returns counts and timing."""
    if options.batch_size < 1:
        raise ConfigError(f"batch_size={options.batch_size}: must be ≥ 1.")
    fixed = _fixed_range(options.color_range)
    inputs = resolve_inputs(str(options.input))
    intrinsics = parse_intrinsics(options.intrinsics) if options.intrinsics else None
    model = load_model(str(options.ckpt))
    predictor = DepthPredictor(
        model,
        domain=options.domain,
        device=options.device,
        selector=options.selector,
        precision=options.precision,
        channels_last=options.channels_last,
        compile=options.compile,
    )
    out_dir = Path(options.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("Checkpoint %s (domains %s): %s", model.path, "".join(model.domains), predictor.describe())
    if inputs.kind == "video":
        from lifelong_monodepth.inference.video import predict_video

        return predict_video(predictor, inputs.files[0], out_dir, options, fixed)
    return _predict_images(predictor, inputs, out_dir, options, fixed, intrinsics)


def _predict_images(
    predictor: DepthPredictor,
    inputs: InputSet,
    out_dir: Path,
    options: PredictOptions,
    fixed: tuple[float, float] | None,
    intrinsics: Intrinsics | None,
) -> PredictSummary:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    model = predictor.model
    skipped: list[tuple[str, str]] = []
    written, seconds = 0, 0.0
    names: dict[str, int] = {}
    began_all = time.perf_counter()
    progress = Progress(
        TextColumn("[bold]predict"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=len(inputs.files) < 2,
    )
    with PredictionsCsv(out_dir / "predictions.csv") as table, progress:
        task = progress.add_task("images", total=len(inputs.files))
        for start in range(0, len(inputs.files), options.batch_size):
            chunk = inputs.files[start : start + options.batch_size]
            images, paths = [], []
            for path in chunk:
                try:
                    images.append(read_image(path))
                    paths.append(path)
                except DataError as err:
                    skipped.append((str(path), str(err)))
                    log.warning("Skipped unreadable file: %s", err)
                    progress.advance(task)
            if not images:
                continue
            began = time.perf_counter()
            predictions = predictor(images)
            seconds += time.perf_counter() - began
            for path, image, prediction in zip(paths, images, predictions, strict=True):
                stem = _unique(inputs.name(path), names)
                _write_one(out_dir, stem, path, image, prediction, model, options, fixed, intrinsics, table)
                written += 1
                progress.advance(task)
    summary = PredictSummary(written, skipped, seconds, time.perf_counter() - began_all)
    _report(summary, out_dir)
    return summary


def _unique(stem: str, names: dict[str, int]) -> str:
    """``a.jpg`` and ``a.png`` in one folder must not overwrite each other's outputs."""
    count = names.get(stem, 0)
    names[stem] = count + 1
    return stem if count == 0 else f"{stem}_{count}"


def _write_one(
    out_dir: Path,
    stem: str,
    path: Path,
    image: np.ndarray,
    prediction: Prediction,
    model: LoadedModel,
    options: PredictOptions,
    fixed: tuple[float, float] | None,
    intrinsics: Intrinsics | None,
    table: PredictionsCsv,
) -> None:
    info = model.domains[prediction.domain]
    vrange = fixed or color_range(prediction.depth, options.color_range, (info.min_depth, info.max_depth))
    title = f"{path.name} — domain {info.letter} ({info.name})"
    write_prediction(
        out_dir, stem, prediction.depth, prediction.log_var, info.depth_scale, vrange, options.colormap, title
    )
    if intrinsics is not None:
        points, pixels = backproject(prediction.depth, intrinsics, options.ply_stride)
        colors = (image[pixels[:, 0], pixels[:, 1]] * 255).round().astype(np.uint8)
        write_ply(out_dir / f"{stem}.ply", points, colors)
    table.add(prediction_row(str(path), prediction, info))


def _report(summary: PredictSummary, out_dir: Path) -> None:
    overall = summary.written / summary.total_seconds if summary.total_seconds > 0 else float("nan")
    print(
        f"Wrote depth for {summary.written} image(s) to {out_dir}: {summary.images_per_second:.2f} images/s "
        f"(network), {overall:.2f} images/s (with reading and writing files)."
    )
    if summary.skipped:
        print(f"Skipped {len(summary.skipped)} unreadable file(s):")
        for path, reason in summary.skipped:
            print(f"  {path}: {reason}")


def main(argv: list[str] | None = None) -> None:
    run_cli(predict, PredictOptions, PROG, __doc__.strip().splitlines()[0], argv)


if __name__ == "__main__":
    main()
