"""Head warm-up (``model.head_warmup_steps``): a new domain's head first learns on a frozen encoder.

At the start of every stage after the first, a fresh head sits on a shared encoder that already
serves the old domains. Its first gradients are large and random; passed through the encoder they
move the shared features before the head knows what it wants from them. For the first
``head_warmup_steps`` optimiser steps of such a stage only the new head trains (and the fusion
block too with ``model.head_warmup_fusion=true``): the frozen part runs without gradients (Adam
then skips its parameters, weight decay included) and with its BatchNorm in eval mode (its running
statistics stay put). Then everything is unfrozen.

Replay and distillation are skipped during the warm-up: the encoder does not move, so there is
nothing for them to protect (the old heads do not train either). With ``head_warmup_fusion=true``
the shared fusion does move, unprotected, for those steps. The count is Lightning's
``global_step`` of the stage's Trainer, so a resumed stage continues the warm-up where it stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from lifelong_monodepth.training.module import LifelongDepthModule


def validate_warmup(steps: int) -> int:
    if int(steps) < 0:
        raise ValueError(f"model.head_warmup_steps must be >= 0 (0 turns the warm-up off), got {steps}")
    return int(steps)


def warmup_active(module: LifelongDepthModule) -> bool:
    """True during the first ``head_warmup_steps`` steps of a stage that follows learned domains."""
    steps = int(module.hparams.get("head_warmup_steps", 0) or 0)
    if steps <= 0 or module._trainer is None:
        return False
    if not any(letter not in module.current for letter in module.learned):
        return False  # the first stage (or joint training): nothing shared to protect yet
    return module.trainer.global_step < steps


def frozen_mode(module: LifelongDepthModule) -> str:
    """What the step runs without gradients: ``none``, ``encoder`` or ``all`` (encoder and fusion)."""
    if not warmup_active(module):
        return "none"
    return "encoder" if module.hparams.get("head_warmup_fusion", False) else "all"


def frozen_parts(module: LifelongDepthModule) -> list[nn.Module]:
    """The shared parts whose BatchNorm statistics stay fixed during the warm-up."""
    mode = frozen_mode(module)
    if mode == "none":
        return []
    return [module.net.encoder] if mode == "encoder" else [module.net.encoder, module.net.fusion]
