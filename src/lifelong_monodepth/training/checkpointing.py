"""Checkpoints that a killed job can resume from, written atomically (file formats: ``checkpoint/``)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from lifelong_monodepth.checkpoint import (
    load_checkpoint_file,
    stage_checkpoint,
    write_stage_checkpoint,
    write_training_state,
)
from lifelong_monodepth.training.distributed import any_rank_stops
from lifelong_monodepth.utils.io import atomic_write

log = logging.getLogger(__name__)
__all__ = [
    "PreemptedError",
    "PreemptionGuard",
    "ResumeCheckpoint",
    "load_checkpoint_file",
    "remove_training_state",
    "save_checkpoint_atomic",
    "write_stage_files",
]


def save_checkpoint_atomic(trainer: pl.Trainer, path: str | Path) -> Path:
    """``trainer.save_checkpoint`` to a temporary file, then rename: never a half-written file.

    Under DDP the call is collective (every rank gathers its callbacks' state and waits at a
    barrier) and rank 0 alone writes and renames.
    """
    if trainer.is_global_zero:
        return atomic_write(path, lambda tmp: trainer.save_checkpoint(tmp, weights_only=False))
    trainer.save_checkpoint(path, weights_only=False)  # rank > 0: takes part, writes nothing
    return Path(path)


def write_stage_files(
    module: pl.LightningModule,
    strategies: Sequence[pl.Callback],
    stage_path: str | Path,
    state_path: str | Path,
    stage_info: Mapping[str, Any],
) -> Path:
    """End of a stage: the strategies' training state, then the slim stage checkpoint.

    The slim file is written last: its presence is what marks the stage as finished.
    """
    write_training_state(state_path, {s.state_key: s.state_dict() for s in strategies}, stage_info["name"])
    holder: dict[str, Any] = {}
    module.on_save_checkpoint(holder)
    checkpoint = stage_checkpoint(
        state_dict=module.state_dict(),
        hyper_parameters=dict(module.hparams),
        lifelong=holder["lifelong"],
        stage=stage_info,
        # Lets ``LifelongDepthModule.load_from_checkpoint`` read the slim file as well.
        extra={"pytorch-lightning_version": str(pl.__version__)},
    )
    return write_stage_checkpoint(stage_path, checkpoint)


def remove_training_state(resume_dir: str | Path) -> None:
    """A run that finished cleanly no longer needs its resumable state (``keep_training_state`` keeps it)."""
    resume_dir = Path(resume_dir)
    if resume_dir.is_dir():
        shutil.rmtree(resume_dir)
        log.info("Run finished: removed the resumable training state %s", resume_dir)


class PreemptionGuard:
    """Catches SIGTERM for the whole run: training, evaluation and the gaps between stages.

    SIGTERM is what SLURM (and most schedulers) send before preemption. The handler only sets a
    flag: inside a stage the checkpoint callback saves at the end of the current step and stops;
    between stages the runner stops once the finished stage's checkpoint is on disk.
    """

    def __init__(self) -> None:
        self.received = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> PreemptionGuard:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
            self._installed = True
        except ValueError:  # not in the main thread: leave signals to whoever owns them
            self._installed = False
        return self

    def reclaim(self) -> None:
        """Take SIGTERM back from Lightning, which installs its own handler when a fit starts.

        Lightning 2.6's handler starts a collective inside the handler (a broadcast from the rank that
        was signalled, alone), which desynchronises the ranks' collectives and hangs DDP when one rank
        only is signalled, and its per-step check listens to rank 0's flag only. This guard's flag,
        reported by every rank after every step (:func:`~.distributed.any_rank_stops`), does neither.
        Lightning's teardown puts this handler back as it found it.
        """
        if self._installed:
            with contextlib.suppress(ValueError):  # not in the main thread
                signal.signal(signal.SIGTERM, self._on_sigterm)

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        log.warning("SIGTERM received: saving a checkpoint as soon as possible, then stopping.")
        self.received = True
        from lifelong_monodepth.training.distributed import CHILD_PIDS

        for pid in CHILD_PIDS:  # DDP ranks this process started stop with it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


class ResumeCheckpoint(pl.Callback):
    """Writes ``<run>/checkpoints/resume/<stage>/last.ckpt`` every N steps, at epoch ends and on SIGTERM.

    A SIGTERM flagged by the run's :class:`PreemptionGuard` makes it write the checkpoint at the end of
    the current step and stop training with :class:`PreemptedError`.
    """

    def __init__(
        self, path: str | Path, every_n_steps: int = 0, guard: PreemptionGuard | None = None
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.every_n_steps = int(every_n_steps)
        self.guard = guard
        self._own_guard: PreemptionGuard | None = None

    @property
    def sigterm_received(self) -> bool:
        return self.guard is not None and self.guard.received

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.guard is None:  # used on its own, outside a SequenceRunner
            self._own_guard = self.guard = PreemptionGuard().__enter__()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.guard.reclaim()  # after Lightning has installed its SIGTERM handler for this fit

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._own_guard is not None:
            self._own_guard.__exit__()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _set_consumed(trainer, 0)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        _set_consumed(trainer, batch_idx + 1)
        step = trainer.global_step
        # Every rank, every step: a SIGTERM on any rank stops every rank after the same step.
        if any_rank_stops(self.sigterm_received):
            save_checkpoint_atomic(trainer, self.path)
            raise PreemptedError(
                f"Stopped by SIGTERM at step {step} with a checkpoint in {self.path}; continue with the same "
                f"command plus resume={self.path.parents[3]}"
            )
        if self.every_n_steps > 0 and step > 0 and step % self.every_n_steps == 0:
            save_checkpoint_atomic(trainer, self.path)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        save_checkpoint_atomic(trainer, self.path)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """A diverged run keeps its state for inspection (the last good ``last.ckpt`` stays as it was)."""
        from lifelong_monodepth.training.module import NonFiniteLossError

        if isinstance(exception, NonFiniteLossError):
            path = self.path.with_name("diverged.ckpt")
            save_checkpoint_atomic(trainer, path)
            log.error("Training diverged; its state is in %s. Resume continues from %s.", path, self.path)


def _set_consumed(trainer: pl.Trainer, batches: int) -> None:
    loader = trainer.train_dataloader
    if hasattr(loader, "consumed"):
        loader.consumed = batches


class PreemptedError(RuntimeError):
    """The job was asked to stop (SIGTERM); a resumable checkpoint has been written."""
