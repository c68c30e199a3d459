"""Lightning loggers of one stage: CSV curves appended on resume, W&B steps continued across stages."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import CSVLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class _AppendingWriter(ExperimentWriter):
    """Lightning's writer deletes an existing ``metrics.csv``; a resumed stage must keep its curve."""

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if path.is_file():
            with path.open(newline="") as file:
                header = next(csv.reader(file), [])
            # Known columns: new keys then rewrite the header and keep the rows written before the kill.
            self.metrics_keys = sorted(header)


class AppendingCSVLogger(CSVLogger):
    """``csv/<stage>/metrics.csv``, appended to (never overwritten) when a killed stage resumes."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class SequenceWandbLogger(WandbLogger):
    """Lightning's view of the job's W&B run during one stage.

    Every stage has its own Trainer whose ``global_step`` starts at 0: ``step_offset`` (the steps of
    the finished stages) keeps ``trainer/global_step`` increasing over the whole run, resume included.
    ``on_log`` lets the tracker remember W&B's own step so that a resumed run continues after it.
    """

    def __init__(
        self, run: Any, step_offset: int = 0, on_log: Callable[[], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(experiment=run, project=run.project, name=run.name, id=run.id, **kwargs)
        self.step_offset = int(step_offset)
        self._on_log = on_log

    def log_hyperparams(self, params: Any) -> None:
        """The whole resolved Hydra config is already the run's config (flat keys); skip the module's."""

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        super().log_metrics(metrics, None if step is None else step + self.step_offset)
        if self._on_log is not None:
            self._on_log()
