"""Matplotlib figures that runs, reports and predictions write to disk: headless, and closed once written."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend: training nodes and CI have no display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int, **savefig: Any) -> Path:
    """Write ``fig`` to ``path`` (its folder created) and close it: a run writes many figures, and
    pyplot keeps every open one alive."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, **savefig)
    pyplot().close(fig)
    return path
