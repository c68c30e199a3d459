"""Per-stage epochs and learning rates (``stage_schedule``): a later domain may need more training.

``stage_schedule.epochs: [6, 6, 10]`` replaces ``trainer.max_epochs`` stage by stage (position in the
order: the third domain learned gets 10 epochs); ``stage_schedule.lr_factors: [1, 1, 0.5]``
multiplies the optimiser's learning rate in that stage (the scheduler then decays from there).
``null`` leaves every stage at ``trainer.max_epochs`` and ``model.optimizer.lr``. A list must have
one entry per stage: a joint run has one stage.

``stage_schedule.epochs_from_stage: {3: 10}`` sets the epochs from a stage number on (1-based, until
the next key), whatever the order's length: the third and every later stage get 10 epochs, a two-stage
order and a joint run are untouched. An ``epochs`` list, when given, takes precedence.
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


def _from_stage(node: Mapping[str, Any]) -> dict[int, int] | None:
    value = node.get("epochs_from_stage")
    if value is None:
        return None
    name = "stage_schedule.epochs_from_stage"
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}={value!r}: must map a stage number to epochs, e.g. {{3: 10}}, or null")
    out: dict[int, int] = {}
    for key, epochs in value.items():
        try:
            stage = int(key)
        except (TypeError, ValueError):
            stage = 0
        if isinstance(key, bool) or stage < 1 or str(stage) != str(key).strip():
            raise ConfigError(f"{name}: key {key!r} must be a stage number ≥ 1 (the first stage is 1)")
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
            raise ConfigError(f"{name}[{stage}]={epochs!r}: epochs must be an integer ≥ 1")
        out[stage] = int(epochs)
    return out or None


KEYS = ("epochs", "epochs_from_stage", "lr_factors")


@dataclass(frozen=True)
class StageSchedule:
    epochs: list[int] | None = None
    lr_factors: list[float] | None = None
    epochs_from_stage: dict[int, int] | None = None

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None, stages: int) -> StageSchedule:
        """Validated schedule for a run of ``stages`` stages; unknown keys are reported."""
        node = dict(node or {})
        unknown = sorted(set(node) - set(KEYS))
        if unknown:
            raise ConfigError(f"stage_schedule: unknown key(s) {unknown}; known: {', '.join(KEYS)}")
        return cls(
            _entries(node, "epochs", stages, True),
            _entries(node, "lr_factors", stages, False),
            _from_stage(node),
        )

    def epochs_for(self, index: int) -> int | None:
        """The stage's epochs (``index`` from 0), or ``None`` for ``trainer.max_epochs``."""
        if self.epochs is not None:
            return self.epochs[index]
        starts = [stage for stage in self.epochs_from_stage or {} if stage <= index + 1]
        return self.epochs_from_stage[max(starts)] if starts else None

    def trainer_overrides(self, index: int) -> dict[str, Any]:
        """Keyword arguments for the stage's Trainer (``max_epochs`` when scheduled)."""
        epochs = self.epochs_for(index)
        return {} if epochs is None else {"max_epochs": epochs}

    def lr_factor(self, index: int) -> float:
        return 1.0 if self.lr_factors is None else self.lr_factors[index]
