"""Learning-rate schedules that know the length of the stage they run in.

Every stage of a sequence builds a fresh optimiser, and its length depends on the stage
(``stage_schedule.epochs``) and on the domain's size. A schedule that should end at a small
learning rate *at the end of the stage* therefore takes the stage's number of optimiser steps:
:meth:`LifelongDepthModule.configure_optimizers` passes ``total_steps`` to any scheduler factory
that accepts it (and steps it every optimiser step instead of every epoch).

``total_steps`` may be a callable, read at the first step that needs it: the module passes the
Trainer's ``estimated_stepping_batches`` that way, because asking for it inside
``configure_optimizers`` builds the training loader before a resumed run has restored the
loader's position (the resumed stage would then replay its epoch from the start).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def cosine_per_stage(
    optimizer: Optimizer,
    total_steps: int | Callable[[], int],
    min_factor: float = 0.01,
    warmup_steps: int = 0,
) -> LambdaLR:
    """Cosine decay from the stage's learning rate to ``min_factor`` × it over ``total_steps`` steps.

    Why: a stage that ends at its full learning rate leaves the weights wherever the last noisy
    steps put them, so which domain wins the shared encoder in a late stage varies from run to
    run; annealing lets each stage settle. ``warmup_steps`` ramp linearly from ``min_factor``.
    """
    if not 0.0 <= min_factor <= 1.0:
        raise ValueError(f"cosine_per_stage: min_factor={min_factor} must be in [0, 1]")
    if int(warmup_steps) != warmup_steps or warmup_steps < 0:
        raise ValueError(f"cosine_per_stage: warmup_steps={warmup_steps} must be an integer ≥ 0")
    resolved: list[int] = []

    def total() -> int:
        if not resolved:
            steps = total_steps() if callable(total_steps) else total_steps
            if not math.isfinite(steps) or steps < 1:
                raise ValueError(
                    f"cosine_per_stage: total_steps={steps} must be a finite number ≥ 1 "
                    "(set trainer.max_epochs or trainer.max_steps)"
                )
            if warmup_steps >= steps:
                raise ValueError(
                    f"cosine_per_stage: warmup_steps={warmup_steps} must be < total_steps={steps}"
                )
            resolved.append(int(steps))
        return resolved[0]

    if not callable(total_steps):
        total()  # a fixed length is checked at once

    def factor(step: int) -> float:
        if step < warmup_steps:
            return min_factor + (1.0 - min_factor) * step / warmup_steps
        if step == warmup_steps:  # the top of the cosine: no length needed yet
            return 1.0
        span = max(total() - 1 - warmup_steps, 1)
        progress = min((step - warmup_steps) / span, 1.0)
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
