"""What predict writes per image: metric ``.npy``, native 16-bit PNG, colour maps with legends, CSV rows."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lifelong_monodepth.data.depth_io import write_depth_png
from lifelong_monodepth.utils.figures import pyplot, save_figure

CSV_COLUMNS = (
    "file",
    "domain",
    "domain_name",
    "confidence",
    "unknown",
    "median_depth_m",
    "min_depth_m",
    "max_depth_m",
    "width",
    "height",
)


def colorize(values: np.ndarray, vmin: float, vmax: float, cmap: str) -> np.ndarray:
    """``H×W`` values → ``H×W×3`` uint8 RGB with a matplotlib colour map over ``[vmin, vmax]``."""
    from matplotlib import colormaps

    scaled = np.clip((values - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    return (colormaps[cmap](scaled)[..., :3] * 255).round().astype(np.uint8)


def save_with_legend(
    path: Path, values: np.ndarray, vmin: float, vmax: float, cmap: str, label: str, title: str = ""
) -> None:
    """A colour-mapped image at its own resolution plus a colour bar that names the range (matplotlib)."""
    plt = pyplot()

    height, width = values.shape
    dpi = 100
    scale = max(1.0, 320 / max(width, 1))  # tiny inputs still get a readable legend
    figure, axis = plt.subplots(figsize=(width * scale / dpi + 1.3, height * scale / dpi + 0.35), dpi=dpi)
    shown = axis.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    axis.set_axis_off()
    if title:
        axis.set_title(title, fontsize=8)
    bar = figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.02)
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    save_figure(figure, path, dpi=dpi, bbox_inches="tight", pad_inches=0.05)


def percentile_range(values: np.ndarray) -> tuple[float, float]:
    """The 1st–99th percentile (a few extreme pixels do not wash out the colour map)."""
    low, high = np.percentile(values, [1, 99])
    return float(low), float(max(high, low + 1e-3))


def color_range(depth: np.ndarray, mode: str, domain_range: tuple[float, float]) -> tuple[float, float]:
    """``image``: the 1st–99th percentile of this prediction; ``domain``: the head's [min, max] metres."""
    return domain_range if mode == "domain" else percentile_range(depth)


def prediction_row(file: str, prediction: Any, info: Any) -> dict[str, Any]:
    """One ``predictions.csv`` row from a :class:`Prediction` and its domain's :class:`DomainInfo`."""
    height, width = prediction.depth.shape
    return {
        "file": file,
        "domain": info.letter,
        "domain_name": info.name,
        "confidence": f"{prediction.confidence:.4f}",
        "unknown": int(prediction.unknown),
        "median_depth_m": f"{float(np.median(prediction.depth)):.4f}",
        "min_depth_m": f"{float(prediction.depth.min()):.4f}",
        "max_depth_m": f"{float(prediction.depth.max()):.4f}",
        "width": width,
        "height": height,
    }


def write_prediction(
    out_dir: Path,
    stem: str,
    depth: np.ndarray,
    log_var: np.ndarray,
    depth_scale: float,
    vrange: tuple[float, float],
    cmap: str,
    title: str = "",
) -> dict[str, Path]:
    """``<stem>_depth.npy`` (metres), ``_depth.png`` (uint16, native scale), ``_depth_color.png``,
    ``_uncertainty.npy`` (log-variance) and ``_uncertainty.png``."""
    paths = {
        "npy": out_dir / f"{stem}_depth.npy",
        "png16": out_dir / f"{stem}_depth.png",
        "color": out_dir / f"{stem}_depth_color.png",
        "uncertainty_npy": out_dir / f"{stem}_uncertainty.npy",
        "uncertainty": out_dir / f"{stem}_uncertainty.png",
    }
    np.save(paths["npy"], depth.astype(np.float32))
    write_depth_png(paths["png16"], depth, depth_scale)
    save_with_legend(paths["color"], depth, *vrange, cmap, "depth [m]", title)
    np.save(paths["uncertainty_npy"], log_var.astype(np.float32))
    save_with_legend(paths["uncertainty"], log_var, *percentile_range(log_var), "magma", "log-variance")
    return paths


class PredictionsCsv:
    """``predictions.csv``: one row per image (or video frame), flushed as it goes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = path.open("w", newline="")
        self._writer = csv.DictWriter(self._handle, fieldnames=CSV_COLUMNS)
        self._writer.writeheader()

    def add(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow({key: row.get(key, "") for key in CSV_COLUMNS})
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> PredictionsCsv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
