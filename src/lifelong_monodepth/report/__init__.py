"""The paper table of a sweep: ``python -m lifelong_monodepth.report outputs/multiruns/<date>``.

Finds every finished run below the folder (``results/summary.json``), groups the runs by
everything except the seed (``--across-orders``: except the order too) and writes, into the folder:

- ``report.md`` / ``report.tex``: per setting, ``n`` runs and mean ± sample std of the average
  final RMSE/δ1, forgetting (metres and per cent), BWT, FWT, selection accuracy, and the final
  RMSE/δ1 of every domain;
- ``report.csv``: the same numbers, ``<metric>`` (mean) and ``<metric>_std`` columns;
  ``runs.csv``: one row per run (with its seed and varying overrides);
- ``forgetting.png`` (bars with ±1 std) and ``lifelong_matrix.png`` (mean RMSE matrix per setting).

Failed jobs of the sweep (``results/failed.json``) are listed and never averaged. In Python:
``build_report(folder).groups`` is the aggregated frame (see ``report.aggregate``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lifelong_monodepth.report.aggregate import aggregate, group_columns, group_runs, runs_frame, setting_keys
from lifelong_monodepth.report.plots import group_label, plot_forgetting, plot_matrices
from lifelong_monodepth.report.runs import Run, find_failures, find_runs
from lifelong_monodepth.report.tables import MAIN_COLUMNS, domain_columns, latex_table, markdown_table

__all__ = ["Report", "build_report", "main"]


@dataclass
class Report:
    folder: Path
    runs: list[Run]
    runs_table: pd.DataFrame
    groups: pd.DataFrame
    keys: list[str]
    common: dict[str, str | None]
    across_orders: bool
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def domains(self) -> list[str]:
        return list(dict.fromkeys(letter for run in self.runs for letter in run.order))

    def markdown(self) -> str:
        over = "seeds and orders" if self.across_orders else "seeds"
        lines = [
            f"# Sweep report: {self.folder}",
            "",
            f"{len(self.runs)} run(s) in {len(self.groups)} setting(s); mean ± sample std over {over} "
            "(n = runs per setting; one run: the value alone).",
        ]
        if self.common:
            shared = ", ".join(f"`{k}={v}`" for k, v in self.common.items())
            lines.append(f"Overrides shared by every run: {shared}.")
        keys = [*self.keys, "seeds"] + (["orders"] if self.across_orders else [])
        lines += [
            "",
            "## Averages over domains, forgetting and transfer",
            "",
            "RMSE in metres with the domain prior (`auto`: automatic predictor selection); forgetting "
            "in metres and in per cent of the RMSE right after learning; BWT/FWT of RMSE "
            "(positive = better).",
            "",
            markdown_table(self.groups, keys, MAIN_COLUMNS),
            "## Final metrics per domain (with domain prior)",
            "",
            markdown_table(self.groups, keys, domain_columns(self.domains)),
        ]
        if self.failures:
            lines += ["## Failed runs (not averaged)", ""]
            lines += [f"- `{f['run']}`: {f.get('error', '')}: {f.get('message', '')}" for f in self.failures]
            lines.append("")
        return "\n".join(lines)

    def latex(self) -> str:
        keys = [k for k in self.keys if k != "protocol"]
        over = "seeds and orders" if self.across_orders else "seeds"
        main = latex_table(
            self.groups,
            keys,
            MAIN_COLUMNS,
            caption=f"Lifelong results, mean $\\pm$ sample std over {over} ($n$ runs).",
            label="tab:lifelong",
        )
        per_domain = latex_table(
            self.groups,
            keys,
            domain_columns(self.domains),
            caption=f"Final RMSE and $\\delta_1$ per domain, mean $\\pm$ sample std over {over}.",
            label="tab:lifelong-domains",
        )
        return "% Needs \\usepackage{booktabs}. Written by python -m lifelong_monodepth.report\n" + (
            main + "\n" + per_domain
        )

    def write(self) -> list[Path]:
        """All report files into the folder; returns their paths."""
        written = [self.folder / "report.csv", self.folder / "runs.csv"]
        self.groups.to_csv(written[0], index=False)
        self.runs_table.to_csv(written[1], index=False)
        for name, text in (("report.md", self.markdown()), ("report.tex", self.latex())):
            (self.folder / name).write_text(text)
            written.append(self.folder / name)
        runs = group_runs(self.runs, self.varying, self.across_orders)
        panels = [
            (group_label(row, self.keys), runs[tuple(row[k] for k in self.keys)])
            for _, row in self.groups.iterrows()
        ]
        for path in (
            plot_forgetting(self.groups, self.keys, self.folder / "forgetting.png"),
            plot_matrices(panels, self.folder / "lifelong_matrix.png"),
        ):
            if path is not None:
                written.append(path)
        return written

    @property
    def varying(self) -> list[str]:
        return [k for k in self.keys if k not in ("order", "strategy", "protocol")]


def build_report(folder: str | Path, across_orders: bool = False) -> Report:
    """Read and aggregate the runs below ``folder`` (nothing is written)."""
    folder = Path(folder)
    failures = find_failures(folder)
    failed = {f["run"] for f in failures}
    runs = [run for run in find_runs(folder) if str(run.path) not in failed]
    if not runs:
        raise FileNotFoundError(f"Every run below {folder} failed: see the results/failed.json files.")
    varying, common = setting_keys(runs)
    table = runs_frame(runs, varying)
    groups = aggregate(table, varying, across_orders)
    return Report(
        folder=folder,
        runs=runs,
        runs_table=table,
        groups=groups,
        keys=group_columns(varying, across_orders),
        common=common,
        across_orders=across_orders,
        failures=failures,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lifelong_monodepth.report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("folder", help="a run or multirun directory (or a folder of them)")
    parser.add_argument(
        "--across-orders",
        action="store_true",
        help="pool the runs of every order too (one row per strategy/setting instead of per order)",
    )
    args = parser.parse_args(argv)
    report = build_report(args.folder, across_orders=args.across_orders)
    written = report.write()
    print(report.markdown())
    print("Wrote " + ", ".join(str(p) for p in written))
    return 0
