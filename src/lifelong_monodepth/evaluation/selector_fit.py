"""Fitting the domain selector from a model and the data of its domains.

Used at the end of every training stage and by ``mode=test`` when a checkpoint carries no
selector state (e.g. a converted original one). The current domain(s) of a stage are described
by ``options.current_split`` (its training images); every other domain by its replay memory
(the replay index, or its training images when it has none), as the paper's selector did.
Held-out images (``options.calibration_split``) calibrate the unknown-domain threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lifelong_monodepth.models.selection import SelectorOptions, fit_selector


def selector_loaders(
    datamodule: Any, letters: Sequence[str], options: SelectorOptions, current: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per domain: the loader of the images the selector is fitted on, and of its calibration images."""
    loaders, calibration = {}, {}
    for letter in letters:
        index = datamodule.domain(letter).index
        split = options.current_split if letter in current else datamodule.fit_split(letter)
        loaders[letter] = datamodule.eval_loader(letter, split if split in index else "train")
        if options.calibration_split:
            calibration[letter] = datamodule.eval_loader(letter, options.calibration_split)
    return loaders, calibration


def fit_selector_from_data(
    module: Any,
    datamodule: Any,
    letters: Sequence[str],
    options: SelectorOptions,
    current: Sequence[str] = (),
    seed: int = 0,
) -> dict[str, Any]:
    """Selector state for ``letters`` (see the module docstring for which images describe each)."""
    loaders, calibration = selector_loaders(datamodule, letters, options, current)
    return fit_selector(module.net, loaders, calibration, options, seed=seed, device=module.device)
