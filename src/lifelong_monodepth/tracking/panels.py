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

MISSING_COLOUR = "#9e9e9e"


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
def predict_panel_rows(
    module: Any, datamodule: Any, letter: str, options: PanelOptions
) -> dict[str, np.ndarray]:
    """The first ``options.images`` images of the split (always the same ones) and the head's output."""
    net = module.net
    was_training = net.training
    net.eval()
    chunks: dict[str, list[np.ndarray]] = {"rgb": [], "gt": [], "pred": [], "log_var": []}
    seen = 0
    try:
        for batch in datamodule.eval_loader(letter, options.split):
            images = batch["image"][: options.images - seen].to(module.device)
            out = net(images, domains=[letter])
            size = tuple(batch["depth"].shape[-2:])
            depth = F.interpolate(out.depth[letter], size=size, mode="bilinear", align_corners=False)
            log_var = F.interpolate(out.log_var[letter], size=size, mode="bilinear", align_corners=False)
            chunks["rgb"].append(images.permute(0, 2, 3, 1).cpu().numpy())
            chunks["gt"].append(batch["depth"][: len(images), 0].numpy())
            chunks["pred"].append(depth[:, 0].cpu().numpy())
            chunks["log_var"].append(log_var[:, 0].cpu().numpy())
            seen += len(images)
            if seen >= options.images:
                break
    finally:
        net.train(was_training)
    return {key: np.concatenate(values) for key, values in chunks.items() if values}


def render_panel(
    rows: dict[str, np.ndarray],
    path: str | Path,
    title: str,
    min_depth: float,
    max_depth: float,
    options: PanelOptions,
) -> Path:
    """One PNG: a row per image, columns RGB | ground truth | prediction | uncertainty | error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(rows["rgb"])
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
    height, width = rows["gt"].shape[-2:]
    fig, axes = plt.subplots(
        count, len(columns), figsize=(2.3 * len(columns), 2.3 * count * height / width + 0.7), squeeze=False
    )
    for i in range(count):
        valid = (rows["gt"][i] > 0) & (rows["gt"][i] <= max_depth)
        gt = np.where(valid, rows["gt"][i], np.nan)  # missing depth: grey (no colour map uses it)
        error = np.where(valid, np.abs(rows["pred"][i] - rows["gt"][i]), np.nan)
        images = [np.clip(rows["rgb"][i], 0, 1), gt, rows["pred"][i], rows["log_var"][i], error]
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
