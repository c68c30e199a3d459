"""Choosing a predictor for an image of unknown domain ("inference without a domain prior").

Every selector compares **resolution-independent** descriptors of the fused feature map and/or
the encoder's levels (:mod:`.features`), so a state fitted at one input size routes images of any
other size. The state is fitted on each stage's end (:mod:`.fitting`) and routing happens in :mod:`.selector`.
"""

from lifelong_monodepth.models.selection.features import (
    DESCRIPTORS,
    FUSED,
    channel_statistics,
    check_levels,
    collect_descriptors,
    describe,
    needs_encoder_levels,
    pooled_features,
)
from lifelong_monodepth.models.selection.fitting import (
    SelectorOptions,
    calibrate_thresholds,
    cross_fitted_distances,
    fit_gaussian,
    fit_selector,
    fit_selector_state,
    fit_state_from_descriptors,
    mahalanobis,
)
from lifelong_monodepth.models.selection.selector import SELECTORS, DomainSelector, Routing

__all__ = [
    "DESCRIPTORS",
    "FUSED",
    "SELECTORS",
    "DomainSelector",
    "Routing",
    "SelectorOptions",
    "calibrate_thresholds",
    "channel_statistics",
    "check_levels",
    "collect_descriptors",
    "cross_fitted_distances",
    "describe",
    "fit_gaussian",
    "fit_selector",
    "fit_selector_state",
    "fit_state_from_descriptors",
    "mahalanobis",
    "needs_encoder_levels",
    "pooled_features",
]
