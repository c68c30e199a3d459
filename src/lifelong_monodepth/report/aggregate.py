"""Group the runs of a sweep by everything except the seed (optionally the order) → mean ± std.

A group is one setting: strategy, order, protocol and every command-line/swept override whose
value differs between runs (e.g. ``strategy.callbacks.replay.weight``). Overrides that only place
or record a run (paths, the seed, the launcher, the logger, …) never split groups. The standard
deviation is the sample one (``ddof=1``): with n runs it estimates the spread of a new run; it is
undefined (NaN, shown as ``—``) for a group of one run.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lifelong_monodepth.report.runs import Run

# Override keys that do not change what a run computes (or are columns of their own).
IGNORED_KEYS = frozenset({"seed", "order", "strategy", "sweep", "resume", "threads", "logger", "callbacks"})
IGNORED_PREFIXES = ("hydra.", "hydra/", "paths.", "logger.", "callbacks.")
# The cell of a varying override in a run that did not set it (it used the config value).
DEFAULT = "default"
NOT_METRICS = frozenset({"order", "strategy", "protocol", "seed", "run"})


def ignored(key: str) -> bool:
    return key in IGNORED_KEYS or key.startswith(IGNORED_PREFIXES)


def setting_keys(runs: Sequence[Run]) -> tuple[list[str], dict[str, str | None]]:
    """Override keys that vary between runs (group columns) and those shared by all (listed once)."""
    keys = sorted({k for run in runs for k in run.overrides if not ignored(k)})
    varying, common = [], {}
    for key in keys:
        values = {run.overrides.get(key, "") for run in runs}
        if len(values) > 1:
            varying.append(key)
        else:
            common[key] = values.pop()
    return varying, common


def runs_frame(runs: Sequence[Run], varying: Sequence[str]) -> pd.DataFrame:
    """One row per run: identity columns, the varying overrides, then every metric."""
    rows = []
    for run in runs:
        row = run.row()
        for key in varying:
            row[key] = run.overrides.get(key) or DEFAULT
        rows.append(row)
    frame = pd.DataFrame(rows)
    first = ["order", "strategy", "protocol", *varying, "seed"]
    rest = [c for c in frame.columns if c not in first and c != "run"]
    return frame[first + rest + ["run"]].sort_values(["order", "strategy", *varying, "seed"], kind="stable")


def group_columns(varying: Sequence[str], across_orders: bool) -> list[str]:
    return (
        ["strategy", "protocol", *varying] if across_orders else ["order", "strategy", "protocol", *varying]
    )


def metric_columns(frame: pd.DataFrame, varying: Sequence[str]) -> list[str]:
    return [c for c in frame.columns if c not in NOT_METRICS and c not in varying]


def aggregate(frame: pd.DataFrame, varying: Sequence[str], across_orders: bool = False) -> pd.DataFrame:
    """One row per group: the group columns, ``n``, ``seeds``, then ``<metric>`` (mean) and ``<metric>_std``.

    Means skip NaN entries (a metric a run does not define); ``n`` counts the runs of the group.
    With ``across_orders`` the ``orders`` column lists the orders that were pooled.
    """
    keys = group_columns(varying, across_orders)
    metrics = metric_columns(frame, varying)
    rows = []
    for values, group in frame.groupby(keys, sort=True, dropna=False):
        row = dict(zip(keys, values if isinstance(values, tuple) else (values,), strict=True))
        if across_orders:
            row["orders"] = ",".join(sorted(set(group["order"])))
        row["n"] = len(group)
        row["seeds"] = ",".join(str(int(s)) for s in sorted(group["seed"].dropna().unique()))
        for metric in metrics:
            values_ = pd.to_numeric(group[metric], errors="coerce")
            row[metric] = float(values_.mean()) if values_.notna().any() else np.nan
            row[f"{metric}_std"] = float(values_.std(ddof=1)) if values_.notna().sum() > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows).sort_values(keys, key=_numeric_if_possible, kind="stable", ignore_index=True)


def _numeric_if_possible(column: pd.Series) -> pd.Series:
    """Sort a swept weight 1, 5, 10, 100 — not 1, 10, 100, 5."""
    numbers = pd.to_numeric(column, errors="coerce")
    return numbers if numbers.notna().all() else column


def mean_matrix(runs: Sequence[Run]) -> tuple[np.ndarray, np.ndarray] | None:
    """Element-wise mean and sample std of the runs' RMSE matrices (positions in learning order)."""
    matrices = [run.matrix for run in runs if run.matrix is not None]
    shapes = {m.shape for m in matrices}
    if not matrices or len(shapes) != 1:
        return None
    stack = np.stack(matrices)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells (domains not learned yet)
        mean = np.nanmean(stack, axis=0)
        std = np.nanstd(stack, axis=0, ddof=1) if len(matrices) > 1 else np.full_like(mean, np.nan)
    return mean, std


def group_runs(runs: Sequence[Run], varying: Sequence[str], across_orders: bool) -> dict[tuple, list[Run]]:
    """The runs of each group, keyed by the values of :func:`group_columns` (as in :func:`aggregate`)."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        identity = {"order": run.order, "strategy": run.strategy, "protocol": run.protocol}
        identity.update({key: run.overrides.get(key) or DEFAULT for key in varying})
        key = tuple(identity[c] for c in group_columns(varying, across_orders))
        groups.setdefault(key, []).append(run)
    return groups
