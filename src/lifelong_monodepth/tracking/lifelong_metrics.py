"""Continual-learning numbers as W&B keys: per stage (``eval/*`` on a ``stage`` axis) and at the end.

Key layout (``<d>`` a domain letter, ``<m>`` a metric of ``evaluation.metrics.METRIC_NAMES``):

* ``eval/<m>/<d>``: with the domain prior (the domain's own head), once the domain is learned;
* ``eval/auto/<m>/<d>``: with automatic predictor selection (also for domains not learned yet);
* ``eval/selection_acc/<d>`` and ``eval/selection_acc/overall``: routing accuracy;
* ``eval/avg/<m>``: mean over the domains learned so far; ``eval/forgetting/<m>``: mean forgetting
  of the domains learned before this stage (positive = worse than right after learning).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lifelong_monodepth.evaluation.lifelong_matrix import forgetting
from lifelong_monodepth.evaluation.metrics import LOWER_IS_BETTER, METRIC_NAMES
from lifelong_monodepth.utils.figures import pyplot, save_figure

if TYPE_CHECKING:
    from lifelong_monodepth.evaluation.results import ResultsTable

STAGE_AXIS = "stage"


def stage_metrics(table: ResultsTable, stage: str) -> dict[str, float]:
    """The ``eval/*`` values of one evaluated stage (``init`` included), NaN entries left out."""
    out: dict[str, float] = {}
    routed_right = routed_all = 0.0
    for row in table.rows:
        if row["stage"] != stage:
            continue
        domain, mode, metric, value = row["domain"], row["mode"], row["metric"], float(row["value"])
        if metric.startswith("routed_to_"):
            routed_all += value
            routed_right += value if metric == f"routed_to_{domain}" else 0.0
        elif metric == "selection_acc":
            out[f"eval/selection_acc/{domain}"] = value
        else:
            out[f"eval/{metric}/{domain}" if mode == "prior" else f"eval/auto/{metric}/{domain}"] = value
    if routed_all:
        out["eval/selection_acc/overall"] = routed_right / routed_all
    learned = _learned(table, stage)
    for metric in METRIC_NAMES:
        values = [table.value(stage, d, "prior", metric) for d in learned]
        out[f"eval/avg/{metric}"] = _nanmean(values)
    stages = _stages_until(table, stage)
    if len(stages) >= 2:
        for metric in METRIC_NAMES:
            R = np.array([[table.value(s, d, "prior", metric) for d in table.order] for s in stages])
            out[f"eval/forgetting/{metric}"] = _nanmean(
                list(forgetting(R, higher_is_better=metric not in LOWER_IS_BETTER))
            )
    return {key: value for key, value in out.items() if not math.isnan(value)}


def _stages_until(table: ResultsTable, stage: str) -> list[str]:
    stages = [s for s in table.stages if s != "init"]
    return stages[: stages.index(stage) + 1] if stage in stages else []


def _learned(table: ResultsTable, stage: str) -> list[str]:
    return [d for d in table.order if not math.isnan(table.value(stage, d, "prior", "rmse"))]


def _nanmean(values: list[float]) -> float:
    values = [float(v) for v in values if not math.isnan(float(v))]
    return float(np.mean(values)) if values else math.nan


def matrix_rows(table: ResultsTable, metric: str) -> tuple[list[str], list[list[Any]]]:
    """Stage × domain rows of one metric (prior; automatic selection for domains not learned yet)."""
    columns = ["stage", *table.order]
    rows = []
    for stage in table.stages:
        cells = []
        for domain in table.order:
            value = table.value(stage, domain, "prior", metric)
            cells.append(None if math.isnan(value) else value)
        rows.append([stage, *cells])
    return columns, rows


def flatten_summary(summary: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every number of ``summary.json`` under its path (``forgetting/per_domain/N/rmse``); NaN dropped."""
    flat: dict[str, float] = {}
    for key, value in summary.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_summary(value, path))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float) and not math.isnan(float(value)):
            flat[path] = value
    return flat


def heatmap_png(table: ResultsTable, path: str | Path, metrics: tuple[str, ...] = ("rmse", "delta1")) -> Path:
    """The lifelong matrix as annotated heatmaps (one per metric), rows = after stage, columns = domain."""
    plt = pyplot()

    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 0.6 * len(table.stages) + 1.4))
    for ax, metric in zip(np.atleast_1d(axes), metrics, strict=True):
        _, rows = matrix_rows(table, metric)
        values = np.array([[np.nan if v is None else v for v in row[1:]] for row in rows], dtype=float)
        # Each domain has its own scale (metres of an 80 m and a 10 m domain): colour by column rank.
        shown = np.full_like(values, np.nan)
        for j in range(values.shape[1]):
            column = values[:, j]
            finite = column[~np.isnan(column)]
            if finite.size:
                low, high = finite.min(), finite.max()
                scaled = (column - low) / (high - low) if high > low else np.zeros_like(column)
                shown[:, j] = scaled if metric in LOWER_IS_BETTER else 1 - scaled
        ax.imshow(shown, cmap="RdYlGn_r", vmin=0, vmax=1, aspect="auto")
        for (i, j), value in np.ndenumerate(values):
            ax.text(j, i, "—" if np.isnan(value) else f"{value:.3g}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(table.order)), table.order)
        ax.set_yticks(range(len(rows)), [row[0] for row in rows])
        ax.set_title(f"{metric} ({'lower' if metric in LOWER_IS_BETTER else 'higher'} is better)")
        ax.set_xlabel("domain")
        ax.set_ylabel("after stage")
    fig.suptitle(f"Lifelong matrix, order {''.join(table.order)}, {table.strategy} (green = better)")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
