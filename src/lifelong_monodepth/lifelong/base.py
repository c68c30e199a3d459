"""What a lifelong strategy is: a Lightning callback with stage hooks and extra loss terms.

The sequence runner calls ``on_stage_start`` / ``on_stage_end`` around each stage's fit; the
LightningModule calls ``extra_loss`` on every training step and adds (and logs, by name)
what each strategy returns. The training loop itself is never copied.

A strategy that needs other images through the shared encoder (replay) does not encode them
itself: it returns them from ``step_inputs``, the module encodes them together with the current
batch in one pass (``training/fused.py``) and passes their fused features to ``extra_loss`` as
``features`` (same keys). A strategy that returns no inputs gets the three-argument call.
Heads are run through ``module.run_heads``; a strategy that declares its head calls in
``head_inputs`` lets the module run each head once per step on everything asked of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
from torch import Tensor

if TYPE_CHECKING:
    from lifelong_monodepth.data.datamodule import LifelongDataModule
    from lifelong_monodepth.training.module import LifelongDepthModule


@dataclass
class Stage:
    """One stage of a sequence: which domain(s) are learned now and which were learned before."""

    index: int
    name: str
    current: list[str]
    previous: list[str] = field(default_factory=list)

    @property
    def seen(self) -> list[str]:
        return self.previous + [letter for letter in self.current if letter not in self.previous]


class LifelongStrategy(pl.Callback):
    """Base class: weights per old domain, no-op hooks.

    Weight of an old domain's term, most specific first: ``domain_weights[letter]``, then
    ``position_weights[k]`` where k is the position of the domain in the learning order
    (the paper's NKS: ``[10, 100]`` weighs the first-learned domain ×10, the second ×100), then ``weight``.
    """

    def __init__(
        self,
        weight: float = 1.0,
        domain_weights: Mapping[str, float] | None = None,
        position_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.weight = float(weight)
        self.domain_weights = {str(k): float(v) for k, v in (domain_weights or {}).items()}
        self.position_weights = [float(w) for w in position_weights] if position_weights else None
        self.stage: Stage | None = None

    @property
    def required_splits(self) -> tuple[str, ...]:
        """Index splits this strategy reads besides train/val/test: checked to exist before training."""
        return ()

    def weight_for(self, letter: str, learned: Sequence[str]) -> float:
        if letter in self.domain_weights:
            return self.domain_weights[letter]
        if self.position_weights is not None and letter in learned:
            position = list(learned).index(letter)
            if position < len(self.position_weights):
                return self.position_weights[position]
        return self.weight

    def on_stage_start(
        self, stage: Stage, module: LifelongDepthModule, datamodule: LifelongDataModule
    ) -> None:
        self.stage = stage

    def on_stage_end(self, stage: Stage, module: LifelongDepthModule, datamodule: LifelongDataModule) -> None:
        """Called after the stage's fit, before its checkpoint is written."""

    def step_inputs(self, module: LifelongDepthModule, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Image batches (on the module's device) this step needs through the shared encoder, by name."""
        return {}

    def head_inputs(
        self,
        module: LifelongDepthModule,
        batch: Mapping[str, Any],
        fused: Tensor,
        features: Mapping[str, Tensor] | None = None,
    ) -> list[tuple[str, Tensor]]:
        """(head letter, feature map) pairs ``extra_loss`` will run through ``module.run_heads``.

        Declared before any loss is computed, so that a head asked for by several strategies
        runs once on all its maps (``training/fused.py``, :class:`StepHeads`).
        """
        return []

    def extra_loss(
        self,
        module: LifelongDepthModule,
        batch: Mapping[str, Any],
        fused: Tensor,
        features: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Loss terms added to the current-domain loss, keyed by a loggable name.

        ``fused``: the current batch's fused features; ``features``: those of ``step_inputs``.
        """
        return {}
