"""A video in, ``<name>_depth.mp4`` out: RGB | colour-mapped depth side by side, one colour range."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from lifelong_monodepth.data.errors import DataError
from lifelong_monodepth.inference.outputs import PredictionsCsv, colorize, percentile_range, prediction_row
from lifelong_monodepth.inference.predictor import DepthPredictor

if TYPE_CHECKING:
    from lifelong_monodepth.inference.predict import PredictOptions, PredictSummary

log = logging.getLogger(__name__)


def _frames(capture: cv2.VideoCapture, batch_size: int):
    batch: list[np.ndarray] = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        batch.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_video(
    predictor: DepthPredictor,
    path: Path,
    out_dir: Path,
    options: PredictOptions,
    fixed: tuple[float, float] | None,
) -> PredictSummary:
    """The colour range is ``color_range=lo,hi``, the domain's range (``domain``), or else the 1st–99th
    percentile of the first batch of frames, kept for the whole video so colours mean the same depth."""
    from lifelong_monodepth.inference.predict import PredictSummary

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"Cannot open video {path} (unsupported codec or not a video).")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    target = out_dir / f"{path.stem}_depth.mp4"
    writer: cv2.VideoWriter | None = None
    vrange = fixed
    frames, seconds, began_all = 0, 0.0, time.perf_counter()
    try:
        with PredictionsCsv(out_dir / "predictions.csv") as table:
            for batch in _frames(capture, options.batch_size):
                began = time.perf_counter()
                predictions = predictor(batch)
                seconds += time.perf_counter() - began
                if vrange is None:
                    if options.color_range == "domain":
                        info = predictor.model.domains[predictions[0].domain]
                        vrange = (info.min_depth, info.max_depth)
                    else:
                        vrange = percentile_range(np.stack([p.depth for p in predictions]))
                    log.info("Video colour range: %.2f–%.2f m", *vrange)
                for rgb, prediction in zip(batch, predictions, strict=True):
                    depth_rgb = colorize(prediction.depth, *vrange, options.colormap)
                    cv2.putText(
                        depth_rgb,
                        f"{vrange[0]:.1f}-{vrange[1]:.1f} m",
                        (8, 20),
                        cv2.FONT_HERSHEY_SIMPLEX,
                        0.5,
                        (255, 255, 255),
                        1,
                        cv2.LINE_AA,
                    )
                    frame = np.concatenate([(rgb * 255).round().astype(np.uint8), depth_rgb], axis=1)
                    if writer is None:
                        height, width = frame.shape[:2]
                        writer = cv2.VideoWriter(
                            str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height)
                        )
                        if not writer.isOpened():
                            raise DataError(f"Cannot write video {target} (no mp4v encoder in this OpenCV).")
                    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                    info = predictor.model.domains[prediction.domain]
                    table.add(prediction_row(f"{path}#frame={frames}", prediction, info))
                    frames += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if frames == 0:
        raise DataError(f"Video {path} has no readable frame.")
    summary = PredictSummary(frames, [], seconds, time.perf_counter() - began_all)
    print(
        f"Wrote {target} ({frames} frames): {summary.images_per_second:.2f} frames/s (network), "
        f"{frames / summary.total_seconds:.2f} frames/s overall."
    )
    return summary
