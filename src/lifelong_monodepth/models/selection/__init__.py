"""Choosing a predictor for an image of unknown domain ("inference without a domain prior").

Every selector compares **resolution-independent** descriptors of the fused feature map
(:mod:`.features`), so a state fitted at one input size routes images of any other size. The
state is fitted on each stage's end (:mod:`.fitting`) and routing happens in :mod:`.selector`.
"""

from lifelong_monodepth.models.selection.features import (
    DESCRIPTORS,
    channel_statistics,
    collect_descriptors,
    describe,
    pooled_features,
)
from lifelong_monodepth.models.selection.fitting import (
    SelectorOptions,
    calibrate_thresholds,
    fit_gaussian,
    fit_selector,
    fit_selector_state,
    mahalanobis,
)
from lifelong_monodepth.models.selection.selector import SELECTORS, DomainSelector, Routing

__all__ = [
    "DESCRIPTORS",
    "SELECTORS",
    "DomainSelector",
    "Routing",
    "SelectorOptions",
    "calibrate_thresholds",
    "channel_statistics",
    "collect_descriptors",
    "describe",
    "fit_gaussian",
    "fit_selector",
    "fit_selector_state",
    "mahalanobis",
    "pooled_features",
]
