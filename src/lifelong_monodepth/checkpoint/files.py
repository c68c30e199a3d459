"""Safe loading and atomic writing of checkpoint files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.utils.io import atomic_write


def save_atomic(obj: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` to a temporary file, then rename: a kill never leaves a half-written file."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


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
