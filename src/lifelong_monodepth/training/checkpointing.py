"""Checkpoints that a killed job can resume from, written atomically."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.utils.io import atomic_write

log = logging.getLogger(__name__)


def save_checkpoint_atomic(trainer: pl.Trainer, path: str | Path) -> Path:
    """``trainer.save_checkpoint`` to a temporary file, then rename: never a half-written file."""
    return atomic_write(path, lambda tmp: trainer.save_checkpoint(tmp))


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``: tensors and plain containers only).

    A truncated or foreign file is rejected with a message naming it, never half-loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Checkpoint not found: {path}.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt zip/pickle data
        raise ConfigError(
            f"Cannot load checkpoint {path}: {type(err).__name__}: {err}. The file is truncated, corrupt "
            "or holds objects other than tensors and plain containers (refused for safety). "
            "Delete it to fall back to the previous checkpoint."
        ) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"{path} is not a lifelong-monodepth checkpoint (no state_dict).")
    return checkpoint


class ResumeCheckpoint(pl.Callback):
    """Writes ``<run>/checkpoints/resume/<stage>/last.ckpt`` every N steps, at epoch ends and on SIGTERM.

    SIGTERM is what SLURM (and most schedulers) send before preemption: the handler only sets
    a flag; the checkpoint is written at the end of the current step and training stops.
    """

    def __init__(self, path: str | Path, every_n_steps: int = 0) -> None:
        super().__init__()
        self.path = Path(path)
        self.every_n_steps = int(every_n_steps)
        self.sigterm_received = False
        self._previous_handler: Any = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        try:
            self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not in the main thread
            self._previous_handler = None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        log.warning("SIGTERM received: saving a checkpoint after this step, then stopping.")
        self.sigterm_received = True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _set_consumed(trainer, 0)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        _set_consumed(trainer, batch_idx + 1)
        step = trainer.global_step
        if self.sigterm_received:
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
