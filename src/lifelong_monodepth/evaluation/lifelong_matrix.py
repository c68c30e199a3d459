"""Continual-learning summaries of a lifelong matrix ``R[stage, domain]``.

Rows are the learning stages in order (``N``, ``NK``, ``NKS``), columns the domains in learning
order, so domain ``j`` is learned at stage ``j`` and ``R[j, j]`` is its metric right after it was
learned. Entries above the diagonal (a domain not learned yet) may be NaN or hold the "before
learning" value (forward transfer reads them). Every function takes ``higher_is_better`` so the
same code serves RMSE (lower is better) and δ1 (higher is better); signs are fixed as documented,
independent of the metric's direction. NaN entries are skipped in averages, and an average over
nothing is NaN (never a warning or an exception).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

LONG_COLUMNS: tuple[str, ...] = ("stage", "domain", "mode", "metric", "value")


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def _as_matrix(R: np.ndarray) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.ndim != 2:
        raise ValueError(f"A lifelong matrix is 2-D (stages × domains), got shape {R.shape}")
    return R


def forgetting(R: np.ndarray, higher_is_better: bool, relative: bool = False) -> np.ndarray:
    """Per-domain forgetting from ``R[j, j]`` to the final stage, positive = the domain got worse.

    For RMSE it is ``R[T-1, j] - R[j, j]``, for δ1 ``R[j, j] - R[T-1, j]``. Domains learned at the
    last stage (or not learned yet) have had no chance to be forgotten: their entry is NaN, so
    averages leave them out. ``relative=True`` divides by ``|R[j, j]|`` (a fraction of the metric
    right after learning). Unlike Chaudhry et al. (2018), who use the best earlier value, the
    reference is the value right after learning, matching backward transfer (Lopez-Paz & Ranzato, 2017).
    """
    R = _as_matrix(R)
    stages, domains = R.shape
    result = np.full(domains, np.nan)
    last = stages - 1
    for j in range(min(domains, last)):
        learned, final = R[j, j], R[last, j]
        value = learned - final if higher_is_better else final - learned
        if relative:
            value = value / abs(learned) if learned != 0 else np.nan
        result[j] = value
    return result


def backward_transfer(R: np.ndarray, higher_is_better: bool) -> float:
    """Mean over domains ``j < T-1`` of ``R[T-1, j] - R[j, j]``, signed so positive = better.

    It is minus the mean of ``forgetting``: positive when later stages improved earlier domains.
    """
    return -_nanmean(forgetting(R, higher_is_better))


def forward_transfer(R: np.ndarray, baseline: Sequence[float] | np.ndarray, higher_is_better: bool) -> float:
    """Mean over ``j >= 1`` of domain ``j``'s metric at stage ``j-1`` (before learning) vs ``baseline[j]``.

    ``baseline`` holds a randomly initialised model's metric per domain. Signed so positive = the
    earlier stages already helped on the unseen domain; NaN entries (no value before learning) are skipped.
    """
    R = _as_matrix(R)
    baseline = np.asarray(baseline, dtype=float)
    stages, domains = R.shape
    if baseline.shape != (domains,):
        raise ValueError(f"baseline must have one value per domain ({domains}), got shape {baseline.shape}")
    values = []
    for j in range(1, min(domains, stages + 1)):
        before = R[j - 1, j]
        values.append(before - baseline[j] if higher_is_better else baseline[j] - before)
    return _nanmean(np.array(values))


def average_final(R: np.ndarray) -> float:
    """Mean of the last row (the final model on every domain), skipping NaN entries."""
    return _nanmean(_as_matrix(R)[-1])


@dataclass
class LifelongMatrix:
    """The lifelong matrices of one run and one evaluation mode (``prior`` or ``auto``).

    ``metrics`` maps a metric name to its ``(len(stages), len(domains))`` matrix; ``reference``
    maps a metric name to the per-domain values of the untrained model (stage ``reference_stage``),
    the baseline of forward transfer.
    """

    domains: list[str]
    stages: list[str]
    metrics: dict[str, np.ndarray]
    mode: str = "prior"
    reference: dict[str, np.ndarray] = field(default_factory=dict)
    reference_stage: str = "init"

    def __post_init__(self) -> None:
        self.domains, self.stages = list(self.domains), list(self.stages)
        shape = (len(self.stages), len(self.domains))
        self.metrics = {name: np.asarray(m, dtype=float) for name, m in self.metrics.items()}
        self.reference = {name: np.asarray(r, dtype=float) for name, r in self.reference.items()}
        for name, matrix in self.metrics.items():
            if matrix.shape != shape:
                raise ValueError(f"Matrix {name!r}: shape {matrix.shape}, expected {shape} (stages, domains)")
        for name, values in self.reference.items():
            if values.shape != (len(self.domains),):
                raise ValueError(f"Reference {name!r} has shape {values.shape}, expected one per domain")

    def __getitem__(self, metric: str) -> np.ndarray:
        return self.metrics[metric]

    @classmethod
    def from_long(
        cls,
        frame: pd.DataFrame,
        mode: str = "prior",
        domains: Sequence[str] | None = None,
        stages: Sequence[str] | None = None,
        reference_stage: str = "init",
    ) -> LifelongMatrix:
        """Matrices from a long ``stage,domain,mode,metric,value`` table, keeping rows of one ``mode``.

        Domains and stages default to their order of first appearance; rows of ``reference_stage``
        go to ``reference`` instead of a matrix row. Missing cells are NaN; a repeated cell keeps
        its last row (a stage re-evaluated after a resume overrides the earlier one).
        """
        missing = set(LONG_COLUMNS) - set(frame.columns)
        if missing:
            raise ValueError(f"Long table lacks columns {sorted(missing)}; expected {list(LONG_COLUMNS)}")
        rows = frame[frame["mode"] == mode]
        stage_names = [str(s) for s in rows["stage"]]
        domain_names = [str(d) for d in rows["domain"]]
        if domains is None:
            domains = list(dict.fromkeys(domain_names))
        if stages is None:
            stages = [s for s in dict.fromkeys(stage_names) if s != reference_stage]
        domain_index = {d: i for i, d in enumerate(domains)}
        stage_index = {s: i for i, s in enumerate(stages)}
        metrics: dict[str, np.ndarray] = {}
        reference: dict[str, np.ndarray] = {}
        cells = zip(stage_names, domain_names, rows["metric"], rows["value"], strict=True)
        for stage, domain, metric, value in cells:
            if domain not in domain_index:
                continue
            j = domain_index[domain]
            if stage == reference_stage:
                reference.setdefault(str(metric), np.full(len(domains), np.nan))[j] = float(value)
            elif stage in stage_index:
                matrix = metrics.setdefault(str(metric), np.full((len(stages), len(domains)), np.nan))
                matrix[stage_index[stage], j] = float(value)
        return cls(
            list(domains),
            list(stages),
            metrics,
            mode=mode,
            reference=reference,
            reference_stage=reference_stage,
        )

    def to_long(self) -> pd.DataFrame:
        """The long ``stage,domain,mode,metric,value`` table; NaN cells are left out (they mean "absent")."""
        records = []
        for metric, values in self.reference.items():
            for j, domain in enumerate(self.domains):
                if not np.isnan(values[j]):
                    records.append((self.reference_stage, domain, self.mode, metric, float(values[j])))
        for metric, matrix in self.metrics.items():
            for i, stage in enumerate(self.stages):
                for j, domain in enumerate(self.domains):
                    if not np.isnan(matrix[i, j]):
                        records.append((stage, domain, self.mode, metric, float(matrix[i, j])))
        return pd.DataFrame.from_records(records, columns=list(LONG_COLUMNS))
