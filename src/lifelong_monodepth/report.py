"""Merge the runs of a sweep into one table and one chart.

``python -m lifelong_monodepth.report outputs/multiruns/<date>`` finds every
``results/summary.json`` below the folder and writes, into it, ``report.csv``, ``report.md``
and ``forgetting.png`` (average forgetting of RMSE per strategy and order).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

COLUMNS = [
    "order",
    "strategy",
    "protocol",
    "avg_rmse",
    "avg_delta1",
    "avg_rmse_auto",
    "forgetting_rmse",
    "forgetting_delta1",
    "bwt_rmse",
    "fwt_rmse",
    "selection_acc",
    "routing_gap_rmse",
    "run",
]


def summary_row(path: Path) -> dict[str, Any]:
    summary = json.loads(path.read_text())
    average = summary.get("average", {})
    row = {
        "order": summary.get("order"),
        "strategy": summary.get("strategy"),
        "protocol": summary.get("protocol"),
        "avg_rmse": average.get("prior", {}).get("rmse"),
        "avg_delta1": average.get("prior", {}).get("delta1"),
        "avg_rmse_auto": average.get("auto", {}).get("rmse"),
        "forgetting_rmse": average.get("forgetting", {}).get("rmse"),
        "forgetting_delta1": average.get("forgetting", {}).get("delta1"),
        "bwt_rmse": summary.get("backward_transfer", {}).get("rmse"),
        "fwt_rmse": summary.get("forward_transfer", {}).get("rmse"),
        "selection_acc": summary.get("selection_accuracy", {}).get("overall"),
        "routing_gap_rmse": average.get("routing_gap", {}).get("rmse"),
        "run": str(path.parent.parent),
    }
    for domain, modes in summary.get("final", {}).items():
        row[f"{domain}_rmse"] = modes.get("prior", {}).get("rmse")
        row[f"{domain}_delta1"] = modes.get("prior", {}).get("delta1")
    return row


def collect(folder: str | Path) -> pd.DataFrame:
    paths = sorted(Path(folder).rglob("results/summary.json"))
    if not paths:
        raise FileNotFoundError(f"No results/summary.json below {folder}: is it a run or multirun directory?")
    frame = pd.DataFrame([summary_row(p) for p in paths])
    extra = sorted(c for c in frame.columns if c not in COLUMNS)
    return frame[[c for c in COLUMNS if c in frame.columns] + extra].sort_values(["order", "strategy"])


def plot_forgetting(frame: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pivot = frame.pivot_table(index="order", columns="strategy", values="forgetting_rmse", aggfunc="mean")
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(pivot)), 3.2))
    pivot.plot.bar(ax=ax, rot=0)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("average forgetting (RMSE, m)\nlower is better")
    ax.set_title("Forgetting per strategy and order")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "—" if math.isnan(value) else f"{value:.3f}"
    return "—" if value is None else str(value)


def to_markdown(frame: pd.DataFrame) -> str:
    shown = [c for c in COLUMNS if c != "run" and c in frame.columns]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c]) for c in shown) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a run or multirun directory")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    frame = collect(folder)
    frame.to_csv(folder / "report.csv", index=False)
    (folder / "report.md").write_text(to_markdown(frame))
    if frame["forgetting_rmse"].notna().any():
        plot_forgetting(frame, folder / "forgetting.png")
    print(to_markdown(frame))
    print(f"Wrote {folder / 'report.csv'}, {folder / 'report.md'}, {folder / 'forgetting.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
