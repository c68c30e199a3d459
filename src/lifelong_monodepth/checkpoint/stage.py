"""The slim stage checkpoint (for inference) and the resumable training state (for resume).

``checkpoints/<stage>.ckpt`` holds what inference needs and nothing else: the network's
weights, the network config to rebuild it, the learned domains (letter, name, depth range,
input size, depth scale, evaluation crop), the selector's fitted state, the stage's place in
the sequence and, once evaluated, its results. No optimizer, no scheduler, no loop counters,
no teacher, no replay memory: it loads with ``torch.load(weights_only=True)`` on a machine
that has neither the training configs nor the data.

What a resumed run needs besides the weights (replay memory rows, EWC Fisher and anchors, the
distillation state) is the **training state**, written beside the stage's mid-stage
``last.ckpt`` in ``checkpoints/resume/<stage>/training_state.ckpt`` and removed when the run
finishes cleanly (``checkpoint.keep_training_state=true`` keeps it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from lifelong_monodepth.checkpoint.files import load_checkpoint_file, save_atomic
from lifelong_monodepth.data.errors import ConfigError

STAGE_FORMAT = "lifelong-monodepth/stage"
TRAINING_STATE_FORMAT = "lifelong-monodepth/training-state"
FORMAT_VERSION = 1
TRAINING_STATE_FILE = "training_state.ckpt"


def _cpu(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value.detach().cpu() for key, value in state_dict.items()}


def stage_checkpoint(
    *,
    state_dict: Mapping[str, torch.Tensor],
    hyper_parameters: Mapping[str, Any],
    lifelong: Mapping[str, Any],
    stage: Mapping[str, Any],
    results: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The slim checkpoint as a plain dict (tensors, numbers, strings, containers only).

    ``state_dict`` uses the LightningModule's keys (``net.…``) and ``hyper_parameters`` its
    constructor arguments, so ``LifelongDepthModule.load_from_checkpoint`` reads it too.
    """
    from lifelong_monodepth import __version__

    return {
        "format": STAGE_FORMAT,
        "format_version": FORMAT_VERSION,
        "state_dict": _cpu(state_dict),
        "hyper_parameters": dict(hyper_parameters),
        "lifelong": dict(lifelong),
        "stage": dict(stage),
        "results": dict(results or {}),
        "versions": {"lifelong_monodepth": __version__, "torch": str(torch.__version__)},
        **dict(extra or {}),
    }


def write_stage_checkpoint(path: str | Path, checkpoint: Mapping[str, Any]) -> Path:
    return save_atomic(dict(checkpoint), path)


def attach_results(path: str | Path, results: Mapping[str, Any]) -> Path:
    """Store a stage's evaluation in its checkpoint (rewritten atomically): the file says how good it is."""
    checkpoint = load_checkpoint_file(path)
    checkpoint["results"] = dict(results)
    return save_atomic(checkpoint, path)


def results_from_rows(rows: Iterable[Mapping[str, Any]], stage: str) -> dict[str, Any]:
    """Long-format rows (``stage,domain,mode,metric,value``) of one stage → ``{domain: {mode: {…}}}``."""
    results: dict[str, Any] = {}
    for row in rows:
        if row["stage"] != stage:
            continue
        value = float(row["value"])
        results.setdefault(str(row["domain"]), {}).setdefault(str(row["mode"]), {})[str(row["metric"])] = (
            value if math.isfinite(value) else None
        )
    return results


# ------------------------------------------------------------------------------ training state
def training_state_path(resume_dir: str | Path, stage: str) -> Path:
    """``checkpoints/resume/<stage>/training_state.ckpt``."""
    return Path(resume_dir) / stage / TRAINING_STATE_FILE


def write_training_state(path: str | Path, strategies: Mapping[str, Any], stage: str) -> Path:
    """The strategies' state at the end of a stage (keyed by their Lightning ``state_key``)."""
    return save_atomic(
        {
            "format": TRAINING_STATE_FORMAT,
            "format_version": FORMAT_VERSION,
            "stage": stage,
            "strategies": dict(strategies),
        },
        path,
    )


def load_training_state(path: str | Path) -> dict[str, Any] | None:
    """The strategies' state of a finished stage, or ``None`` when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(
            f"Cannot load training state {path}: {type(err).__name__}: {err}. The file is truncated or "
            "corrupt; delete it (the run then resumes with empty replay/EWC state for that stage)."
        ) from err
    if not isinstance(state, dict) or state.get("format") != TRAINING_STATE_FORMAT:
        raise ConfigError(f"{path} is not a lifelong-monodepth training state file.")
    return dict(state["strategies"])
