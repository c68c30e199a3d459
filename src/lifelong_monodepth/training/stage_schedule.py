"""Per-stage epochs and learning rates (``stage_schedule``): a later domain may need more training.

``stage_schedule.epochs: [6, 6, 10]`` replaces ``trainer.max_epochs`` stage by stage (position in the
order: the third domain learned gets 10 epochs); ``stage_schedule.lr_factors: [1, 1, 0.5]``
multiplies the optimiser's learning rate in that stage (the scheduler then decays from there).
``null`` (the default) leaves every stage at ``trainer.max_epochs`` and ``model.optimizer.lr``.
A list must have one entry per stage: a joint run has one stage.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lifelong_monodepth.data.errors import ConfigError


def _entries(node: Mapping[str, Any], key: str, stages: int, integer: bool) -> list[Any] | None:
    value = node.get(key)
    if value is None:
        return None
    name = f"stage_schedule.{key}"
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise ConfigError(
            f"{name}={value!r}: must be a list with one entry per stage, e.g. [6, 6, 10], or null"
        )
    values = list(value)
    if len(values) != stages:
        raise ConfigError(
            f"{name}={values}: has {len(values)} entries but the run has {stages} stage(s); give one per "
            "stage of the order (a joint run has one), or null."
        )
    for i, entry in enumerate(values):
        if isinstance(entry, bool) or not isinstance(entry, numbers.Real):
            raise ConfigError(f"{name}[{i}]={entry!r}: must be a number")
        if integer and (not isinstance(entry, numbers.Integral) or entry < 1):
            raise ConfigError(f"{name}[{i}]={entry!r}: epochs must be an integer ≥ 1")
        if not integer and not entry > 0:
            raise ConfigError(f"{name}[{i}]={entry!r}: a learning-rate factor must be > 0")
    return [int(v) if integer else float(v) for v in values]


@dataclass(frozen=True)
class StageSchedule:
    epochs: list[int] | None = None
    lr_factors: list[float] | None = None

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None, stages: int) -> StageSchedule:
        """Validated schedule for a run of ``stages`` stages; unknown keys are reported."""
        node = dict(node or {})
        unknown = sorted(set(node) - {"epochs", "lr_factors"})
        if unknown:
            raise ConfigError(f"stage_schedule: unknown key(s) {unknown}; known: epochs, lr_factors")
        return cls(_entries(node, "epochs", stages, True), _entries(node, "lr_factors", stages, False))

    def trainer_overrides(self, index: int) -> dict[str, Any]:
        """Keyword arguments for the stage's Trainer (``max_epochs`` when scheduled)."""
        return {} if self.epochs is None else {"max_epochs": self.epochs[index]}

    def lr_factor(self, index: int) -> float:
        return 1.0 if self.lr_factors is None else self.lr_factors[index]
