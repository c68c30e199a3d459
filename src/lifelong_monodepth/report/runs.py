"""One row per run of a sweep: what it was (order, strategy, seed, overrides) and its numbers.

A run is a folder holding ``results/summary.json`` (written at the end of a run) and usually
``results/lifelong_matrix.csv`` (read for the relative forgetting and the matrix heatmap). Runs of a
multirun that failed hold ``results/failed.json`` instead; they are listed, never averaged.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from lifelong_monodepth.evaluation.lifelong_matrix import LifelongMatrix, forgetting

# Summary metrics of one run: column name → (path in summary.json). Per-domain columns are added.
SUMMARY_METRICS: dict[str, tuple[str, ...]] = {
    "avg_rmse": ("average", "prior", "rmse"),
    "avg_delta1": ("average", "prior", "delta1"),
    "avg_abs_rel": ("average", "prior", "abs_rel"),
    "avg_rmse_auto": ("average", "auto", "rmse"),
    "avg_delta1_auto": ("average", "auto", "delta1"),
    "forgetting_rmse": ("average", "forgetting", "rmse"),
    "forgetting_delta1": ("average", "forgetting", "delta1"),
    "bwt_rmse": ("backward_transfer", "rmse"),
    "bwt_delta1": ("backward_transfer", "delta1"),
    "fwt_rmse": ("forward_transfer", "rmse"),
    "fwt_delta1": ("forward_transfer", "delta1"),
    "selection_acc": ("selection_accuracy", "overall"),
    "routing_gap_rmse": ("average", "routing_gap", "rmse"),
}
# Relative forgetting (a fraction of the metric right after learning) from the lifelong matrix:
# metres of forgetting averaged over an 80 m and two 10 m domains are dominated by the 80 m one.
RELATIVE_METRICS: dict[str, tuple[str, bool]] = {
    "rel_forgetting_rmse": ("rmse", False),
    "rel_forgetting_delta1": ("delta1", True),
}
DOMAIN_METRICS = ("rmse", "delta1", "abs_rel")
MATRIX_METRIC = "rmse"


@dataclass
class Run:
    """One finished run: its identity, its metrics and its RMSE lifelong matrix (stages × domains)."""

    path: Path
    order: str
    strategy: str
    protocol: str
    seed: int | None
    overrides: dict[str, str | None]
    metrics: dict[str, float]
    matrix: np.ndarray | None = None
    stages: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "strategy": self.strategy,
            "protocol": self.protocol,
            "seed": self.seed,
            **self.metrics,
            "run": str(self.path),
        }


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _lookup(summary: dict[str, Any], path: tuple[str, ...]) -> float:
    node: Any = summary
    for key in path:
        if not isinstance(node, dict):
            return math.nan
        node = node.get(key)
    return _number(node)


def read_overrides(run_dir: Path, summary: dict[str, Any]) -> dict[str, str | None]:
    """From ``summary.json`` (recorded since the sweep tooling) or Hydra's ``.hydra/overrides.yaml``."""
    if isinstance(summary.get("overrides"), dict):
        return {str(k): None if v is None else str(v) for k, v in summary["overrides"].items()}
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    result: dict[str, str | None] = {}
    for line in yaml.safe_load(path.read_text()) or []:
        key, _, value = str(line).partition("=")
        result[key.lstrip("+~")] = value or None
    return result


def _seed(summary: dict[str, Any], overrides: dict[str, str | None]) -> int | None:
    for value in (summary.get("seed"), overrides.get("seed")):
        try:
            return int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
    return None


def _matrix_metrics(results_dir: Path, order: str) -> tuple[dict[str, float], np.ndarray | None, list[str]]:
    path = results_dir / "lifelong_matrix.csv"
    values = {name: math.nan for name in RELATIVE_METRICS}
    if not path.is_file():
        return values, None, []
    matrices = LifelongMatrix.from_long(pd.read_csv(path), mode="prior", domains=list(order))
    sequential = len(matrices.stages) == len(order)
    for name, (metric, higher) in RELATIVE_METRICS.items():
        if sequential and metric in matrices.metrics:
            per_domain = forgetting(matrices[metric], higher_is_better=higher, relative=True)
            finite = per_domain[~np.isnan(per_domain)]
            values[name] = float(finite.mean()) if finite.size else math.nan
    matrix = matrices.metrics.get(MATRIX_METRIC)
    return values, matrix, list(matrices.stages)


def read_run(summary_path: Path) -> Run:
    """A run folder's ``results/summary.json`` (+ matrix and overrides) → :class:`Run`."""
    results_dir = summary_path.parent
    run_dir = results_dir.parent
    summary = json.loads(summary_path.read_text())
    overrides = read_overrides(run_dir, summary)
    order = str(summary.get("order", ""))
    metrics = {name: _lookup(summary, path) for name, path in SUMMARY_METRICS.items()}
    relative, matrix, stages = _matrix_metrics(results_dir, order)
    metrics.update(relative)
    for domain in order:
        for metric in DOMAIN_METRICS:
            metrics[f"{domain}_{metric}"] = _lookup(summary, ("final", domain, "prior", metric))
    return Run(
        path=run_dir,
        order=order,
        strategy=str(summary.get("strategy", "")),
        protocol=str(summary.get("protocol", "")),
        seed=_seed(summary, overrides),
        overrides=overrides,
        metrics=metrics,
        matrix=matrix,
        stages=stages,
    )


def find_runs(folder: str | Path) -> list[Run]:
    """Every finished run below ``folder`` (a run, a multirun, or a folder of multiruns)."""
    paths = sorted(Path(folder).rglob("results/summary.json"))
    if not paths:
        raise FileNotFoundError(f"No results/summary.json below {folder}: is it a run or multirun directory?")
    return [read_run(path) for path in paths]


def find_failures(folder: str | Path) -> list[dict[str, Any]]:
    """The ``results/failed.json`` records below ``folder`` (jobs of a sweep that did not finish)."""
    failures = []
    for path in sorted(Path(folder).rglob("results/failed.json")):
        record = json.loads(path.read_text())
        failures.append({"run": str(path.parent.parent), **record})
    return failures
