"""Precise per-domain BatchNorm statistics of the fusion block, re-estimated once after a stage.

With ``model.net.fusion.domain_bn`` each domain keeps its own running statistics in the fusion
block, but during training they are exponential averages over the last ~10 batches while the
weights still move, so at the end of a stage they describe neither the final weights nor the whole
training set. Re-estimating them once with the final, frozen network (a cumulative average over
the domain's training images without augmentation; "precise BatchNorm", Wu & Johnson 2021) is
what the validation split asked for (docs/results.md, "The weak domain S"). Only the sets of the
domains learned in the stage are touched: older sets stay as their own stage left them, and the
shared (pre-domain) statistics the selector reads do not change either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from lifelong_monodepth.models.domain_norm import DomainBatchNorm2d
from lifelong_monodepth.models.network import MultiDomainDepthNet


@torch.no_grad()
def recalibrate_domain_statistics(
    net: MultiDomainDepthNet,
    letters: Sequence[str],
    batches_of: Callable[[str], Iterable[dict[str, Any]]],
    max_batches: int | None = None,
) -> dict[str, int]:
    """Each letter's fusion statistics := the cumulative average over its batches; images seen per letter.

    A no-op (empty result) for a network without per-domain fusion statistics.
    """
    layers = [m for m in net.fusion.modules() if isinstance(m, DomainBatchNorm2d)]
    if not net.domain_bn or not layers:
        return {}
    was_training = net.training
    device = next(net.parameters()).device
    net.eval()  # encoder and shared statistics at their running values, untouched
    seen: dict[str, int] = {}
    try:
        for letter in letters:
            norms = [layer.sets[letter] for layer in layers if letter in layer.sets]
            saved = [norm.momentum for norm in norms]
            for norm in norms:
                norm.reset_running_stats()
                norm.train()
            count = 0
            for index, batch in enumerate(batches_of(letter)):
                if max_batches is not None and index >= max_batches:
                    break
                for norm in norms:  # momentum 1/(k+1): the running values become the plain mean
                    norm.momentum = 1.0 / (index + 1)
                images = batch["image"].to(device)
                net.encode(images, letter)
                count += int(images.shape[0])
            for norm, momentum in zip(norms, saved, strict=True):
                norm.momentum = momentum
                norm.eval()
            seen[letter] = count
    finally:
        net.train(was_training)
    return seen
