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
    if not OmegaConf.has_resolver("lmd_first"):
        OmegaConf.register_new_resolver("lmd_first", _first)
    if not OmegaConf.has_resolver("lmd_precision"):
        from lifelong_monodepth.training.devices import best_gpu_precision

        OmegaConf.register_new_resolver("lmd_precision", best_gpu_precision)


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
        from lifelong_monodepth.evaluation.test_checkpoint import test_checkpoint

        return test_checkpoint(cfg)
    raise LifelongDepthError(f"Unknown mode={cfg.mode!r}: use mode=train or mode=test.")


def _task(cfg: DictConfig) -> float | None:
    from lifelong_monodepth.training.checkpointing import PreemptedError

    try:
        summary = execute(cfg)
    except LifelongDepthError as err:
        log.error("%s", err)
        sys.exit(2)
    except PreemptedError as err:
        log.warning("%s", err)
        sys.exit(143)  # 128 + SIGTERM: what schedulers expect from a job stopped by SIGTERM
    rmse = (summary or {}).get("average", {}).get("prior", {}).get("rmse")
    return float(rmse) if rmse is not None else None


def main() -> None:
    os.environ.setdefault("LMD_ROOT", os.getcwd())
    register_resolvers()
    hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")(_task)()


if __name__ == "__main__":
    main()
