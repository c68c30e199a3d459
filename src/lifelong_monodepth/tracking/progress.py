"""A progress bar that says where in the sequence a run is: ``stage 2/3 K (synthetic_k) · Epoch 1/5``."""

from __future__ import annotations

from typing import Any

from pytorch_lightning.callbacks import RichProgressBar


def stage_label(trainer: Any) -> str:
    """``stage k/N <letters> (<domain names>)`` from the module's current and learned domains."""
    module = trainer.lightning_module
    current = list(getattr(module, "current", []))
    if not current:
        return ""
    datamodule = getattr(trainer, "datamodule", None)
    total = len(getattr(datamodule, "domains", current))
    if len(current) > 1:  # joint training: every domain in one stage
        index, total = 1, 1
    else:
        index = len([letter for letter in module.learned if letter not in current]) + 1
    names = ", ".join(module.domain_info.get(letter, {}).get("name", letter) for letter in current)
    return f"stage {index}/{total} {''.join(current)} ({names})"


class StageProgressBar(RichProgressBar):
    """Rich progress bar with the stage and domain instead of the logger's version (``v_num: pz_N``)."""

    def _get_train_description(self, current_epoch: int) -> str:
        label = stage_label(self.trainer)
        description = super()._get_train_description(current_epoch).strip()
        return f"{label} · {description}" if label else description

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items
