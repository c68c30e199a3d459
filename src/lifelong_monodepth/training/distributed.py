"""Several processes (DDP): start the ranks once per run, and tell rank 0 from the others.

A sequence runs one Trainer per stage. Lightning would start the other ranks at the first
``fit``, by re-running the command, so they would redo everything before it. Here the ranks
start before the sequence (:func:`launch_ranks`, through Lightning's own launcher, which also
points every rank at rank 0's Hydra run directory instead of creating one per rank); every later
Trainer finds them running. Under SLURM (``srun``, the submitit launcher) or ``torchrun`` the
scheduler starts the ranks and nothing is launched here.

What runs where: every rank trains (gradients all-reduced, batches split by the distributed
samplers of ``data/sampling.py``); rank 0 alone fits the selector, evaluates, and writes the run
files and checkpoints (a checkpoint write is collective: every rank takes part, rank 0 writes).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from lifelong_monodepth.data.errors import ConfigError

log = logging.getLogger(__name__)

# Processes this one started; a SIGTERM received here is forwarded to them (checkpointing.py).
CHILD_PIDS: list[int] = []


def global_rank() -> int:
    """This process's rank (0 without DDP), valid before any process group exists."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def is_global_zero() -> bool:
    return global_rank() == 0


def _devices(trainer: Any) -> int:
    devices = trainer.get("devices", 1)
    if isinstance(devices, (list, tuple)) or hasattr(devices, "__len__") and not isinstance(devices, str):
        return len(devices)
    if str(devices) in ("auto", "-1"):
        import torch

        accelerator = str(trainer.get("accelerator", "auto"))
        if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
            return torch.cuda.device_count()
        return 1
    return int(devices)


def launch_ranks(cfg: Any) -> None:
    """``trainer=ddp`` on one node without a scheduler: start ranks 1..N-1 now (re-running the command)."""
    trainer = cfg.get("trainer") or {}
    strategy = str(trainer.get("strategy", "auto"))
    if not strategy.startswith("ddp") or "spawn" in strategy or "fork" in strategy:
        return
    devices, nodes = _devices(trainer), int(trainer.get("num_nodes", 1))
    if devices * nodes <= 1:
        return
    from lightning_fabric.plugins.environments import (
        LightningEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )

    if "LOCAL_RANK" in os.environ or SLURMEnvironment.detect() or TorchElasticEnvironment.detect():
        return  # started by us (a child), by torchrun, or by SLURM: the ranks exist already
    if nodes > 1:
        raise ConfigError(
            f"trainer.num_nodes={nodes} needs a cluster scheduler to start the processes on every node: "
            "run under SLURM (hydra/launcher=submitit_slurm, tasks per node = GPUs per node; "
            "docs/benchmarks.md) "
            "or torchrun."
        )
    from lightning_fabric.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    launcher = _SubprocessScriptLauncher(LightningEnvironment(), num_processes=devices, num_nodes=1)
    log.info("DDP: starting %d more process(es) for ranks 1..%d", devices - 1, devices - 1)
    launcher.launch(lambda: None)
    CHILD_PIDS.extend(process.pid for process in launcher.procs)
