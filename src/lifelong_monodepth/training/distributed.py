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

Stopping (SIGTERM on any rank): every rank reports its flag at the same points (:func:`any_rank_stops`,
after each training step and between stages), so all ranks stop after the same step, rank 0 writes
the one resumable checkpoint, and every rank exits. Lightning's watchdog over the ranks started here
(a rank that dies makes it kill the others) stands down for such a coordinated stop, so the ranks'
non-zero exit codes do not kill rank 0 before it has reported.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from lifelong_monodepth.data.errors import ConfigError

log = logging.getLogger(__name__)

# Processes this one started; a SIGTERM received here is forwarded to them (checkpointing.py).
CHILD_PIDS: list[int] = []
# Set once the ranks have agreed to stop together: their exits are expected, not a crash.
STOPPING = threading.Event()


def global_rank() -> int:
    """This process's rank (0 without DDP), valid before any process group exists."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def is_global_zero() -> bool:
    return global_rank() == 0


def any_rank_stops(flag: bool) -> bool:
    """Whether this rank or any other asked to stop. A collective: every rank calls it at the same point.

    When the answer is yes, :data:`STOPPING` is set on every rank before any rank can return (a
    barrier), so the watchdog of :func:`launch_ranks` never mistakes the ranks' exits for a crash.
    """
    import torch
    import torch.distributed as dist

    several = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    stop = bool(flag)
    if several:
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
        votes = torch.tensor([int(stop)], device=device)
        dist.all_reduce(votes, op=dist.ReduceOp.MAX)
        stop = bool(votes.item())
    if stop and several:
        STOPPING.set()
        dist.barrier()  # no rank returns (and exits) before every rank has set STOPPING
    return stop


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
    from lightning_fabric.utilities.distributed import _set_num_threads_if_needed

    launcher = _SubprocessScriptLauncher(LightningEnvironment(), num_processes=devices, num_nodes=1)
    log.info("DDP: starting %d more process(es) for ranks 1..%d", devices - 1, devices - 1)
    # What ``launcher.launch`` does, with a watchdog that knows about a coordinated stop.
    launcher.cluster_environment.validate_settings(num_devices=devices, num_nodes=1)
    launcher._call_children_scripts()
    _watchdog(launcher.procs)
    _set_num_threads_if_needed(num_processes=devices)
    CHILD_PIDS.extend(process.pid for process in launcher.procs)


def _watchdog(children: list[Any]) -> None:
    """Lightning's observer of the started ranks (one dies: kill them all, rank 0 included, rather
    than hang in a collective), except once the ranks have agreed to stop (:data:`STOPPING`)."""
    from lightning_fabric.strategies.launchers.subprocess_script import _ChildProcessObserver

    class _Observer(_ChildProcessObserver):
        def _run(self) -> bool:
            return STOPPING.is_set() or super()._run()

    _Observer(main_pid=os.getpid(), child_processes=children).start()
