"""Throughput of every run: per stage, training seconds, samples (current + replay), samples/s, evaluation.

Users compare runs (and machines) by it: it is written to ``results/timing.json`` after every stage
(so a resumed run keeps the figures of the stages it loaded) and into ``results/summary.json``
under ``timing``; the end-of-run table prints samples/s per stage.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from lifelong_monodepth.utils.io import write_json


def median_gap(stamps: Sequence[float], skip: int = 0) -> float | None:
    """Median gap between consecutive time stamps after the first ``skip`` gaps (``None``: no gap)."""
    gaps = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)][skip:]
    return statistics.median(gaps) if gaps else None


def _synchronize(module: pl.LightningModule | None = None) -> None:
    """Wait for queued CUDA work, so a clock read measures it (no-op on CPU)."""
    if torch.cuda.is_available() and (module is None or module.device.type == "cuda"):
        torch.cuda.synchronize()


class StageTimer(pl.Callback):
    """Training time (validation inside the fit excluded), steps and samples of one stage's fit.

    Samples are the images that went through the encoder: the current batch plus every replay
    batch (``LifelongDepthModule.step_samples``). Under DDP they are summed over the ranks.
    The median gap between consecutive step ends is the steady-state step time: unlike the mean
    it leaves out the first steps (cuDNN autotuning, worker start-up) and epoch boundaries.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0
        self.validation_seconds = 0.0
        self.steps = 0
        self.samples = 0
        self._start = 0.0
        self._val_start = 0.0
        self._step_ends: list[float] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _synchronize(pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, idx: int
    ) -> None:
        self.steps += 1
        self.samples += int(getattr(pl_module, "step_samples", 0))
        self._step_ends.append(time.perf_counter())

    @property
    def median_step_seconds(self) -> float | None:
        """Median host time between step ends (``None`` under two steps); no device sync added."""
        return median_gap(self._step_ends)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.training or trainer.state.fn == "fit":
            _synchronize(pl_module)
            self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._val_start:
            _synchronize(pl_module)
            self.validation_seconds += time.perf_counter() - self._val_start
            self._val_start = 0.0

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _synchronize(pl_module)
        self.seconds = max(time.perf_counter() - self._start - self.validation_seconds, 0.0)
        if trainer.world_size > 1:
            samples = trainer.strategy.reduce(
                torch.tensor(float(self.samples), device=pl_module.device), reduce_op="sum"
            )
            self.samples = int(round(float(samples)))


class RunTiming:
    """The ``timing`` block: one entry per stage, in the order the stages ran."""

    FILE = "timing.json"

    def __init__(self, results_dir: str | Path) -> None:
        self.path = Path(results_dir) / self.FILE
        self.stages: dict[str, dict[str, Any]] = (
            json.loads(self.path.read_text()) if self.path.is_file() else {}
        )

    def record_training(self, stage: str, timer: StageTimer) -> None:
        entry = self.stages.setdefault(stage, {})
        median = timer.median_step_seconds
        entry.update(
            train_seconds=round(timer.seconds, 4),
            train_steps=timer.steps,
            train_samples=timer.samples,
            samples_per_second=round(timer.samples / timer.seconds, 4) if timer.seconds > 0 else None,
            steps_per_second=round(timer.steps / timer.seconds, 4) if timer.seconds > 0 else None,
            median_step_seconds=None if median is None else round(median, 6),
            validation_seconds=round(timer.validation_seconds, 4),
        )

    @contextlib.contextmanager
    def evaluation(self, stage: str, module: pl.LightningModule | None = None) -> Iterator[None]:
        """Times the stage's evaluation of every domain (the lifelong matrix row)."""
        _synchronize(module)
        start = time.perf_counter()
        yield
        _synchronize(module)
        self.stages.setdefault(stage, {})["eval_seconds"] = round(time.perf_counter() - start, 4)

    def save(self) -> None:
        write_json(self.path, self.stages)

    def add_to_summary(self, summary: dict[str, Any], summary_path: str | Path) -> None:
        summary["timing"] = self.stages
        write_json(summary_path, summary)

    def print(self) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="Throughput per stage (samples = current + replay images through the encoder)")
        columns = ("stage", "train s", "steps", "steps/s", "median step ms", "samples", "samples/s", "eval s")
        for column in columns:
            table.add_column(column)
        for stage, entry in self.stages.items():
            rate = entry.get("samples_per_second")
            median = entry.get("median_step_seconds")
            table.add_row(
                stage,
                _fmt(entry.get("train_seconds")),
                str(entry.get("train_steps", "—")),
                _fmt(entry.get("steps_per_second")),
                "—" if median is None else f"{1000 * median:.1f}",
                str(entry.get("train_samples", "—")),
                _fmt(rate),
                _fmt(entry.get("eval_seconds")),
            )
        Console().print(table)


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)
