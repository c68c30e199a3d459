"""Hydra entrypoint: ``mode=train`` runs a lifelong sequence, ``mode=test`` evaluates a checkpoint."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from lifelong_monodepth.data.errors import LifelongDepthError

log = logging.getLogger("lifelong_monodepth")


def _first(value: Any, fallback: Any) -> Any:
    """``${lmd_first:a,b}``: ``a`` unless it is null/empty (used for resume=<run dir>)."""
    return fallback if value in (None, "", "None", "null") else value


def register_resolvers() -> None:
    from lifelong_monodepth.cli.help import domains_help, orders_help
    from lifelong_monodepth.training.devices import best_gpu_precision

    for name, function in (
        ("lmd_first", _first),
        ("lmd_help_domains", domains_help),
        ("lmd_help_orders", orders_help),
        ("lmd_precision", best_gpu_precision),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


def config_dir() -> str:
    return str(Path(os.environ.get("LMD_ROOT", os.getcwd())).resolve() / "configs")


def execute(cfg: DictConfig) -> dict[str, Any]:
    """Run what ``cfg.mode`` asks for; returns the summary (also usable by Hydra sweepers)."""
    output_dir = Path(cfg.paths.output_dir)
    if cfg.mode == "train":
        from lifelong_monodepth.training.distributed import is_global_zero
        from lifelong_monodepth.training.sequence import run_sequence

        result = run_sequence(cfg)
        if not is_global_zero():  # DDP: rank 0 reports
            return {}
        result.table.print()
        if result.timing is not None:
            result.timing.print()
        log.info("Checkpoints: %s", ", ".join(str(p) for p in result.checkpoints.values()))
        log.info("Results: %s", output_dir / "results")
        return result.table.summary
    if cfg.mode == "test":
        from lifelong_monodepth.cli.test_mode import test_checkpoint

        return test_checkpoint(cfg)
    raise LifelongDepthError(f"Unknown mode={cfg.mode!r}: use mode=train or mode=test.")


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _set_threads(cfg: DictConfig) -> None:
    """``threads=N``: torch threads of this job (parallel jobs on one machine share its cores)."""
    if cfg.get("threads"):
        import torch

        torch.set_num_threads(int(cfg.threads))


def _task(cfg: DictConfig) -> float | None:
    """One job. In a multirun a failure is recorded in the job's directory and the sweep goes on."""
    from lifelong_monodepth.cli.failures import clear_failure, record_failure, remove_rejected_run_dir
    from lifelong_monodepth.cli.validate import validate_config
    from lifelong_monodepth.training.checkpointing import PreemptedError

    output_dir = Path(cfg.paths.output_dir)
    multirun = _in_multirun()
    try:
        validate_config(cfg)
        _set_threads(cfg)
        summary = execute(cfg)
    except LifelongDepthError as err:
        log.error("%s", err)
        if multirun:
            record_failure(output_dir, err)
            return None
        remove_rejected_run_dir(output_dir, cfg.paths.log_dir)
        sys.exit(2)
    except PreemptedError as err:
        log.warning("%s", err)
        if multirun:
            record_failure(output_dir, err, status="preempted")
            return None
        sys.exit(143)  # 128 + SIGTERM: what schedulers expect from a job stopped by SIGTERM
    except Exception as err:
        record_failure(output_dir, err, expected=False)
        if not multirun:
            raise
        log.exception("Job failed (the sweep goes on; details in %s)", output_dir / "error.txt")
        return None
    clear_failure(output_dir)
    rmse = (summary or {}).get("average", {}).get("prior", {}).get("rmse")
    return float(rmse) if rmse is not None else None


def main() -> None:
    from lifelong_monodepth.utils.notices import silence_known_notices

    os.environ.setdefault("LMD_ROOT", os.getcwd())
    silence_known_notices()
    register_resolvers()
    hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")(_task)()


if __name__ == "__main__":
    main()
