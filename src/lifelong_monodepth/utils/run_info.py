"""What produced a run: resolved config, package and library versions, git commit."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lifelong_monodepth.utils.io import write_json, write_text

KEY_PACKAGES = (
    "lifelong-monodepth",
    "torch",
    "torchvision",
    "timm",
    "pytorch-lightning",
    "torchmetrics",
    "hydra-core",
    "omegaconf",
    "albumentations",
    "opencv-python-headless",
    "numpy",
    "wandb",
)


def git_commit(directory: str | Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_run_info(output_dir: str | Path, cfg: DictConfig) -> dict[str, Any]:
    output_dir = Path(output_dir)
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "git_commit": git_commit(cfg.paths.root_dir),
    }
    write_json(output_dir / "run_info.json", info)
    write_text(output_dir / "resolved_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    return info


def command_line_overrides() -> dict[str, str | None]:
    """``{key: value}`` of what the command line (or a sweep) changed, from Hydra's ``overrides.task``.

    Recorded in ``summary.json`` so a report can tell apart the runs of a seed or weight sweep.
    Empty outside a Hydra run (e.g. the compose API in tests). ``~key`` deletions map to None.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not HydraConfig.initialized():
        return {}
    task = list(HydraConfig.get().overrides.task)
    parsed = OverridesParser.create().parse_overrides(task)
    result: dict[str, str | None] = {}
    for override in parsed:
        key = override.key_or_group + (f"@{override.package}" if override.package else "")
        # The value as typed (`false`, not Python's `False`); keys never contain "=".
        value = override.input_line.split("=", 1)[1] if "=" in override.input_line else None
        result[key] = None if override.is_delete() else value
    return result


def run_metadata(cfg: DictConfig) -> dict[str, Any]:
    """What tells this run apart from the others of its sweep: the seed and every override."""
    return {"seed": int(cfg.seed), "overrides": command_line_overrides()}
