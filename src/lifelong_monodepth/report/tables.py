"""The paper tables of a sweep: Markdown (``report.md``) and LaTeX (``report.tex``), mean ± std.

Both read the aggregated frame of :func:`lifelong_monodepth.report.aggregate.aggregate`: one row
per setting, ``<metric>`` holding the mean and ``<metric>_std`` the sample standard deviation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class Column:
    metric: str
    label: str
    latex: str
    scale: float = 1.0
    digits: int = 3


# Arrows say which direction is better; relative forgetting is shown in per cent.
MAIN_COLUMNS = (
    Column("avg_rmse", "RMSE ↓", r"RMSE $\downarrow$"),
    Column("avg_delta1", "δ1 ↑", r"$\delta_1$ $\uparrow$"),
    Column("avg_rmse_auto", "RMSE auto ↓", r"RMSE\textsubscript{auto} $\downarrow$"),
    Column("forgetting_rmse", "forg. RMSE (m) ↓", r"Forg.\ (m) $\downarrow$"),
    Column("rel_forgetting_rmse", "forg. RMSE (%) ↓", r"Forg.\ (\%) $\downarrow$", 100.0, 1),
    Column("bwt_rmse", "BWT ↑", r"BWT $\uparrow$"),
    Column("fwt_rmse", "FWT ↑", r"FWT $\uparrow$"),
    Column("selection_acc", "sel. acc. ↑", r"Sel.\ acc.\ $\uparrow$"),
)


def domain_columns(domains: Sequence[str]) -> list[Column]:
    columns = []
    for d in domains:
        columns.append(Column(f"{d}_rmse", f"{d} RMSE ↓", rf"{d} RMSE $\downarrow$"))
        columns.append(Column(f"{d}_delta1", f"{d} δ1 ↑", rf"{d} $\delta_1$ $\uparrow$"))
    return columns


def mean_std(mean: Any, std: Any, scale: float = 1.0, digits: int = 3, pm: str = " ± ") -> str:
    """``0.431 ± 0.012``; the mean alone when std is undefined (one run); ``—`` when undefined."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    text = f"{mean * scale:.{digits}f}"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return text
    return f"{text}{pm}{std * scale:.{digits}f}"


def _present(frame: pd.DataFrame, columns: Sequence[Column]) -> list[Column]:
    return [c for c in columns if c.metric in frame.columns and frame[c.metric].notna().any()]


def _cells(row: pd.Series, columns: Sequence[Column], pm: str) -> list[str]:
    return [mean_std(row[c.metric], row.get(f"{c.metric}_std"), c.scale, c.digits, pm) for c in columns]


def markdown_table(frame: pd.DataFrame, keys: Sequence[str], columns: Sequence[Column]) -> str:
    columns = _present(frame, columns)
    header = [*keys, "n", *(c.label for c in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in frame.iterrows():
        cells = [str(row[k]) for k in keys] + [str(int(row["n"]))] + _cells(row, columns, " ± ")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    return re.sub(r"([&%$#_{}])", r"\\\1", str(text))


def latex_table(
    frame: pd.DataFrame, keys: Sequence[str], columns: Sequence[Column], caption: str, label: str
) -> str:
    """A booktabs ``table`` (needs ``\\usepackage{booktabs}``), typeset by pandas."""
    columns = _present(frame, columns)
    body = pd.DataFrame(
        [
            [latex_escape(row[k]) for k in keys]
            + [str(int(row["n"]))]
            + [f"${cell}$" if cell != "—" else "--" for cell in _cells(row, columns, r" \pm ")]
            for _, row in frame.iterrows()
        ],
        columns=[latex_escape(k) for k in keys] + ["$n$"] + [c.latex for c in columns],
    )
    return body.to_latex(
        index=False,
        escape=False,
        column_format="l" * len(keys) + "r" * (1 + len(columns)),
        caption=caption,
        label=label,
        position="t",
    )
