"""A stage checkpoint → a ready :class:`LifelongDepthModule` (``mode=test``, tests, notebooks).

Loaded with ``weights_only=True`` (no code runs on load); a foreign file, e.g. an original
Lifelong-MonoDepth ``.pth.tar``, is refused with what to do instead of a ``KeyError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lifelong_monodepth.checkpoint import load_checkpoint_file
from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.training.module import LifelongDepthModule


def load_module(path: str | Path) -> LifelongDepthModule:
    """A stage checkpoint → a ready model, loaded with ``weights_only=True`` (no code runs on load)."""
    path = Path(path)
    checkpoint = load_checkpoint_file(path)  # clear error for a missing, truncated or unsafe file
    _check_own_checkpoint(path, checkpoint)
    module = LifelongDepthModule.load_from_checkpoint(str(path), map_location="cpu", weights_only=True)
    module.eval()
    return module


def _check_own_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """A foreign file (e.g. an original ``NKS.pth.tar``) is refused with what to do, not a KeyError."""
    # Entries every checkpoint of this project has; an original Lifelong-MonoDepth .pth.tar has neither.
    if "pytorch-lightning_version" in checkpoint and "lifelong" in checkpoint:
        return
    from lifelong_monodepth.convert import looks_original

    if looks_original(checkpoint["state_dict"]):
        raise ConfigError(
            f"{path} is not a lifelong-monodepth checkpoint: it is an original Lifelong-MonoDepth "
            "checkpoint. Convert it first: "
            f"python -m lifelong_monodepth.convert {path} --domains <letters in learning order, e.g. NKS> "
            f"--out {path.with_suffix('').with_suffix('.ckpt')}; then mode=test ckpt=<that file>."
        )
    raise ConfigError(
        f"{path} is not a lifelong-monodepth checkpoint (no Lightning version or `lifelong` entry): use a "
        "stage checkpoint written by run.py (outputs/.../checkpoints/NKS.ckpt), or convert an original "
        f"Lifelong-MonoDepth file with `python -m lifelong_monodepth.convert {path} --domains NKS "
        "--out <new>.ckpt`."
    )
