"""Hydra callbacks (``hydra.callbacks`` in ``configs/hydra/default.yaml``).

- :class:`ValidateConfig` checks a single run's config *before* Hydra creates the run directory,
  so a rejected config leaves nothing behind (multirun jobs are checked in the task instead, where
  the failure is recorded in the job's directory and the sweep goes on).
- :class:`SweepStatus` runs when a multirun ends: writes ``sweep_status.json``, the report of the
  finished runs, lists the failed jobs and exits non-zero when there are any.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lifelong_monodepth.data.errors import LifelongDepthError

log = logging.getLogger("lifelong_monodepth")


class ValidateConfig(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from lifelong_monodepth.cli.validate import validate_config

        try:
            validate_config(config)
        except LifelongDepthError as err:
            print(err, file=sys.stderr)
            sys.exit(2)


class SweepStatus(Callback):
    def __init__(self, report: bool = True) -> None:
        self.report = report

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from lifelong_monodepth.cli.failures import sweep_status, write_sweep_status

        sweep_dir = Path(config.hydra.sweep.dir)
        statuses = sweep_status(sweep_dir)
        write_sweep_status(sweep_dir, statuses)
        finished = [s for s in statuses if s.status == "ok"]
        if self.report and finished:
            self._write_report(sweep_dir)
        failed = [s for s in statuses if s.status != "ok"]
        if failed:
            lines = "\n".join(f"  {s.line()}" for s in failed)
            print(f"{len(failed)} of {len(statuses)} job(s) did not finish:\n{lines}", file=sys.stderr)
            sys.exit(1)
        print(f"All {len(statuses)} job(s) finished: {sweep_dir}", file=sys.stderr)

    @staticmethod
    def _write_report(sweep_dir: Path) -> None:
        from lifelong_monodepth.report import build_report

        try:
            build_report(sweep_dir).write()
        except Exception as err:  # the sweep's own outcome matters more than its report
            log.warning(
                "Could not write the sweep report (%s); run python -m lifelong_monodepth.report %s",
                err,
                sweep_dir,
            )
        else:
            print(f"Sweep report: {sweep_dir / 'report.md'}", file=sys.stderr)
