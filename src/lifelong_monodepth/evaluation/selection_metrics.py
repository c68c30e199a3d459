"""How well automatic head selection routes images, and what mis-routing costs.

``true`` is each image's real domain, ``chosen`` the head the selector picked for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd


def _check(true: Sequence[str], chosen: Sequence[str]) -> tuple[list[str], list[str]]:
    true, chosen = [str(t) for t in true], [str(c) for c in chosen]
    if len(true) != len(chosen):
        raise ValueError(f"true ({len(true)}) and chosen ({len(chosen)}) must have one entry per image")
    return true, chosen


def selection_accuracy(true: Sequence[str], chosen: Sequence[str]) -> dict[str, Any]:
    """``{"overall": float, "per_domain": {domain: float}, "count": int}``; NaN overall when empty.

    Per-domain accuracy is the recall of each true domain (share of its images routed to its own
    head), domains in order of first appearance.
    """
    true, chosen = _check(true, chosen)
    hits: dict[str, int] = {}
    totals: dict[str, int] = {}
    for t, c in zip(true, chosen, strict=True):
        totals[t] = totals.get(t, 0) + 1
        hits[t] = hits.get(t, 0) + int(t == c)
    overall = sum(hits.values()) / len(true) if true else float("nan")
    return {
        "overall": overall,
        "per_domain": {d: hits[d] / totals[d] for d in totals},
        "count": len(true),
    }


def confusion_matrix(
    true: Sequence[str], chosen: Sequence[str], labels: Sequence[str] | None = None
) -> pd.DataFrame:
    """Counts with rows = true domain, columns = chosen head (both in ``labels`` order).

    ``labels`` defaults to every label seen (true first, then chosen) in order of appearance; a
    label outside an explicit ``labels`` raises, since silently dropping images would hide errors.
    """
    true, chosen = _check(true, chosen)
    if labels is None:
        labels = list(dict.fromkeys([*true, *chosen]))
    labels = [str(label) for label in labels]
    unknown = sorted((set(true) | set(chosen)) - set(labels))
    if unknown:
        raise ValueError(f"Labels {unknown} are not in labels={labels}")
    frame = pd.DataFrame(0, index=pd.Index(labels, name="true"), columns=pd.Index(labels, name="chosen"))
    for t, c in zip(true, chosen, strict=True):
        frame.loc[t, c] += 1
    return frame


def routing_gap(auto_metrics: Mapping[str, Any], prior_metrics: Mapping[str, Any]) -> dict[str, float]:
    """``auto - prior`` for every metric both have: a positive RMSE gap means selection costs accuracy.

    For higher-is-better metrics (δ) a negative gap is the cost. Values may be floats or 0-d tensors.
    """
    return {
        name: float(auto_metrics[name]) - float(prior_metrics[name])
        for name in auto_metrics
        if name in prior_metrics
    }


def unknown_detection(fractions: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    """How well the "unknown domain" flag works across a run's stages.

    ``fractions[stage][domain]`` is the share of that domain's images flagged unknown after
    ``stage``; a stage's name lists the domains learned by then (``N``, ``NK``, ``NKS``). For a
    domain not learned yet every flag is a detection, for a learned one every flag is a false
    alarm. Returns the mean ``unlearned`` (want high) and ``learned`` (want low) fractions, NaN
    where a run has no such pair, plus each pair under ``per_stage``.
    """
    learned, unlearned = [], []
    per_stage: dict[str, dict[str, dict[str, float]]] = {}
    for stage, by_domain in fractions.items():
        for domain, value in by_domain.items():
            if value != value:  # NaN: no selector ran
                continue
            kind = "learned" if domain in stage else "unlearned"
            (learned if kind == "learned" else unlearned).append(float(value))
            per_stage.setdefault(stage, {}).setdefault(kind, {})[domain] = float(value)
    return {
        "learned": sum(learned) / len(learned) if learned else float("nan"),
        "unlearned": sum(unlearned) / len(unlearned) if unlearned else float("nan"),
        "per_stage": per_stage,
    }
