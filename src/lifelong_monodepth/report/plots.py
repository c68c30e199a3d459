"""Report figures with error bars: forgetting per setting, and the mean lifelong RMSE matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lifelong_monodepth.report.aggregate import mean_matrix
from lifelong_monodepth.report.runs import Run
from lifelong_monodepth.utils.figures import pyplot, save_figure


def group_label(row: pd.Series, keys: Sequence[str]) -> str:
    """``lifelong NKS`` plus any varying override (``weight=5``); the protocol only when it varies."""
    parts = [str(row[k]) for k in keys if k not in ("protocol",) and str(row[k])]
    return "\n".join(parts)


def plot_forgetting(frame: pd.DataFrame, keys: Sequence[str], path: Path) -> Path | None:
    """Bars of mean forgetting (metres and per cent of the just-learned RMSE) with ±1 std error bars."""
    panels = [
        (m, label)
        for m, label in (
            ("forgetting_rmse", "average forgetting, RMSE (m)"),
            ("rel_forgetting_rmse", "relative forgetting, RMSE (%)"),
        )
        if m in frame.columns and frame[m].notna().any()
    ]
    if not panels:
        return None
    plt = pyplot()
    many = len(frame) > 12  # e.g. 6 strategies × 6 orders: one line per label, turned upright
    labels = [group_label(row, keys).replace("\n", " " if many else "\n") for _, row in frame.iterrows()]
    strategies = list(dict.fromkeys(frame["strategy"]))
    colours = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(strategies)}
    width = min(16.0, max(4.0, (0.45 if many else 0.9) * len(frame)))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(width * len(panels), 5.0 if many else 3.6), squeeze=False
    )
    for ax, (metric, title) in zip(axes[0], panels, strict=True):
        scale = 100.0 if metric.startswith("rel_") else 1.0
        means = frame[metric].to_numpy(dtype=float) * scale
        stds = frame.get(f"{metric}_std", pd.Series(np.nan, index=frame.index)).to_numpy(dtype=float) * scale
        x = np.arange(len(frame))
        ax.bar(
            x,
            np.nan_to_num(means),
            yerr=np.nan_to_num(stds),
            capsize=4,
            color=[colours[s] for s in frame["strategy"]],
        )
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x, labels, fontsize=8, rotation=90 if many else 0)
        ax.set_ylabel(f"{title}\nlower is better")
        ax.set_title(f"mean ± std over runs (n = {', '.join(str(int(n)) for n in sorted(set(frame['n'])))})")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def plot_matrices(groups: Sequence[tuple[str, list[Run]]], path: Path) -> Path | None:
    """One heatmap per (label, runs) setting: mean RMSE after each stage (rows) on each domain, ± std."""
    panels = []
    for label, runs in groups:
        stats = mean_matrix(runs)
        if stats is None:
            continue
        orders = {run.order for run in runs}
        columns = (
            list(next(iter(orders))) if len(orders) == 1 else [f"#{j + 1}" for j in range(stats[0].shape[1])]
        )
        rows = runs[0].stages if len(orders) == 1 else [f"stage {i + 1}" for i in range(stats[0].shape[0])]
        panels.append((label, stats, rows, columns))
    if not panels:
        return None
    plt = pyplot()
    cols = min(3, len(panels))
    grid_rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(grid_rows, cols, figsize=(4.2 * cols, 3.4 * grid_rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (label, (mean, std), rows, columns) in zip(axes.flat, panels, strict=False):
        shown = np.ma.masked_invalid(mean)
        image = ax.imshow(shown, cmap="magma_r", aspect="auto")
        for i in range(mean.shape[0]):
            for j in range(mean.shape[1]):
                if np.isfinite(mean[i, j]):
                    text = f"{mean[i, j]:.2f}" + (f"\n±{std[i, j]:.2f}" if np.isfinite(std[i, j]) else "")
                    ax.text(j, i, text, ha="center", va="center", fontsize=7, color="tab:cyan")
        ax.set_xticks(range(len(columns)), columns)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("domain (learning order)")
        ax.set_ylabel("after stage")
        ax.set_title(label.replace("\n", " "), fontsize=9)
        fig.colorbar(image, ax=ax, label="RMSE (m)")
    fig.suptitle("Lifelong matrix, RMSE with domain prior (mean ± std over runs)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)
