"""Lifelong results of one run: ``results/lifelong_matrix.csv`` (long format) and summaries.

Rows are ``stage,domain,mode,metric,value``: ``stage`` is ``init`` (untrained reference) or a
stage name (``N``, ``NK``, ``NKS``), ``mode`` is ``prior`` (the domain's own head) or ``auto``
(automatic selection; metric ``selection_acc``, ``routed_to_<letter>`` counts and ``unknown_frac``,
the share of images flagged as belonging to no learned domain, live there too).
The CSV is rewritten after every stage, so a resumed run continues the same table.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lifelong_monodepth.evaluation.lifelong_matrix import backward_transfer, forgetting, forward_transfer
from lifelong_monodepth.evaluation.metrics import LOWER_IS_BETTER, METRIC_NAMES
from lifelong_monodepth.evaluation.selection_metrics import unknown_detection
from lifelong_monodepth.utils.io import write_json, write_text

if TYPE_CHECKING:
    from lifelong_monodepth.evaluation.evaluate import DomainEvaluation

COLUMNS = ["stage", "domain", "mode", "metric", "value"]
HEADLINE = ("abs_rel", "rmse", "delta1")
MATRIX_FILE = "lifelong_matrix.csv"


class ResultsTable:
    def __init__(
        self, order: list[str], strategy: str, protocol: str, rows: list[dict[str, Any]] | None = None
    ):
        self.order = list(order)
        self.strategy = strategy
        self.protocol = protocol
        self.rows: list[dict[str, Any]] = list(rows or [])
        self.summary: dict[str, Any] = {}
        # What tells this run apart in a sweep (seed, command-line overrides): copied into summary.json.
        self.meta: dict[str, Any] = {}

    @classmethod
    def load_or_new(
        cls, results_dir: str | Path, order: list[str], strategy: str, protocol: str
    ) -> ResultsTable:
        path = Path(results_dir) / MATRIX_FILE
        rows = pd.read_csv(path).to_dict("records") if path.is_file() else []
        return cls(order, strategy, protocol, rows)

    @property
    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=COLUMNS)

    @property
    def stages(self) -> list[str]:
        return list(dict.fromkeys(row["stage"] for row in self.rows))

    def add_stage(self, stage: str, results: Mapping[str, DomainEvaluation]) -> None:
        self.rows = [row for row in self.rows if row["stage"] != stage]
        for letter, evaluation in results.items():
            for mode, values in (("prior", evaluation.prior), ("auto", evaluation.auto)):
                for metric, value in (values or {}).items():
                    self.rows.append(
                        {"stage": stage, "domain": letter, "mode": mode, "metric": metric, "value": value}
                    )
            if evaluation.chosen:
                self.rows.append(
                    {
                        "stage": stage,
                        "domain": letter,
                        "mode": "auto",
                        "metric": "selection_acc",
                        "value": evaluation.selection_accuracy,
                    }
                )
                self.rows.append(
                    {
                        "stage": stage,
                        "domain": letter,
                        "mode": "auto",
                        "metric": "unknown_frac",
                        "value": evaluation.unknown_fraction,
                    }
                )
                for head in sorted(set(evaluation.chosen)):
                    self.rows.append(
                        {
                            "stage": stage,
                            "domain": letter,
                            "mode": "auto",
                            "metric": f"routed_to_{head}",
                            "value": evaluation.chosen.count(head),
                        }
                    )

    def value(self, stage: str, domain: str, mode: str, metric: str) -> float:
        for row in self.rows:
            if (row["stage"], row["domain"], row["mode"], row["metric"]) == (stage, domain, mode, metric):
                return float(row["value"])
        return math.nan

    def matrix(self, metric: str, mode: str = "prior") -> np.ndarray:
        """R[stage, domain] over the learning stages (``init`` excluded), domains in learning order."""
        stages = [s for s in self.stages if s != "init"]
        return np.array([[self.value(s, d, mode, metric) for d in self.order] for s in stages], dtype=float)

    def save(self, results_dir: str | Path) -> Path:
        frame = self.frame
        return write_text(Path(results_dir) / MATRIX_FILE, frame.to_csv(index=False))

    # ------------------------------------------------------------------------------ summary
    def build_summary(self) -> dict[str, Any]:
        stages = [s for s in self.stages if s != "init"]
        if not stages:
            return {}
        final = stages[-1]
        sequential = len(stages) == len(self.order)
        summary: dict[str, Any] = {
            **self.meta,
            "protocol": self.protocol,
            "strategy": self.strategy,
            "order": "".join(self.order),
            "stages": stages,
            "final_stage": final,
            "final": {},
            "reference_init": {},
            "forgetting": {},
            "selection_accuracy": {},
            "confusion_matrix": {},
            "routing_gap": {},
            "unknown_fraction": {},
        }
        for domain in self.order:
            summary["final"][domain] = {
                mode: {m: self.value(final, domain, mode, m) for m in METRIC_NAMES}
                for mode in ("prior", "auto")
            }
            summary["reference_init"][domain] = {
                m: self.value("init", domain, "prior", m) for m in METRIC_NAMES
            }
            summary["selection_accuracy"][domain] = self.value(final, domain, "auto", "selection_acc")
            summary["confusion_matrix"][domain] = {
                head: self.value(final, domain, "auto", f"routed_to_{head}") for head in self.order
            }
            summary["confusion_matrix"][domain] = {
                k: (0 if math.isnan(v) else int(v)) for k, v in summary["confusion_matrix"][domain].items()
            }
            summary["routing_gap"][domain] = {
                m: summary["final"][domain]["auto"][m] - summary["final"][domain]["prior"][m]
                for m in HEADLINE
            }
        routed = sum(sum(row.values()) for row in summary["confusion_matrix"].values())
        correct = sum(summary["confusion_matrix"][d].get(d, 0) for d in self.order)
        summary["selection_accuracy"]["overall"] = correct / routed if routed else math.nan
        summary["unknown_fraction"] = {
            stage: {d: self.value(stage, d, "auto", "unknown_frac") for d in self.order} for stage in stages
        }
        summary["unknown_detection"] = unknown_detection(summary["unknown_fraction"])
        for metric in ("rmse", "delta1", "abs_rel"):
            higher = metric not in LOWER_IS_BETTER
            prior = self.matrix(metric, "prior")
            if sequential:
                values = forgetting(prior, higher_is_better=higher)
                summary["forgetting"].setdefault("per_domain", {})
                for domain, value in zip(self.order, values, strict=True):
                    summary["forgetting"]["per_domain"].setdefault(domain, {})[metric] = _float(value)
                summary.setdefault("backward_transfer", {})[metric] = _float(backward_transfer(prior, higher))
                # Before a domain is learned it has no head: its entry is the automatic-selection result.
                before = np.where(np.isnan(prior), self.matrix(metric, "auto"), prior)
                baseline = np.array([self.value("init", d, "prior", metric) for d in self.order])
                summary.setdefault("forward_transfer", {})[metric] = _float(
                    forward_transfer(before, baseline, higher)
                )
        summary["average"] = {
            mode: {m: _nanmean([summary["final"][d][mode][m] for d in self.order]) for m in METRIC_NAMES}
            for mode in ("prior", "auto")
        }
        if sequential:
            per_domain = summary["forgetting"].get("per_domain", {})
            summary["average"]["forgetting"] = {
                m: _nanmean([per_domain[d][m] for d in self.order[:-1]])
                for m in ("rmse", "delta1", "abs_rel")
            }
        summary["average"]["routing_gap"] = {
            m: _nanmean([summary["routing_gap"][d][m] for d in self.order]) for m in HEADLINE
        }
        return summary

    def markdown(self) -> str:
        """Tables a researcher can paste: the lifelong matrix (RMSE, δ1) and the final summary."""
        summary = self.summary or self.build_summary()
        lines = [
            f"# Results: order {''.join(self.order)}, strategy `{self.strategy}`, protocol `{self.protocol}`",
            "",
        ]
        for metric in ("rmse", "delta1"):
            lines += [f"## Lifelong matrix, {metric} (with domain prior; rows: after stage)", ""]
            lines += ["| stage | " + " | ".join(self.order) + " |", "|---" * (len(self.order) + 1) + "|"]
            for stage in self.stages:
                cells = [_fmt(self.value(stage, d, "prior", metric)) for d in self.order]
                lines.append(f"| {stage} | " + " | ".join(cells) + " |")
            lines.append("")
        if summary:
            lines += [
                "## Final model",
                "",
                "| domain | AbsRel | RMSE | δ1 | RMSE (auto) | δ1 (auto) | selection acc. "
                "| forgetting RMSE |",
                "|---|---|---|---|---|---|---|---|",
            ]
            per_domain = summary.get("forgetting", {}).get("per_domain", {})
            for d in self.order:
                prior, auto = summary["final"][d]["prior"], summary["final"][d]["auto"]
                lines.append(
                    f"| {d} | {_fmt(prior['abs_rel'])} | {_fmt(prior['rmse'])} | {_fmt(prior['delta1'])} | "
                    f"{_fmt(auto['rmse'])} | {_fmt(auto['delta1'])} | "
                    f"{_fmt(summary['selection_accuracy'][d])} | "
                    f"{_fmt(per_domain.get(d, {}).get('rmse', math.nan))} |"
                )
            lines += ["", f"Selection accuracy (overall): {_fmt(summary['selection_accuracy']['overall'])}"]
            if "backward_transfer" in summary:
                bwt, fwt = summary["backward_transfer"]["rmse"], summary["forward_transfer"]["rmse"]
                lines.append(f"Backward transfer (RMSE, positive = better): {_fmt(bwt)}")
                lines.append(f"Forward transfer (RMSE, positive = better): {_fmt(fwt)}")
            lines += self._selection_markdown(summary)
        return "\n".join(lines) + "\n"

    def _selection_markdown(self, summary: Mapping[str, Any]) -> list[str]:
        """Per stage: share routed to the right head, share flagged unknown (a domain not yet learned
        should be flagged; a learned one should not)."""
        lines = [
            "",
            "## Domain selection per stage (selection acc. / share flagged unknown)",
            "",
            "| stage | " + " | ".join(self.order) + " |",
            "|---" * (len(self.order) + 1) + "|",
        ]
        for stage in summary.get("stages", []):
            cells = []
            for d in self.order:
                unknown = _fmt(self.value(stage, d, "auto", "unknown_frac"))
                accuracy = (
                    _fmt(self.value(stage, d, "auto", "selection_acc")) if d in stage else "(unlearned)"
                )
                cells.append(f"{accuracy} / {unknown}")
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
        detection = summary.get("unknown_detection", {})
        unlearned, learned = (_fmt(detection.get(k, math.nan)) for k in ("unlearned", "learned"))
        lines += [
            "",
            f"Flagged unknown: {unlearned} of not-yet-learned domains' images, "
            f"{learned} of learned domains' images.",
        ]
        return lines

    def finalise(self, results_dir: str | Path) -> dict[str, Any]:
        self.save(results_dir)
        self.summary = self.build_summary()
        write_json(Path(results_dir) / "summary.json", self.summary)
        write_text(Path(results_dir) / "summary.md", self.markdown())
        return self.summary

    def print(self) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(
            title=f"Lifelong results — order {''.join(self.order)}, strategy {self.strategy} "
            f"(protocol {self.protocol}; prior / auto)"
        )
        table.add_column("after stage")
        for d in self.order:
            table.add_column(f"{d} RMSE")
            table.add_column(f"{d} δ1")
        for stage in self.stages:
            cells = []
            for d in self.order:
                for metric in ("rmse", "delta1"):
                    prior, auto = self.value(stage, d, "prior", metric), self.value(stage, d, "auto", metric)
                    cells.append(f"{_fmt(prior)} / {_fmt(auto)}" if not math.isnan(auto) else _fmt(prior))
            table.add_row(stage, *cells)
        Console().print(table)


def _float(value: Any) -> float:
    return float(value) if value is not None else math.nan


def _nanmean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _fmt(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.3f}"


def load_summary(results_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(results_dir) / "summary.json").read_text())
