"""The one place where known-harmless library notices are silenced (for the command line).

Each run has one Trainer per stage, so a notice a library prints once per Trainer is repeated
for every stage and buries the lines that matter (stage, metrics, where results went):

* Lightning's promotional tips (``💡 Tip: ... litlogger / litmodels``): advertisements, not advice
  about this run.
* torch's ``FutureWarning`` that ``isinstance(treespec, LeafSpec)`` is deprecated: raised inside
  Lightning's own ``_pytree`` helper (fixed upstream by Lightning, nothing a user can change).

Everything else (including other warnings from the same libraries) is left untouched.
"""

from __future__ import annotations

import logging
import warnings

PROMOTIONAL_PREFIX = "💡 Tip:"


class _DropPromotionalTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(PROMOTIONAL_PREFIX)


def silence_known_notices() -> None:
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropPromotionalTips) for f in logger.filters):
            logger.addFilter(_DropPromotionalTips())
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )
