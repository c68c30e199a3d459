"""Logger factories: W&B offline unless the user is logged in; one run spans all stages."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import WandbLogger


def wandb_mode(requested: str = "auto") -> str:
    """``auto`` → ``WANDB_MODE`` if set, ``online`` with an API key or ``wandb login``, else ``offline``."""
    if requested != "auto":
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        netrc_path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
        if netrc_path.is_file() and netrc.netrc(str(netrc_path)).authenticators("api.wandb.ai"):
            return "online"
    except (netrc.NetrcParseError, OSError):
        pass
    return "offline"


class SequenceWandbLogger(WandbLogger):
    """A WandbLogger whose steps keep increasing across stages (each stage has its own Trainer)."""

    step_offset: int = 0

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        super().log_metrics(metrics, None if step is None else step + self.step_offset)


def make_wandb_logger(
    project: str, name: str, save_dir: str, mode: str = "auto", **kwargs: Any
) -> WandbLogger:
    mode = wandb_mode(mode)
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return SequenceWandbLogger(
        project=project, name=name, save_dir=save_dir, offline=mode == "offline", mode=mode, **kwargs
    )
