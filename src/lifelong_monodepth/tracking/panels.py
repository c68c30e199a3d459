"""Depth panels: RGB | ground truth | prediction | uncertainty | error for fixed validation images.

Colour ranges are fixed per domain (its ``[min_depth, max_depth]`` metres; the error up to a fraction
of ``max_depth``; the log-variance over a configured range), never per image, so a panel of stage
``NK`` can be compared with the same domain's panel after ``N`` by eye: a colour is a distance.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lifelong_monodepth.utils.figures import pyplot, save_figure

MISSING_COLOUR = "#9e9e9e"


@dataclass(frozen=True)
class PanelRow:
    """One image of a panel: network input (H×W×3 in [0, 1]), ground truth, prediction, log-variance."""

    rgb: np.ndarray
    gt: np.ndarray
    pred: np.ndarray
    log_var: np.ndarray


@dataclass(frozen=True)
class PanelOptions:
    """``tracking.panels`` in the config: how many images per domain and the fixed colour ranges."""

    images: int = 4
    split: str = "val"
    error_fraction: float = 0.2
    log_var_range: tuple[float, float] = (-6.0, 2.0)
    depth_cmap: str = "magma_r"
    error_cmap: str = "inferno"
    uncertainty_cmap: str = "viridis"


@torch.no_grad()
def predict_panel_rows(module: Any, datamodule: Any, letter: str, options: PanelOptions) -> list[PanelRow]:
    """The first ``options.images`` images of the split (always the same ones) and the head's output.

    Ground truth may come at its native size (and, in one batch, at several sizes): each sample's
    prediction is resized to its own ground truth.
    """
    net = module.net
    was_training = net.training
    net.eval()
    rows: list[PanelRow] = []
    try:
        for batch in datamodule.eval_loader(letter, options.split):
            images = batch["image"][: options.images - len(rows)].to(module.device)
            out = net(images, domains=[letter])
            for i in range(len(images)):
                gt = batch["depth"][i]
                size = tuple(gt.shape[-2:])
                depth, log_var = (
                    F.interpolate(x[i : i + 1], size=size, mode="bilinear", align_corners=False)[0, 0]
                    for x in (out.depth[letter], out.log_var[letter])
                )
                rows.append(
                    PanelRow(
                        rgb=images[i].permute(1, 2, 0).cpu().numpy(),
                        gt=gt.reshape(size).cpu().numpy(),
                        pred=depth.cpu().numpy(),
                        log_var=log_var.cpu().numpy(),
                    )
                )
            if len(rows) >= options.images:
                break
    finally:
        net.train(was_training)
    return rows


def render_panel(
    rows: list[PanelRow],
    path: str | Path,
    title: str,
    min_depth: float,
    max_depth: float,
    options: PanelOptions,
) -> Path:
    """One PNG: a row per image, columns RGB | ground truth | prediction | uncertainty | error."""
    plt = pyplot()

    count = len(rows)
    max_error = options.error_fraction * max_depth
    columns = [
        ("RGB", None, None, None),
        (f"ground truth ({min_depth:g}–{max_depth:g} m)", options.depth_cmap, min_depth, max_depth),
        (f"prediction ({min_depth:g}–{max_depth:g} m)", options.depth_cmap, min_depth, max_depth),
        (
            f"uncertainty log σ² ({options.log_var_range[0]:g}–{options.log_var_range[1]:g})",
            options.uncertainty_cmap,
            *options.log_var_range,
        ),
        (f"|error| (0–{max_error:g} m)", options.error_cmap, 0.0, max_error),
    ]
    height, width = rows[0].gt.shape[-2:]
    fig, axes = plt.subplots(
        count, len(columns), figsize=(2.3 * len(columns), 2.3 * count * height / width + 0.7), squeeze=False
    )
    for i, row in enumerate(rows):
        valid = (row.gt > 0) & (row.gt <= max_depth)
        gt = np.where(valid, row.gt, np.nan)  # missing depth: grey (no colour map uses it)
        error = np.where(valid, np.abs(row.pred - row.gt), np.nan)
        images = [np.clip(row.rgb, 0, 1), gt, row.pred, row.log_var, error]
        for ax, image, (label, cmap, low, high) in zip(axes[i], images, columns, strict=True):
            if cmap is None:
                ax.imshow(image)
            else:
                colour_map = plt.get_cmap(cmap).with_extremes(bad=MISSING_COLOUR)
                ax.imshow(np.ma.masked_invalid(image), cmap=colour_map, vmin=low, vmax=high)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(label, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)
